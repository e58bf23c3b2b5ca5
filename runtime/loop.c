/* The closed loop of DESIGN.md, run by moeplace_runtime_step(): window
 * aggregation into the coordinator's history, the rebalance decision on the
 * coordinator, its broadcast, and the migration every rank takes part in. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/timer.h"
#include "common/warmup.h"
#include "runtime/internal.h"
#include "runtime/rt_config.h"

/* The explicit step agreement of a window: one MPI_Iallreduce of every
 * rank's step number (the caller's, from moeplace_runtime_step_at(), or the
 * call count), so that every rank sees a difference and fails in the same
 * way; then, only when they differ, one MPI_Iallgather of the numbers to name
 * the ranks that differ from the coordinator. */
static int agree_step(moeplace_runtime *rt) {
  // v[1]: whether this rank recorded per expert in the window; its max
  // tells every rank whether the per-expert reduction runs (record_experts.c).
  int64_t v[2] = {rt->caller_step, rt->experts_recorded}, lo2[2], hi2[2];
  int same;
  int status = mp_rt_agree_rt(rt, v, 2, &same, lo2, hi2,
                              "the step agreement of the window (MPI_Iallreduce)");
  int64_t lo = lo2[0], hi = hi2[0];
  if (status == MOEPLACE_OK) rt->experts_recorded = hi2[1] > 0;
  same = lo == hi;
  if (status != MOEPLACE_OK || same) return status;
  int64_t *steps = malloc((size_t)(rt->R + 1) * sizeof *steps);
  if (!steps) {
    rt->broken = 1;
    return mp_fail(MOEPLACE_ERR_MISMATCH, "ranks disagree on the step at a window boundary "
                   "(steps %lld to %lld); the runtime is now unusable", (long long)lo, (long long)hi);
  }
  int64_t *mine = steps + rt->R;
  *mine = rt->caller_step;
  MPI_Request req;
  if (MPI_Iallgather(mine, 1, MPI_INT64_T, steps, 1, MPI_INT64_T, rt->comm, &req) != MPI_SUCCESS)
    status = mp_fail(MOEPLACE_ERR_MPI, "MPI_Iallgather of the step numbers failed");
  else
    status = mp_rt_wait(rt, &req, "naming the ranks at another step (MPI_Iallgather)");
  if (status != MOEPLACE_OK) {
    if (rt->broken) mp_rt_orphan(steps); // the collective may still complete into it
    else free(steps);
    if (!rt->broken) rt->broken = 1;
    return status;
  }
  int64_t ref = steps[rt->cfg.coordinator];
  char list[256] = "";
  size_t len = 0;
  int odd = 0;
  for (int r = 0; r < rt->R; r++) {
    if (steps[r] == ref) continue;
    if (odd++ < 4 && len < sizeof list)
      len += (size_t)snprintf(list + len, sizeof list - len, "%srank %d at step %lld",
                              odd > 1 ? ", " : "", r, (long long)steps[r]);
  }
  free(steps);
  if (!odd) return MOEPLACE_OK;
  rt->broken = 1;
  return mp_fail(MOEPLACE_ERR_MISMATCH,
                 "ranks disagree on the step at a window boundary: %s%s, the coordinator "
                 "(rank %d) at step %lld (a rank called step more or fewer times than the "
                 "others); the runtime is now unusable",
                 list, odd > 4 ? " and more" : "", rt->cfg.coordinator, (long long)ref);
}

/* Closes a window: the step agreement, then one MPI_Igather of every rank's
 * [1 + L*S] record (step number, then the window's token counts per local
 * slot) to the coordinator, which maps slots to logical experts with the
 * placement in force and appends the proportions to its history. */
static int aggregate(moeplace_runtime *rt) {
  double t0 = mp_now_s();
  int status = agree_step(rt);
  if (status != MOEPLACE_OK) return status;
  size_t LS = (size_t)rt->L * rt->S, rec = 1 + LS;
  uint64_t *mine = malloc(rec * sizeof *mine);
  uint64_t *totals = NULL;
  if (!mine) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory aggregating a window");
  mine[0] = (uint64_t)rt->step;
  memcpy(mine + 1, rt->window_counts, LS * sizeof *mine);
  MPI_Request req;
  if (MPI_Igather(mine, (int)rec, MPI_UINT64_T, rt->gather_buf, (int)rec, MPI_UINT64_T,
                  rt->cfg.coordinator, rt->comm, &req) != MPI_SUCCESS)
    status = mp_fail(MOEPLACE_ERR_MPI, "MPI_Igather of window loads failed");
  else
    status = mp_rt_wait(rt, &req, "the window aggregation (MPI_Igather)");
  memset(rt->window_counts, 0, LS * sizeof *rt->window_counts);
  if (status != MOEPLACE_OK && rt->broken) { // the gather may still complete into them
    mp_rt_orphan(mine);
    mp_rt_orphan(rt->gather_buf);
    rt->gather_buf = NULL;
    return status;
  }
  free(mine);
  if (status == MOEPLACE_OK) status = mp_rt_experts_reduce(rt); // record_experts.c
  if (status != MOEPLACE_OK) return status;
  rt->stats.windows++;
  if (rt->rank == rt->cfg.coordinator) {
    totals = calloc((size_t)rt->L * rt->E, sizeof *totals); // totals: [L][E]
    if (!totals) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory aggregating a window");
    for (int r = 0; r < rt->R; r++) {
      const uint64_t *g = rt->gather_buf + (size_t)r * rec;
      for (int l = 0; l < rt->L; l++)
        for (int s = 0; s < rt->S; s++) {
          int e = rt->placement->phy2log[(size_t)l * rt->G + (size_t)r * rt->S + s];
          if (e >= 0) totals[(size_t)l * rt->E + e] += g[1 + (size_t)l * rt->S + s];
        }
    }
    mp_rt_experts_add(rt, totals); // the per-expert records (record_experts.c)
    int st = mp_rt_decider_observe(rt->decider, totals); // history and forecaster, in order
    free(totals);
    if (st != MOEPLACE_OK) return st;
  }
  rt->stats.aggregate_s += mp_now_s() - t0;
  return MOEPLACE_OK;
}

/* A bounded MPI_Ibcast from the coordinator (mp_rt_wait). On a timeout the
 * caller must never free buf (mp_rt_orphan). */
static int bcast(moeplace_runtime *rt, void *buf, int count, MPI_Datatype type, const char *what) {
  MPI_Request req;
  if (MPI_Ibcast(buf, count, type, rt->cfg.coordinator, rt->comm, &req) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Ibcast of %s failed", what);
  return mp_rt_wait(rt, &req, what);
}

/* Migrates from the placement in force to rt->next (identical on every
 * rank) and commits it. The plan is built here, on every rank, from the
 * same two placements and topology: it is deterministic, so no rank sends
 * it to another. */
static int migrate_to_next(moeplace_runtime *rt, moeplace_step_info *info) {
  int status = mp_rt_check_registration(rt);
  if (status != MOEPLACE_OK) return status;
  moeplace_transfer *plan = NULL;
  size_t n = 0;
  status = moeplace_migration_plan(rt->placement, rt->next, rt->topo.shape, 0.0, &plan, &n);
  // The plan only fails on memory or on an invalid placement, which was
  // validated identically everywhere; agree anyway before communicating.
  int64_t ok = status == MOEPLACE_OK, all_ok = 0;
  int same;
  int agreed = mp_rt_agree_rt(rt, &ok, 1, &same, &all_ok, NULL, "the migration plan agreement");
  if (agreed != MOEPLACE_OK || !all_ok) {
    moeplace_transfers_free(plan);
    if (agreed != MOEPLACE_OK) return agreed;
    return ok ? mp_fail(MOEPLACE_ERR_NOMEM, "another rank could not build the migration plan")
              : status;
  }
  if (rt->cfg.plan_only) return mp_rt_plan_hold(rt, plan, n, info); // plan_only.c: the trainer moves
  mp_rt_migration_result res;
  status = mp_rt_migrate(rt, plan, (int)n, &res);
  if (status == MOEPLACE_OK) mp_rt_linkbw_observe(rt, plan, n, res.seconds);
  moeplace_transfers_free(plan);
  if (status != MOEPLACE_OK) {
    rt->stats.migrations_failed++;
    return status;
  }
  moeplace_placement *old = rt->placement; // commit: the scratch becomes the placement
  rt->placement = rt->next;
  rt->next = old;
  rt->stats.rebalances++;
  rt->stats.moves += res.moves;
  rt->stats.bytes_moved += res.bytes_moved;
  rt->stats.migration_s += res.seconds;
  if (info) {
    info->rebalanced = 1;
    info->moves = res.moves;
    info->bytes_moved = res.bytes_moved;
    info->migration_s = res.seconds;
  }
  return MOEPLACE_OK;
}

/* 1 on the coordinator if the decision due now is still running on the
 * thread and the ranks should not wait for it (decision_wait = 0). */
static int decision_late(moeplace_runtime *rt) {
  return !rt->cfg.decision_wait && rt->request_error == MOEPLACE_OK &&
         mp_rt_decider_outstanding(rt->decider) && !mp_rt_decider_ready(rt->decider);
}

/* Collective: the step that applies a decision. The coordinator collects
 * it from its decider (with decision_lag_windows = 0 it was computed inline
 * just before; a threaded one still running is deferred, or waited for with
 * decision_wait), and one MPI_Ibcast carries {status, commit?, deferred?};
 * when committing, two more carry the new placement and shares into
 * rt->target. Returns the shared status, *commit and *deferred. */
static int receive_decision(moeplace_runtime *rt, int *commit, int *deferred,
                            moeplace_step_info *info) {
  *commit = *deferred = 0;
  int *hdr = malloc(3 * sizeof *hdr); // on the heap: a timed-out broadcast keeps it
  if (!hdr) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in the rebalance decision");
  hdr[0] = MOEPLACE_OK;
  hdr[1] = 0;
  hdr[2] = rt->rank == rt->cfg.coordinator && decision_late(rt);
  mp_rt_decision d;
  memset(&d, 0, sizeof d);
  if (rt->rank == rt->cfg.coordinator && !hdr[2]) {
    double waited = 0.0;
    hdr[0] = rt->request_error;
    if (hdr[0] == MOEPLACE_OK) hdr[0] = mp_rt_decider_collect(rt->decider, &d, rt->target, &waited);
    else snprintf(d.error, sizeof d.error, "%s", rt->request_reason);
    rt->request_error = MOEPLACE_OK;
    if (hdr[0] == MOEPLACE_OK) hdr[0] = d.status;
    hdr[1] = hdr[0] == MOEPLACE_OK && d.commit && !rt->decision_stale;
    rt->stats.decision_s += d.seconds;
    if (info) {
      info->decision_s = d.seconds;
      info->decision_wait_s = waited;
      info->predicted_imbalance_old = d.old_imb;
      info->predicted_imbalance_new = hdr[1] ? d.new_imb : d.old_imb;
    }
  }
  int status = bcast(rt, hdr, 3, MPI_INT, "the rebalance decision broadcast (MPI_Ibcast)");
  if (status != MOEPLACE_OK) {
    if (rt->broken) mp_rt_orphan(hdr);
    else free(hdr);
    return status;
  }
  int decided = hdr[0];
  *commit = hdr[1];
  *deferred = hdr[2];
  free(hdr);
  if (*deferred) return MOEPLACE_OK;
  rt->decision_stale = 0;
  if (info) info->rebalance_checked = 1;
  if (decided != MOEPLACE_OK) {
    *commit = 0;
    if (rt->rank == rt->cfg.coordinator)
      return mp_fail(decided, "the rebalance decision failed: %s", d.error);
    return mp_fail(decided, "the coordinator could not decide: %s", moeplace_strerror(decided));
  }
  if (!*commit) {
    rt->stats.rebalances_skipped++;
    return MOEPLACE_OK;
  }
  size_t LG = (size_t)rt->L * rt->G;
  status = bcast(rt, rt->target->phy2log, (int)LG, MPI_INT, "the new placement broadcast (MPI_Ibcast)");
  if (status == MOEPLACE_OK)
    status = bcast(rt, rt->target->share, (int)LG, MPI_DOUBLE, "the new shares broadcast (MPI_Ibcast)");
  if (status != MOEPLACE_OK && rt->broken) { // the broadcast may still complete into it
    mp_rt_orphan(rt->target);
    rt->target = NULL;
  }
  if (status != MOEPLACE_OK) *commit = 0;
  return status;
}

/* Migrates the next group of layers of rt->target (all of them when
 * migration_layers_per_step is 0): rt->next becomes the placement in force
 * with those layers taken from the target, and is committed all-or-nothing.
 * A failure abandons the rest of the target on every rank alike (the layers
 * committed so far stay: every rank holds the same placement). */
static int migrate_chunk(moeplace_runtime *rt, moeplace_step_info *info) {
  int L = rt->L, per = rt->cfg.migration_layers_per_step;
  int from = rt->chunk_layer, to = per > 0 && from + per < L ? from + per : L;
  size_t G = (size_t)rt->G, LG = (size_t)L * G;
  memcpy(rt->next->phy2log, rt->placement->phy2log, LG * sizeof *rt->next->phy2log);
  memcpy(rt->next->share, rt->placement->share, LG * sizeof *rt->next->share);
  memcpy(rt->next->phy2log + from * G, rt->target->phy2log + from * G,
         (size_t)(to - from) * G * sizeof *rt->next->phy2log);
  memcpy(rt->next->share + from * G, rt->target->share + from * G,
         (size_t)(to - from) * G * sizeof *rt->next->share);
  rt->chunk_layer = to < L ? to : -1;
  int status = migrate_to_next(rt, info);
  if (status != MOEPLACE_OK) rt->chunk_layer = -1;
  return status;
}

/* The registration is agreed (the coordinator prices bytes with it), then
 * the coordinator hands a decision to its decider (runtime -> predict ->
 * placement, on the thread). A failed request is reported by the
 * decision's broadcast, on every rank. */
static int ask_decider(moeplace_runtime *rt) {
  int status = mp_rt_check_registration(rt);
  if (status != MOEPLACE_OK || rt->rank != rt->cfg.coordinator) return status;
  // Still outstanding: left by an error, or deferred (decision_wait 0) and
  // not finished by this next request. Decided from an older history, it is
  // dropped, after waiting for it (the forecaster cannot be interrupted).
  if (mp_rt_decider_outstanding(rt->decider)) {
    mp_rt_decision old;
    double waited;
    mp_rt_decider_collect(rt->decider, &old, rt->next, &waited);
  }
  // the seconds-priced rule: configured, measured (0; none yet: off), or off (< 0)
  double step_s = rt->cfg.step_time_s > 0 ? rt->cfg.step_time_s
                  : rt->cfg.step_time_s == 0 && rt->step_time_s > 0 ? rt->step_time_s
                                                                     : -1;
  // in force until the next interval boundary: a whole interval, or its
  // rest for a warm-up decision (common/warmup.h)
  const int64_t every = rt->cfg.rebalance_interval;
  const int64_t horizon = every > 0 ? every - rt->step % every : 0;
  rt->request_error = mp_rt_decider_request(rt->decider, rt->placement, rt->expert_bytes,
                                            rt->link_bw, step_s, rt->cfg.step_time_s == 0, horizon);
  if (rt->request_error != MOEPLACE_OK)
    snprintf(rt->request_reason, sizeof rt->request_reason, "%s", moeplace_last_error());
  return MOEPLACE_OK;
}

/* The step at a rebalance boundary: a decision is asked for and, with a
 * lag, every rank returns; it is applied decision_lag_windows windows later. */
static int request_decision(moeplace_runtime *rt, moeplace_step_info *info) {
  (void)info;
  int status = ask_decider(rt);
  rt->decision_stale = 0;
  rt->decision_due = rt->step + (int64_t)rt->cfg.decision_lag_windows * rt->cfg.window;
  return status;
}

/* The step applying a decision: its broadcast, then the first group of
 * layers of its migration. */
static int apply_decision(moeplace_runtime *rt, moeplace_step_info *info) {
  rt->decision_due = -1;
  int commit = 0, deferred = 0;
  int status = receive_decision(rt, &commit, &deferred, info);
  if (status == MOEPLACE_OK && deferred) { // try again at the next window boundary
    rt->decision_due = rt->step + rt->cfg.window;
    rt->stats.decisions_deferred++;
    return MOEPLACE_OK;
  }
  if (status != MOEPLACE_OK || !commit) return status;
  rt->chunk_layer = 0; // a new target replaces what is left of an older one
  rt->chunk_step = rt->step;
  return migrate_chunk(rt, info);
}

/* Refuses every collective call once a bounded collective timed out or the
 * ranks disagreed on the step: the ranks' collectives no longer match. */
static int usable(const moeplace_runtime *rt, const char *call) {
  if (rt->plan_pending) // the same on every rank (plan_only.c)
    return mp_fail(MOEPLACE_ERR_STATE, "%s: a migration plan is pending: call "
                   "moeplace_runtime_confirm() first", call);
  if (!rt->broken) return MOEPLACE_OK;
  return mp_fail(MOEPLACE_ERR_STATE,
                 "%s: the runtime is unusable after a collective timed out or the ranks "
                 "disagreed on the step; destroy it and restart from the last checkpoint",
                 call);
}

static int by_value(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* The trainer's step time for the seconds-priced rule: the wall time between
 * consecutive step calls (the whole training step, the runtime's own part
 * included), and at the end of each window their median (robust to the step
 * that migrates). Local and cheap: one clock read per step. */
static void time_step(moeplace_runtime *rt) {
  const double now = mp_now_s();
  if (rt->step_t0 > 0) rt->step_gaps[rt->steps_in_window] = now - rt->step_t0;
  rt->step_t0 = now;
  if (rt->steps_in_window + 1 == rt->cfg.window && rt->step > rt->cfg.window) {
    double *g = rt->step_gaps;
    qsort(g, (size_t)rt->cfg.window, sizeof *g, by_value);
    rt->step_time_s = g[rt->cfg.window / 2];
  }
}

static int step_body(moeplace_runtime *rt, const int64_t *caller_step, moeplace_step_info *info) {
  int status = usable(rt, "step");
  if (status != MOEPLACE_OK) return status;
  if (rt->step == 0) { // the first step reports registration problems early
    status = mp_rt_check_registration(rt);
    if (status != MOEPLACE_OK) return status;
  }
  time_step(rt);
  if (rt->rerequest) { // restarted from a checkpoint with a decision in flight
    rt->rerequest = 0;
    status = ask_decider(rt);
    if (status != MOEPLACE_OK) return status;
  }
  rt->step++;
  rt->caller_step = caller_step ? *caller_step : rt->step;
  // The agreement takes values in (INT64_MIN, INT64_MAX] (it negates them).
  if (rt->caller_step == INT64_MIN) rt->caller_step++;
  rt->stats.steps = rt->step;
  if (info) info->step = rt->step;
  if (++rt->steps_in_window == rt->cfg.window) {
    rt->steps_in_window = 0;
    status = aggregate(rt);
    if (info) info->window_closed = 1;
    if (status != MOEPLACE_OK) return status;
  }
  // A decision requested decision_lag_windows windows ago is applied first,
  // then a new one requested (with a lag of 0, applied at once); a chunked
  // migration in progress moves its next layers. At most one migration per
  // step, and every rank takes the same branch: all of it follows from the
  // step number and collective outcomes.
  if (rt->decision_due == rt->step) status = apply_decision(rt, info);
  if (status == MOEPLACE_OK && rt->cfg.rebalance_interval > 0 &&
      (rt->step % rt->cfg.rebalance_interval == 0 ||
       mp_warmup_decides(rt->step, rt->cfg.warmup_steps, rt->cfg.rebalance_interval))) {
    status = request_decision(rt, info);
    if (status == MOEPLACE_OK && rt->decision_due == rt->step) status = apply_decision(rt, info);
  }
  if (status == MOEPLACE_OK && rt->chunk_layer >= 0 && rt->chunk_step != rt->step) {
    rt->chunk_step = rt->step;
    status = migrate_chunk(rt, info);
  }
  return status;
}

/* The collective step, with the coordinator's decision thread quiet while
 * it runs (decider.h: every rank waits inside step() for the slowest). */
static int step(moeplace_runtime *rt, const int64_t *caller_step, moeplace_step_info *info) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "step: runtime is NULL");
  if (info) memset(info, 0, sizeof *info);
  mp_rt_decider_quiet(rt->decider, 1);
  int status = step_body(rt, caller_step, info);
  mp_rt_decider_quiet(rt->decider, 0);
  return status;
}

int moeplace_runtime_step(moeplace_runtime *rt, moeplace_step_info *info) {
  return step(rt, NULL, info);
}

int moeplace_runtime_step_at(moeplace_runtime *rt, int64_t caller_step, moeplace_step_info *info) {
  return step(rt, &caller_step, info);
}

/* Fills rt->next from the caller's arrays (equal shares when share is
 * NULL) and validates it: local. */
static int next_from_arrays(moeplace_runtime *rt, const int *phy2log, const double *share) {
  size_t LG = (size_t)rt->L * rt->G;
  if (!phy2log) return mp_fail(MOEPLACE_ERR_ARG, "apply_placement: phy2log is NULL");
  memcpy(rt->next->phy2log, phy2log, LG * sizeof *phy2log);
  int st = MOEPLACE_OK;
  if (share) memcpy(rt->next->share, share, LG * sizeof *share);
  else st = moeplace_placement_equal_shares(rt->next);
  if (st == MOEPLACE_OK) st = moeplace_placement_validate(rt->next);
  return st == MOEPLACE_OK ? st : mp_fail(st, "apply_placement: %s", moeplace_last_error());
}

int moeplace_runtime_apply_placement(moeplace_runtime *rt, const int *phy2log,
                                     const double *share, moeplace_step_info *info) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "apply_placement: runtime is NULL");
  if (info) memset(info, 0, sizeof *info);
  int usable_st = usable(rt, "apply_placement");
  if (usable_st != MOEPLACE_OK) return usable_st;
  size_t LG = (size_t)rt->L * rt->G;
  int local = next_from_arrays(rt, phy2log, share);
  // v = [valid, hash(phy2log), hash(share)], agreed in one allreduce.
  int64_t v[3] = {local == MOEPLACE_OK, 0, 0}, mn[3];
  if (local == MOEPLACE_OK) {
    v[1] = mp_rt_hash62(rt->next->phy2log, LG * sizeof *rt->next->phy2log, 1);
    v[2] = mp_rt_hash62(rt->next->share, LG * sizeof *rt->next->share, 2);
  }
  int same = 0;
  int status = mp_rt_agree_rt(rt, v, 3, &same, mn, NULL, "the apply_placement agreement");
  if (status == MOEPLACE_OK && mn[0] == 0)
    status = local != MOEPLACE_OK ? local
                                  : mp_fail(MOEPLACE_ERR_ARG, "apply_placement: invalid placement on another rank");
  else if (status == MOEPLACE_OK && !same)
    status = mp_fail(MOEPLACE_ERR_MISMATCH, "apply_placement: ranks passed different placements");
  if (status == MOEPLACE_OK) {
    // The caller's placement wins over a decision in flight (decided from the
    // placement this replaces) and over the rest of a chunked migration.
    rt->decision_stale = rt->decision_due >= 0;
    rt->chunk_layer = -1;
    status = migrate_to_next(rt, info);
  }
  return status;
}


void mp_rt_test_hold_decisions(moeplace_runtime *rt, int hold) {
  if (rt->decider) mp_rt_decider_test_hold(rt->decider, hold);
}

int64_t mp_rt_test_decisions_done(moeplace_runtime *rt) {
  return rt->decider ? mp_rt_decider_test_done(rt->decider) : 0;
}

void mp_rt_test_fail_next_decision(moeplace_runtime *rt) {
  if (rt->decider) mp_rt_decider_test_fail_next(rt->decider);
}
