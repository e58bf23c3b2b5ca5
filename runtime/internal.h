/* Internal state of a moeplace runtime, shared by the files of runtime/.
 * Shapes use L = layers, E = experts, R = ranks, S = slots per rank,
 * G = R * S global slots per layer. */
#ifndef MOEPLACE_RUNTIME_INTERNAL_H
#define MOEPLACE_RUNTIME_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <hwloc.h>
#include <mpi.h>

#include <moeplace/runtime.h>

#include "placement/placement_impl.h"
#include "runtime/decider.h"
#include "runtime/history.h"
#include "runtime/shm.h"
#include "runtime/topology.h"

/* One registered buffer of a local slot. */
typedef struct mp_rt_buffer {
  void *ptr;
  size_t bytes;
  int owned; /* allocated by the runtime: commit swaps pointers */
  int win;   /* owned: -1 on the heap, else the shared window it lives in */
} mp_rt_buffer;

/* The buffers of a local slot: a growable array (no fixed cap, so that
 * weights, biases and every optimizer moment of each tensor fit). */
typedef struct mp_rt_slot {
  int nbuf, cap;
  mp_rt_buffer *buf; /* [cap], the first nbuf registered in order */
} mp_rt_slot;

struct moeplace_runtime {
  MPI_Comm comm; /* duplicate of the user's communicator, MPI_ERRORS_RETURN */
  int rank, size;
  moeplace_runtime_config cfg; /* strings point into the copies below */
  char *predictor;
  char *hwloc_synthetic;
  char *cluster_file;
  int L, E, S, R, G;

  /* The placement in force: its phy2log/share arrays are the public API's
   * [L][R][S] slot_expert/shares (global slot g = rank * S + local slot). */
  moeplace_placement *placement;
  moeplace_placement *next; /* scratch: the placement being decided/received */

  mp_rt_topology topo;
  mp_rt_shm shm; /* shared-memory migration path between ranks of a node */

  mp_rt_slot *slots;      /* [L][S] registered local state */
  size_t *expert_bytes;   /* [L] bytes of one expert's state (after the check) */
  int registration_dirty; /* buffers changed since the last agreement check */

  uint64_t *window_counts; /* [L][S] local tokens of the open window */
  uint64_t *expert_window; /* [L][E] this rank's per-expert records of the open
                              window (record_experts.c) */
  uint64_t *expert_totals; /* coordinator: [L][E] their sum over ranks, last window */
  int experts_recorded;    /* record_experts was called in the open window; after the
                              window's step agreement: on some rank (the reduction runs) */
  int64_t step;            /* steps completed (calls of step/step_at) */
  int64_t caller_step;     /* the caller's number of the last step (step_at), else step */
  int broken;              /* 0: usable; 1: the ranks disagreed on the step; 2: a
                              bounded collective timed out and may still be pending
                              on comm (never freed then). Non-zero: every later
                              collective call fails */
  int steps_in_window;
  double step_t0;          /* wall time the last step call began (0: none yet) */
  double *step_gaps;       /* [window] wall time between consecutive step calls */
  double step_time_s;      /* median of step_gaps over the last full window (0: none) */

  /* Coordinator only. */
  mp_rt_decider *decider;  /* the predict engine and the decision (decider.h) */
  int decider_pus;         /* PUs its thread is bound to (decider_cpus.c); 0: inherited */
  hwloc_bitmap_t spare_set;   /* the host's PUs no rank is bound to (NULL: none), and */
  hwloc_topology_t spare_topo; /* its topology: held from create until the thread is bound */
  uint64_t *gather_buf;    /* [R][1 + L*S] gathered window records */

  /* Every rank alike (all of it follows from collective calls). */
  int spare_pus;           /* the number of spare PUs on the coordinator's host */
  const char *predictor_used; /* cfg.predictor, or what MOEPLACE_RUNTIME_PREDICTOR_DEFAULT
                                 resolved to (static storage or rt->predictor) */
  int rerequest;           /* restarted with a decision in flight: request it again at
                              the next step (checkpoint.c) */
  int64_t decision_due;    /* step whose window boundary applies the decision in
                              flight (decision_lag_windows), -1: none */
  int decision_stale;      /* apply_placement changed the placement since it was
                              requested: it is collected and dropped */
  moeplace_placement *target; /* a chunked rebalance's placement (migration_layers_per_step) */
  int chunk_layer;         /* next layer of it to migrate, -1: none in progress */
  int64_t chunk_step;      /* step of the last group of layers migrated */
  int request_error;       /* coordinator: the decision request failed (reported
                              by the decision broadcast) */
  char request_reason[256];

  char *staging;      /* migration staging pool, reused (see migrate.c) */
  size_t staging_cap;
  void **spare_ptr;   /* the spare pool (spare.c) */
  size_t *spare_size;
  int *spare_win;     /* -1: heap; else the shared window of the region */
  int nspare, spare_cap;
  int spare_reserved;  /* the shared reserve was tried (mp_rt_spare_reserve) */
  double link_bw[MOEPLACE_LINK_CLASSES]; /* measured bytes/s per link class, 0 = not yet
                                            (linkbw.c); handed to each decision */

  moeplace_transfer *pending_plan; /* plan_only: the plan waiting for confirm (plan_only.c) */
  size_t pending_n;
  int plan_pending;        /* 1 while it waits; rt->next holds its placement */

  moeplace_runtime_stats stats;
  int test_corrupt_next; /* test hook: corrupt the next expert received by message,
                            or copied into a peer's shared memory */
  int test_stall_s;      /* test hook: seconds this rank sleeps in the next migration
                            before posting its transfers */
};

/* ---- agreement (agree.c) ----------------------------------------------- */

/* Every rank passes n values; *same is 1 iff all ranks passed the same
 * values; min/max (may be NULL) receive the element-wise extremes. One
 * MPI_Allreduce. Values must be in (INT64_MIN, INT64_MAX]. */
int mp_rt_agree_i64(MPI_Comm comm, const int64_t *v, int n, int *same, int64_t *min,
                    int64_t *max);

/* Completes the non-blocking collective *req of rt->comm: MPI_Test, polling
 * for 2 ms and then sleeping between tests (mp_rt_backoff), for at most
 * rt->cfg.collective_timeout_s (none if negative). On timeout:
 * MOEPLACE_ERR_MPI "timed out after X s in WHAT at step N ...", rt->broken
 * set and the request left pending (a collective cannot be cancelled). */
int mp_rt_wait(moeplace_runtime *rt, MPI_Request *req, const char *what);

/* The polling back-off of the bounded waits (mp_rt_wait, the migration's
 * point-to-point waits): returns at once while the wait is younger than
 * spin_s (most waits are short, and a sleep costs at least the timer slack,
 * ~50 us), then sleeps 1 us doubling up to 1 ms per call. *sleep_ns is the
 * state, 0 at the start of each wait. */
void mp_rt_backoff(double waited_s, double spin_s, long *sleep_ns);

/* Regions of the shared windows start on 64-byte boundaries. */
static inline size_t mp_rt_align64(size_t n) { return (n + 63) & ~(size_t)63; }

/* Keeps p (the buffer of a collective that timed out) allocated for ever. */
void mp_rt_orphan(void *p);

/* mp_rt_agree_i64() on rt->comm as a bounded collective (mp_rt_wait). */
int mp_rt_agree_rt(moeplace_runtime *rt, const int64_t *v, int n, int *same, int64_t *min,
                   int64_t *max, const char *what);

/* Bounded agreement that every rank could prepare (local_ok != 0):
 * MOEPLACE_OK, or on every rank MOEPLACE_ERR_NOMEM ("what: out of memory on
 * some rank") / the agreement's own error. */
int mp_rt_agree_ok(moeplace_runtime *rt, int local_ok, const char *what);

/* 62-bit hash of a byte string (for agreement of strings and arrays). */
int64_t mp_rt_hash62(const void *data, size_t size, int64_t seed);

/* Collective check that every slot of every rank registered the same buffer
 * sizes per layer; fills rt->expert_bytes. */
int mp_rt_check_registration(moeplace_runtime *rt);

/* ---- migration engine (migrate.c) -------------------------------------- */

typedef struct mp_rt_migration_result {
  int moves;            /* transfers in the plan */
  uint64_t bytes_moved; /* bytes sent between different ranks */
  double seconds;       /* start to agreement */
  int verified_ok;      /* 1 if every rank verified everything */
} mp_rt_migration_result;

/* Collective: executes the plan (moeplace_migration_plan() from the
 * placement in force, identical on every rank: global slots, local copies
 * as MOEPLACE_LINK_SAME_RANK transfers; the transfers' bytes are ignored,
 * the registered sizes count), verifies every received expert, agrees, and
 * commits into the registered buffers, or rolls back leaving them untouched
 * (MOEPLACE_ERR_VERIFY on every rank). Does not change rt->placement: the
 * caller commits the placement on success. */
int mp_rt_migrate(moeplace_runtime *rt, const moeplace_transfer *plan, int n,
                  mp_rt_migration_result *res);

/* ---- per-expert records (record_experts.c) ----------------------------- */

/* Allocates / frees rt->expert_window (and, on the coordinator,
 * rt->expert_totals). Local. */
int mp_rt_experts_alloc(moeplace_runtime *rt);
void mp_rt_experts_free(moeplace_runtime *rt);

/* Collective, at every window (aggregate() in loop.c, after the gather):
 * when the step agreement found per-expert records on some rank
 * (experts_recorded), one bounded MPI_Ireduce(SUM) of every rank's
 * expert_window into the coordinator's expert_totals; zeroes expert_window.
 * Otherwise nothing (expert_totals zeroed on the coordinator). */
int mp_rt_experts_reduce(moeplace_runtime *rt);

/* Coordinator: totals[L][E] += expert_totals (the window's per-expert records). */
void mp_rt_experts_add(const moeplace_runtime *rt, uint64_t *totals);

/* ---- plan-only mode (plan_only.c) -------------------------------------- */

/* Takes the plan (malloc'd, as moeplace_migration_plan() makes it) of a
 * decided migration to rt->next instead of migrating: held until
 * moeplace_runtime_confirm(). Sets info->plan_pending. */
int mp_rt_plan_hold(moeplace_runtime *rt, moeplace_transfer *plan, size_t n,
                    moeplace_step_info *info);

/* Frees a held plan (destroy, confirm). */
void mp_rt_plan_free(moeplace_runtime *rt);

/* ---- measured link bandwidths (linkbw.c) ------------------------------- */

/* Smallest busiest-rank volume of a migration that measures a bandwidth. */
#define MP_RT_LINKBW_MIN_BYTES (4.0 * 1024 * 1024)

/* After a committed migration along plan[n] that took `seconds` on this
 * rank: if every transfer between two ranks used one link class and the
 * busiest rank moved at least MP_RT_LINKBW_MIN_BYTES, updates
 * rt->link_bw[class] (the mean of the old estimate and busiest bytes /
 * seconds). Local; ignores out-of-memory (no estimate). */
void mp_rt_linkbw_observe(moeplace_runtime *rt, const moeplace_transfer *plan, size_t n,
                          double seconds);

/* ---- spare pool (spare.c) ---------------------------------------------- */

/* Largest shared reserve of mp_rt_spare_reserve() per rank: owned expert
 * state beyond it is not doubled up front (windows then grow on demand). */
#define MP_RT_SPARE_RESERVE_MAX ((size_t)1 << 30)

/* A pooled buffer of exactly `size` bytes: shared = 1, a region of one of
 * this rank's shared-window segments (NULL if the pool has none; *win is its
 * window); shared = 0, heap memory (allocated and faulted in if the pool has
 * none; NULL only when out of memory; *win = -1). */
char *mp_rt_spare_take(moeplace_runtime *rt, size_t size, int shared, int *win);

/* Returns a buffer to the pool (win as from mp_rt_spare_take). */
void mp_rt_spare_give(moeplace_runtime *rt, void *p, size_t size, int win);

/* Frees the pool's heap buffers (shared regions go with their windows). */
void mp_rt_spare_free_all(moeplace_runtime *rt);

/* Collective over the runtime (every rank, once registration is agreed):
 * the first time, on nodes with shared-memory transfers, one window whose
 * segment on each rank has a region for each buffer the runtime owns on
 * that rank (at most MP_RT_SPARE_RESERVE_MAX bytes), faulted in and pooled.
 * Owned memory drifts from the heap into shared regions as experts arrive
 * (commit swaps, the heap buffer is freed); the reserve covers that drift,
 * so migrations take regions from the pool and never create a window in a
 * step. If the window cannot be had, migrations grow windows on demand as
 * before. MOEPLACE_ERR_MPI only if the node's collective failed. */
int mp_rt_spare_reserve(moeplace_runtime *rt);

/* Test hook (not exported): the next expert this rank receives by message
 * is corrupted after arrival, before verification, or the next one it
 * copies into a peer's shared memory right after the copy, before its
 * sender-side check (migrate.c). */
void mp_rt_test_corrupt_next(moeplace_runtime *rt);

/* Test hooks of the decision thread (coordinator only; no-ops elsewhere):
 * hold = 1 keeps the thread from starting its next decision until hold is
 * set back to 0 (or the runtime is destroyed); done counts the decisions
 * finished; fail_next makes the next decision fail (MOEPLACE_ERR_NUMERIC). */
void mp_rt_test_hold_decisions(moeplace_runtime *rt, int hold);
int64_t mp_rt_test_decisions_done(moeplace_runtime *rt);
void mp_rt_test_fail_next_decision(moeplace_runtime *rt);

/* decider_cpus.c. At create: mp_rt_decider_spare (collective, before the
 * decider starts) finds the PUs of the coordinator's host that no rank there
 * is bound to; mp_rt_decider_bind (local, after) binds the decision thread
 * to them. */
int mp_rt_decider_spare(moeplace_runtime *rt);
void mp_rt_decider_bind(moeplace_runtime *rt);
/* Releases what mp_rt_decider_spare held (create failing before the bind). */
void mp_rt_decider_spare_free(moeplace_runtime *rt);
/* Test hook: rt->decider_pus (-1 for NULL). */
int mp_rt_test_decider_pus(const moeplace_runtime *rt);

#endif
