/* The coordinator's decider: the predict engine (fed every window) and the
 * rebalance decision (forecast, then moeplace_place), run on a background
 * thread so that no rank waits for them, or inline (no thread) when the
 * runtime decides inside the step (decision_lag_windows = 0).
 *
 * The thread only computes: it never calls MPI (the main thread does every
 * collective), so MPI_THREAD_FUNNELED is enough. It owns the forecaster and
 * the history ring buffer; the main thread hands it jobs in a FIFO (a
 * window's totals, or a decision request with a snapshot of the placement in
 * force), which it runs in order. A decision therefore sees exactly the
 * windows closed before it was requested, whatever the timing: the result is
 * deterministic for a given history. */
#ifndef MOEPLACE_RUNTIME_DECIDER_H
#define MOEPLACE_RUNTIME_DECIDER_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include <moeplace.h>

#include "runtime/history.h"

/* What the decider needs from the runtime: shape, topology and settings,
 * copied at create (read-only afterwards). */
typedef struct mp_rt_decider_setup {
  int L, E, R, S;
  const moeplace_topology *shape; /* read-only, outlives the decider */
  int window, horizon, rebalance_interval, history_windows;
  const char *predictor;
  double migration_tradeoff, min_gain;
  int64_t migration_budget_bytes;
  int groups;
  moeplace_share_policy shares;
  double spread;
  int samples;  /* load samples: the last `samples` windows of the history (all it
                   has if fewer) */
  int threaded; /* 1: a background thread; 0: every job runs inline */
} mp_rt_decider_setup;

/* The outcome of one decision. */
typedef struct mp_rt_decision {
  int status;    /* MOEPLACE_OK, or why it failed (error holds the message) */
  int commit;    /* 1: phy2log/share differ from the placement in force and pay */
  double old_imb, new_imb; /* predicted imbalance of the placement in force / decided */
  double seconds;          /* the decision's compute time on the thread */
  char error[512];
} mp_rt_decision;

typedef struct mp_rt_decider mp_rt_decider;

/* Local. Creates the history, the forecaster (only when rebalancing is on:
 * rebalance_interval > 0) and, when threaded, starts the thread.
 * MOEPLACE_ERR_NOMEM/_ARG or the forecaster's error. */
int mp_rt_decider_create(mp_rt_decider **out, const mp_rt_decider_setup *setup);

/* Stops the thread after the job it is running (a decision in progress
 * finishes first: the forecaster cannot be interrupted), drops the queued
 * jobs and frees everything. Accepts NULL. */
void mp_rt_decider_destroy(mp_rt_decider *d);

/* Queues one window's tokens per logical expert, totals [L][E] (copied):
 * pushed to the history and observed by the forecaster (if any) in order. */
int mp_rt_decider_observe(mp_rt_decider *d, const uint64_t *totals);

/* Queues a decision from the placement in force (copied) with the registered
 * bytes of one expert per layer, expert_bytes [L] (copied), and the
 * measured link bandwidths link_bw [MOEPLACE_LINK_CLASSES] (copied; entries
 * > 0 replace the topology's for this decision, linkbw.c). step_s > 0
 * prices the decision in seconds (moeplace_place_options.step_time_s over
 * horizon_steps, the steps until the next interval boundary): the step time at
 * perfect balance, or, with measured = 1, the measured step time at the
 * imbalance of the placement in force on the last window (the decider
 * divides by it); step_s <= 0: the min_gain / migration_tradeoff rule. At
 * most one decision is outstanding: MOEPLACE_ERR_STATE if one was requested
 * and not yet collected. */
int mp_rt_decider_request(mp_rt_decider *d, const moeplace_placement *in_force,
                          const size_t *expert_bytes, const double *link_bw, double step_s,
                          int measured, int64_t horizon_steps);

/* Waits for the outstanding decision (blocks only if it has not finished)
 * and collects it: *out, and the decided placement copied into next (when
 * out->commit). *waited_s: how long this call blocked. MOEPLACE_ERR_STATE
 * if no decision is outstanding. */
int mp_rt_decider_collect(mp_rt_decider *d, mp_rt_decision *out, moeplace_placement *next,
                          double *waited_s);

/* Caller's thread: quiet = 1 (at the entry of step()) lowers a busy
 * thread to SCHED_IDLE, so that it gives its core back at once to any
 * rank's training thread, which every rank is about to wait for inside the
 * collective step; quiet = 0 (at its exit) restores SCHED_BATCH. A no-op
 * for an idle or inline decider, or where the OS lacks the policies. */
void mp_rt_decider_quiet(mp_rt_decider *d, int quiet);

/* Waits until every queued job has run (a decision in progress finishes
 * first) and returns the history of window totals the forecaster was fed
 * (history.h): the caller may read it until its next observe or request.
 * For a checkpoint. */
const mp_rt_history *mp_rt_decider_history(mp_rt_decider *d);

/* 1 if a decision was requested and not yet collected. */
int mp_rt_decider_outstanding(const mp_rt_decider *d);

/* CPU seconds the decider's jobs (feeding the forecaster, decisions) have
 * taken so far, on its thread or inline; 0 for NULL or without a
 * per-thread CPU clock. Any thread. */
double mp_rt_decider_cpu_s(const mp_rt_decider *d);

/* The decision thread, or NULL when decisions run inline. Owned by d. */
pthread_t *mp_rt_decider_thread(mp_rt_decider *d);

/* 1 if the outstanding decision has finished (collect would not block);
 * 0 if none is outstanding or it is still running. Never blocks for long
 * (the decider's mutex is only held between jobs). */
int mp_rt_decider_ready(mp_rt_decider *d);

/* Test hooks (runtime tests only). hold = 1: the thread waits before
 * starting its next decision until hold is set back to 0 (or destroy);
 * decisions_done: decisions finished since create; fail_next: the next
 * decision fails as if moeplace_place had (MOEPLACE_ERR_NUMERIC). */
void mp_rt_decider_test_hold(mp_rt_decider *d, int hold);
int64_t mp_rt_decider_test_done(mp_rt_decider *d);
void mp_rt_decider_test_fail_next(mp_rt_decider *d);
/* Windows the forecaster has observed (after the queued jobs have run);
 * -1 when there is none (rebalancing off). */
int64_t mp_rt_decider_test_fed(mp_rt_decider *d);

#endif
