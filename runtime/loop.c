/* The closed loop of DESIGN.md, run by moeplace_runtime_step(): window
 * aggregation into the coordinator's history, the rebalance decision on the
 * coordinator, its broadcast, and the migration every rank takes part in. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/timer.h"
#include "runtime/internal.h"
#include "runtime/rt_config.h"

/* Closes a window: one MPI_Gather of every rank's [1 + L*S] record
 * (step number, then the window's token counts per local slot) to the
 * coordinator, which maps slots to logical experts with the placement in
 * force and appends the proportions to its history. */
static int aggregate(moeplace_runtime *rt) {
  double t0 = mp_now_s();
  size_t LS = (size_t)rt->L * rt->S, rec = 1 + LS;
  uint64_t *mine = malloc(rec * sizeof *mine);
  uint64_t *totals = NULL;
  if (!mine) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory aggregating a window");
  mine[0] = (uint64_t)rt->step;
  memcpy(mine + 1, rt->window_counts, LS * sizeof *mine);
  int rc = MPI_Gather(mine, (int)rec, MPI_UINT64_T, rt->gather_buf, (int)rec, MPI_UINT64_T,
                      rt->cfg.coordinator, rt->comm);
  free(mine);
  memset(rt->window_counts, 0, LS * sizeof *rt->window_counts);
  if (rc != MPI_SUCCESS) return mp_fail(MOEPLACE_ERR_MPI, "MPI_Gather of window loads failed");
  rt->stats.windows++;
  if (rt->rank == rt->cfg.coordinator) {
    totals = calloc((size_t)rt->L * rt->E, sizeof *totals); // totals: [L][E]
    if (!totals) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory aggregating a window");
    for (int r = 0; r < rt->R; r++) {
      const uint64_t *g = rt->gather_buf + (size_t)r * rec;
      if ((int64_t)g[0] != rt->step && !rt->pending_error)
        rt->pending_error = mp_fail(MOEPLACE_ERR_MISMATCH,
                                    "rank %d is at step %lld, the coordinator at %lld", r,
                                    (long long)g[0], (long long)rt->step);
      for (int l = 0; l < rt->L; l++)
        for (int s = 0; s < rt->S; s++) {
          int e = rt->placement->phy2log[(size_t)l * rt->G + (size_t)r * rt->S + s];
          if (e >= 0) totals[(size_t)l * rt->E + e] += g[1 + (size_t)l * rt->S + s];
        }
    }
    mp_rt_history_push(rt->history, totals);
    int st = moeplace_forecaster_observe_counts(rt->forecaster, totals);
    free(totals);
    if (st < 0 && !rt->pending_error) rt->pending_error = st;
  }
  rt->stats.aggregate_s += mp_now_s() - t0;
  return MOEPLACE_OK;
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
  int ok = status == MOEPLACE_OK, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, rt->comm) != MPI_SUCCESS) all_ok = 0;
  if (!all_ok) {
    moeplace_transfers_free(plan);
    return ok ? mp_fail(MOEPLACE_ERR_NOMEM, "another rank could not build the migration plan")
              : status;
  }
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
  int hdr[2] = {MOEPLACE_OK, 0};
  // The registration must be agreed before the coordinator prices bytes.
  int status = mp_rt_check_registration(rt);
  if (status != MOEPLACE_OK) return status;
  if (rt->rank == rt->cfg.coordinator) decide(rt, hdr, info);
  if (MPI_Bcast(hdr, 2, MPI_INT, rt->cfg.coordinator, rt->comm) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Bcast of the rebalance decision failed");
  if (info) info->rebalance_checked = 1;
  if (hdr[0] != MOEPLACE_OK) {
    if (rt->rank == rt->cfg.coordinator) return hdr[0];
    return mp_fail(hdr[0], "the coordinator could not decide: %s", moeplace_strerror(hdr[0]));
  }
  if (!hdr[1]) {
    rt->stats.rebalances_skipped++;
    return MOEPLACE_OK;
  }
  if (MPI_Bcast(rt->next->phy2log, (int)LG, MPI_INT, rt->cfg.coordinator, rt->comm) != MPI_SUCCESS ||
      MPI_Bcast(rt->next->share, (int)LG, MPI_DOUBLE, rt->cfg.coordinator, rt->comm) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Bcast of the new placement failed");
  return migrate_to_next(rt, info);
}

int moeplace_runtime_step(moeplace_runtime *rt, moeplace_step_info *info) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "step: runtime is NULL");
  if (info) memset(info, 0, sizeof *info);
  int status = MOEPLACE_OK;
  if (rt->step == 0) { // the first step reports registration problems early
    status = mp_rt_check_registration(rt);
    if (status != MOEPLACE_OK) return status;
  }
  rt->step++;
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

/* Fills rt->next from the caller's arrays (equal shares when shares is
 * NULL) and validates it: local. */
static int next_from_arrays(moeplace_runtime *rt, const int *slot_expert, const double *shares) {
  size_t LG = (size_t)rt->L * rt->G;
  if (!slot_expert) return mp_fail(MOEPLACE_ERR_ARG, "apply_placement: slot_expert is NULL");
  memcpy(rt->next->phy2log, slot_expert, LG * sizeof *slot_expert);
  int st = MOEPLACE_OK;
  if (shares) memcpy(rt->next->share, shares, LG * sizeof *shares);
  else st = moeplace_placement_equal_shares(rt->next);
  if (st == MOEPLACE_OK) st = moeplace_placement_validate(rt->next);
  return st == MOEPLACE_OK ? st : mp_fail(st, "apply_placement: %s", moeplace_last_error());
}

int moeplace_runtime_apply_placement(moeplace_runtime *rt, const int *slot_expert,
                                     const double *shares, moeplace_step_info *info) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "apply_placement: runtime is NULL");
  if (info) memset(info, 0, sizeof *info);
  size_t LG = (size_t)rt->L * rt->G;
  int local = next_from_arrays(rt, slot_expert, shares);
  // v = [valid, hash(slot_expert), hash(shares)], agreed in one allreduce.
  int64_t v[3] = {local == MOEPLACE_OK, 0, 0}, mn[3];
  if (local == MOEPLACE_OK) {
    v[1] = mp_rt_hash62(rt->next->phy2log, LG * sizeof *rt->next->phy2log, 1);
    v[2] = mp_rt_hash62(rt->next->share, LG * sizeof *rt->next->share, 2);
  }
  int same = 0;
  int status = mp_rt_agree_i64(rt->comm, v, 3, &same, mn, NULL);
  if (status == MOEPLACE_OK && mn[0] == 0)
    status = local != MOEPLACE_OK ? local
                                  : mp_fail(MOEPLACE_ERR_ARG, "apply_placement: invalid placement on another rank");
  else if (status == MOEPLACE_OK && !same)
    status = mp_fail(MOEPLACE_ERR_MISMATCH, "apply_placement: ranks passed different placements");
  if (status == MOEPLACE_OK) status = migrate_to_next(rt, info);
  return status;
}
