/* Shared-memory windows for migrations between ranks of one node.
 *
 * A receiving rank lends regions of its own segment of an MPI-3 shared
 * window; the sending rank copies the expert's bytes straight into them,
 * hashing each block while it is in cache. The bytes cross memory once, in
 * user space, on the sender's core, and the receiver's core is free to
 * verify what already arrived. With point-to-point messages instead, Open
 * MPI's single-copy path makes the receiver's core do the (kernel) copy,
 * and hashing on both sides then adds to it (docs/RUNTIME.md, "Migration
 * bandwidth").
 *
 * Windows are created collectively over the node, only when some rank of
 * the node lacks regions, and are never freed before the runtime: their
 * regions go back to the spare pool (spare.c) and are reused. */
#ifndef MOEPLACE_RUNTIME_SHM_H
#define MOEPLACE_RUNTIME_SHM_H

#include <stddef.h>

#include <mpi.h>

#define MP_RT_SHM_MAX_WINDOWS 32

typedef struct mp_rt_shm {
  MPI_Comm node;  /* ranks that share memory with this one; MPI_COMM_NULL = off */
  int node_size;
  int whole;      /* every rank of the runtime shares memory with this one */
  int *node_rank; /* [R] rank in `node` of each rank of the runtime, -1 elsewhere */
  int nwin, max_windows; /* max_windows: MP_RT_SHM_MAX_WINDOWS (lower in tests) */
  MPI_Win win[MP_RT_SHM_MAX_WINDOWS];
  char **base;    /* [MP_RT_SHM_MAX_WINDOWS * node_size] each node rank's segment */
} mp_rt_shm;

/* Collective over comm. Ranks share memory if MPI_COMM_TYPE_SHARED says so
 * and node_of (the runtime's node of every rank, emulated ones included)
 * puts them on one node: on an emulated cluster, transfers between emulated
 * nodes go by messages as they would between real ones. enabled = 0 leaves
 * s off (every transfer by messages). Same status on every rank. */
int mp_rt_shm_init(mp_rt_shm *s, MPI_Comm comm, const int *node_of, int enabled);

/* Collective over comm (frees the windows and the node communicator). */
void mp_rt_shm_free(mp_rt_shm *s);

/* 1 if s is on and ranks a != b share memory. */
int mp_rt_shm_pair(const mp_rt_shm *s, int a, int b);

/* Collective over the node: every rank of the node passes the bytes it
 * lacks (0 is fine). If some rank lacks any, a window is added in which
 * this rank's segment has `bytes` bytes (faulted in), at *mine, and
 * *win is its index; otherwise *win = -1. *full = 1 (on every rank of the
 * node) if a window was needed but max_windows exist already, or MPI could
 * not allocate one on any rank of the node (then no further window is
 * tried). */
int mp_rt_shm_grow(mp_rt_shm *s, size_t bytes, int *win, char **mine, int *full);

/* Address of `offset` in rank `rank`'s segment of window `win`. */
char *mp_rt_shm_addr(const mp_rt_shm *s, int win, int rank, size_t offset);

/* Byte offset of p in this rank's segment of window win. */
size_t mp_rt_shm_offset(const mp_rt_shm *s, int win, int my_rank, const char *p);

#endif
