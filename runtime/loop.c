/* The closed loop of DESIGN.md, run by moeplace_runtime_step(): window
 * aggregation into the coordinator's history, the rebalance decision on the
 * coordinator, its broadcast, and the migration every rank takes part in. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/timer.h"
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
    mp_rt_history_push(rt->history, totals);
    int st = moeplace_forecaster_observe_counts(rt->forecaster, totals);
    free(totals);
    if (st < 0 && !rt->pending_error) rt->pending_error = st;
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

/* The load forecast [L][E] for the decision. A forecaster that cannot
 * forecast (a numerical failure) must not stop training: the fallback is the
 * mean of the last rebalance interval's windows in the history. */
static void forecast(moeplace_runtime *rt, double *p) {
  if (moeplace_forecaster_forecast(rt->forecaster, p) == MOEPLACE_OK) return;
  int k = rt->cfg.rebalance_interval / rt->cfg.window;
  mp_rt_history_mean(rt->history, k > 0 ? k : 1, p);
}

/* The runtime's configuration as placement options (loads are forecast
 * proportions, so the sum over layers of the mean rank load is L/R):
 *  - min_gain is in imbalance units on both sides: moeplace_place keeps the
 *    current placement unless its gain in max rank load exceeds the
 *    migration price plus min_gain x (sum of mean rank loads), i.e. unless
 *    the imbalance gain exceeds min_gain plus the price in imbalance units;
 *  - the price of a move is migration_weight x bytes x class cost, which is
 *    tradeoff x (bytes / bytes of all expert state) x class cost in
 *    imbalance units with migration_weight = tradeoff x L / (R x all bytes);
 *  - the byte budget is moeplace_place's hard cap. */
static void place_options(const moeplace_runtime *rt, moeplace_place_options *opt) {
  int L = rt->L, E = rt->E, R = rt->R;
  uint64_t all_bytes = 0;
  for (int l = 0; l < L; l++) all_bytes += (uint64_t)E * rt->expert_bytes[l];
  moeplace_place_options_init(opt);
  opt->expert_bytes = (double)all_bytes / ((double)L * E);
  opt->migration_weight =
      all_bytes ? rt->cfg.migration_tradeoff * L / ((double)R * (double)all_bytes) : 0.0;
  opt->byte_budget =
      (double)rt->cfg.migration_budget_bytes; // MOEPLACE_NO_LIMIT carries over
  opt->min_gain = rt->cfg.min_gain;
}

/* The coordinator's decision: forecast (predict engine), then moeplace_place
 * from the placement in force, which also decides whether moving replicas
 * pays for the migration. Its result is left in rt->next. hdr = {status,
 * commit?}: commit when moeplace_place moved replicas, or when it kept them
 * but its re-optimised routing shares gain at least min_gain of predicted
 * imbalance over the shares in force (a change of routing alone moves no
 * byte; below that gain it is not worth a collective commit). */
static void decide(moeplace_runtime *rt, int *hdr, moeplace_step_info *info) {
  double t0 = mp_now_s();
  hdr[0] = rt->pending_error;
  hdr[1] = 0;
  rt->pending_error = MOEPLACE_OK;
  if (hdr[0] != MOEPLACE_OK) return;
  double *p = malloc((size_t)rt->L * rt->E * sizeof *p); // p: [L][E] forecast proportions
  if (!p) {
    hdr[0] = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory forecasting");
    return;
  }
  forecast(rt, p);
  moeplace_place_options opt;
  place_options(rt, &opt);
  moeplace_placement *next = NULL;
  moeplace_place_stats ps;
  double old_imb = 1.0, new_imb = 1.0;
  int st = moeplace_place(rt->topo.shape, rt->L, rt->E, rt->S, p, rt->placement, &opt, &next, &ps);
  if (st == MOEPLACE_OK) st = moeplace_placement_imbalance(rt->placement, p, &old_imb);
  if (st == MOEPLACE_OK) {
    size_t LG = (size_t)rt->L * rt->G;
    memcpy(rt->next->phy2log, next->phy2log, LG * sizeof *next->phy2log);
    memcpy(rt->next->share, next->share, LG * sizeof *next->share);
    new_imb = ps.imbalance;
    int moves = !ps.kept_current && ps.moves > 0;
    int reroutes = memcmp(rt->next->share, rt->placement->share, LG * sizeof *next->share) != 0;
    hdr[1] = moves || (reroutes && old_imb - new_imb >= rt->cfg.min_gain);
  }
  moeplace_placement_destroy(next);
  free(p);
  hdr[0] = st;
  if (info && st == MOEPLACE_OK) {
    info->predicted_imbalance_old = old_imb;
    info->predicted_imbalance_new = hdr[1] ? new_imb : old_imb;
  }
  double dt = mp_now_s() - t0;
  rt->stats.decision_s += dt;
  if (info) info->decision_s = dt;
}

/* runtime -> predict -> placement (decide, on the coordinator) -> runtime:
 * the decision and the placement are broadcast, and every rank builds the
 * plan and migrates. */
static int rebalance(moeplace_runtime *rt, moeplace_step_info *info) {
  size_t LG = (size_t)rt->L * rt->G;
  // The registration must be agreed before the coordinator prices bytes.
  int status = mp_rt_check_registration(rt);
  if (status != MOEPLACE_OK) return status;
  int *hdr = malloc(2 * sizeof *hdr); // on the heap: a timed-out broadcast keeps it
  if (!hdr) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in the rebalance decision");
  hdr[0] = MOEPLACE_OK;
  hdr[1] = 0;
  if (rt->rank == rt->cfg.coordinator) decide(rt, hdr, info);
  status = bcast(rt, hdr, 2, MPI_INT, "the rebalance decision broadcast (MPI_Ibcast)");
  if (status != MOEPLACE_OK) {
    if (rt->broken) mp_rt_orphan(hdr);
    else free(hdr);
    return status;
  }
  int decided = hdr[0], commit = hdr[1];
  free(hdr);
  if (info) info->rebalance_checked = 1;
  if (decided != MOEPLACE_OK) {
    if (rt->rank == rt->cfg.coordinator) return decided;
    return mp_fail(decided, "the coordinator could not decide: %s", moeplace_strerror(decided));
  }
  if (!commit) {
    rt->stats.rebalances_skipped++;
    return MOEPLACE_OK;
  }
  status = bcast(rt, rt->next->phy2log, (int)LG, MPI_INT, "the new placement broadcast (MPI_Ibcast)");
  if (status == MOEPLACE_OK)
    status = bcast(rt, rt->next->share, (int)LG, MPI_DOUBLE, "the new shares broadcast (MPI_Ibcast)");
  if (status != MOEPLACE_OK) {
    if (rt->broken) { // the broadcast may still complete into rt->next
      mp_rt_orphan(rt->next);
      rt->next = NULL;
    }
    return status;
  }
  return migrate_to_next(rt, info);
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

static int step(moeplace_runtime *rt, const int64_t *caller_step, moeplace_step_info *info) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "step: runtime is NULL");
  if (info) memset(info, 0, sizeof *info);
  int status = usable(rt, "step");
  if (status != MOEPLACE_OK) return status;
  if (rt->step == 0) { // the first step reports registration problems early
    status = mp_rt_check_registration(rt);
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
  if (rt->cfg.rebalance_interval > 0 && rt->step % rt->cfg.rebalance_interval == 0)
    status = rebalance(rt, info);
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
  if (status == MOEPLACE_OK) status = migrate_to_next(rt, info);
  return status;
}

