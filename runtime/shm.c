/* Shared-memory windows for migrations between ranks of one node (shm.h). */
#include "config.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/error.h"
#include "runtime/shm.h"

/* Maps a peer's segment into this process's page tables now, by reading
 * one byte of each page: a sender writes straight into the receiver's
 * landing memory, and the first touch of a page from a second process is
 * a page fault (6-14 us per page in this project's VMs: a 256 KiB expert
 * took 0.8 ms to copy instead of 0.08). Reading writes nothing, so the
 * pages stay where their owner's memset placed them (first touch).
 * MADV_POPULATE_WRITE was measured and left half of the cost. */
static void touch_peer(const char *p, MPI_Aint size) {
  const size_t page = (size_t)sysconf(_SC_PAGESIZE);
  volatile const char *v = p;
  char sink = 0;
  for (size_t o = 0; p && o < (size_t)size; o += page) sink ^= v[o];
  (void)sink;
}

int mp_rt_shm_init(mp_rt_shm *s, MPI_Comm comm, const int *node_of, int enabled) {
  memset(s, 0, sizeof *s);
  s->node = MPI_COMM_NULL;
  s->max_windows = MP_RT_SHM_MAX_WINDOWS;
  if (!enabled) return MOEPLACE_OK;
  int rank, R;
  MPI_Comm_rank(comm, &rank);
  MPI_Comm_size(comm, &R);
  MPI_Comm shared;
  if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &shared) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed");
  int rc = MPI_Comm_split(shared, node_of[rank], rank, &s->node);
  MPI_Comm_free(&shared);
  if (rc != MPI_SUCCESS) {
    s->node = MPI_COMM_NULL;
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Comm_split by node failed");
  }
  MPI_Comm_set_errhandler(s->node, MPI_ERRORS_RETURN);
  MPI_Comm_size(s->node, &s->node_size);
  s->node_rank = malloc((size_t)R * sizeof *s->node_rank);
  int *all = malloc((size_t)R * sizeof *all);
  s->base = calloc((size_t)MP_RT_SHM_MAX_WINDOWS * s->node_size, sizeof *s->base);
  int ok = s->node_rank && all && s->base, all_ok = 0;
  MPI_Group g_comm, g_node;
  if (ok) {
    // Translate every rank of comm into the node communicator (MPI_UNDEFINED
    // for ranks of other nodes): local, no communication.
    for (int r = 0; r < R; r++) all[r] = r;
    MPI_Comm_group(comm, &g_comm);
    MPI_Comm_group(s->node, &g_node);
    ok = MPI_Group_translate_ranks(g_comm, R, all, g_node, s->node_rank) == MPI_SUCCESS;
    MPI_Group_free(&g_comm);
    MPI_Group_free(&g_node);
    for (int r = 0; ok && r < R; r++)
      if (s->node_rank[r] == MPI_UNDEFINED) s->node_rank[r] = -1;
    s->whole = s->node_size == R;
  }
  free(all);
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS) all_ok = 0;
  if (!all_ok) {
    mp_rt_shm_free(s);
    return mp_fail(MOEPLACE_ERR_NOMEM, "could not set up the shared-memory migration path");
  }
  return MOEPLACE_OK;
}

void mp_rt_shm_free(mp_rt_shm *s) {
  for (int w = 0; w < s->nwin; w++) {
    MPI_Win_unlock_all(s->win[w]);
    MPI_Win_free(&s->win[w]);
  }
  s->nwin = 0;
  if (s->node != MPI_COMM_NULL) MPI_Comm_free(&s->node);
  free(s->node_rank);
  free(s->base);
  s->node_rank = NULL;
  s->base = NULL;
}

int mp_rt_shm_pair(const mp_rt_shm *s, int a, int b) {
  return s->node != MPI_COMM_NULL && a != b && s->node_rank[a] >= 0 && s->node_rank[b] >= 0;
}

int mp_rt_shm_grow(mp_rt_shm *s, size_t bytes, int *win, char **mine, int *full) {
  *win = -1;
  *mine = NULL;
  *full = 0;
  unsigned long long need = bytes, max_need = 0;
  if (MPI_Allreduce(&need, &max_need, 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, s->node) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce over the node failed");
  if (max_need == 0) return MOEPLACE_OK;
  if (s->nwin >= s->max_windows) {
    *full = 1;
    return MOEPLACE_OK;
  }
  // Non-contiguous: every segment starts on its own page, so that regions
  // keep their alignment and a rank's pages are its own (first touch below).
  MPI_Info info;
  MPI_Info_create(&info);
  MPI_Info_set(info, "alloc_shared_noncontig", "true");
  int w = s->nwin;
  char *base = NULL;
  int rc = MPI_Win_allocate_shared((MPI_Aint)bytes, 1, info, s->node, &base, &s->win[w]);
  MPI_Info_free(&info);
  // Out of shared memory (a small /dev/shm in a container, say) is not an
  // error: the node stops using the path and moves experts by messages.
  int ok = rc == MPI_SUCCESS, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, s->node) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce over the node failed");
  if (!all_ok) {
    // Where the window was created after all, it cannot be freed: freeing is
    // collective over ranks that do not have it. It stays until MPI_Finalize.
    s->max_windows = s->nwin;
    *full = 1;
    return MOEPLACE_OK;
  }
  // A passive-target epoch for the window's lifetime: MPI_Win_sync (the
  // memory barrier of the notify protocol in migrate.c) needs one.
  MPI_Win_lock_all(MPI_MODE_NOCHECK, s->win[w]);
  s->nwin++;
  if (bytes) memset(base, 0, bytes); // fault the pages in now, not during a transfer
  // every owner has touched its pages before a peer maps them (touch_peer)
  if (MPI_Barrier(s->node) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Barrier over the node failed");
  int me;
  MPI_Comm_rank(s->node, &me);
  for (int q = 0; q < s->node_size; q++) {
    MPI_Aint size;
    int disp;
    char *p = NULL;
    MPI_Win_shared_query(s->win[w], q, &size, &disp, &p);
    s->base[(size_t)w * s->node_size + q] = p;
    if (q != me) touch_peer(p, size);
  }
  *win = w;
  *mine = base;
  return MOEPLACE_OK;
}

char *mp_rt_shm_addr(const mp_rt_shm *s, int win, int rank, size_t offset) {
  return s->base[(size_t)win * s->node_size + s->node_rank[rank]] + offset;
}

size_t mp_rt_shm_offset(const mp_rt_shm *s, int win, int my_rank, const char *p) {
  return (size_t)(p - mp_rt_shm_addr(s, win, my_rank, 0));
}
