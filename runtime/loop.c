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
          int e = rt->slot_expert[(size_t)l * rt->G + (size_t)r * rt->S + s];
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

/* Migrates to new_se/new_sh (identical on all ranks) and commits. */
static int migrate_to(moeplace_runtime *rt, const int *new_se, const double *new_sh,
                      moeplace_step_info *info) {
  int status = mp_rt_check_registration(rt);
  if (status != MOEPLACE_OK) return status;
  mp_rt_transfer *plan = NULL;
  int n = 0;
  status = mp_rt_make_plan(rt, new_se, &plan, &n);
  // make_plan only fails on memory or on an invalid placement, which was
  // validated identically everywhere; agree anyway before communicating.
  int ok = status == MOEPLACE_OK, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, rt->comm) != MPI_SUCCESS) all_ok = 0;
  if (!all_ok) {
    free(plan);
    return ok ? mp_fail(MOEPLACE_ERR_NOMEM, "another rank could not build the migration plan")
              : status;
  }
  mp_rt_migration_result res;
  status = mp_rt_migrate(rt, plan, n, &res);
  free(plan);
  if (status != MOEPLACE_OK) {
    rt->stats.migrations_failed++;
    return status;
  }
  size_t LG = (size_t)rt->L * rt->G;
  memcpy(rt->slot_expert, new_se, LG * sizeof *new_se);
  memcpy(rt->shares, new_sh, LG * sizeof *new_sh);
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

/* The coordinator's decision: forecast (predict engine), placement
 * (placement engine, from the placement in force, with the topology's
 * migration costs), the plan's bytes, and whether the predicted gain pays
 * for them. hdr = {status, migrate?}; new_se/new_sh filled when migrating. */
static void decide(moeplace_runtime *rt, int *hdr, int *new_se, double *new_sh,
                   moeplace_step_info *info) {
  double t0 = mp_now_s();
  int L = rt->L, E = rt->E, R = rt->R, S = rt->S, G = rt->G;
  hdr[0] = rt->pending_error;
  hdr[1] = 0;
  rt->pending_error = MOEPLACE_OK;
  if (hdr[0] != MOEPLACE_OK) return;
  double *p = malloc((size_t)L * E * sizeof *p); // p: [L][E] forecast proportions
  moeplace_placement *cur = NULL, *next = NULL;
  mp_rt_transfer *plan = NULL;
  int st = p ? MOEPLACE_OK : mp_fail(MOEPLACE_ERR_NOMEM, "out of memory forecasting");
  if (st == MOEPLACE_OK && moeplace_forecaster_forecast(rt->forecaster, p) != MOEPLACE_OK) {
    // A forecaster that cannot forecast (a numerical failure) must not stop
    // training: fall back to the mean of the last rebalance interval.
    int k = rt->cfg.rebalance_interval / rt->cfg.window;
    mp_rt_history_mean(rt->history, k > 0 ? k : 1, p);
  }
  if (st == MOEPLACE_OK) st = moeplace_placement_create(&cur, L, E, R, S);
  for (int l = 0; st == MOEPLACE_OK && l < L; l++) {
    memcpy(moeplace_placement_phy2log(cur, l), rt->slot_expert + (size_t)l * G, (size_t)G * sizeof(int));
    memcpy(moeplace_placement_share(cur, l), rt->shares + (size_t)l * G, (size_t)G * sizeof(double));
  }
  uint64_t all_bytes = 0;
  for (int l = 0; l < L; l++) all_bytes += (uint64_t)E * rt->expert_bytes[l];
  if (st == MOEPLACE_OK) {
    // Loads are proportions, so the sum over layers of the mean rank load is
    // L/R and an imbalance change d is a load change d*L/R: the trade-off
    // (imbalance per fraction of all state moved) becomes load per byte.
    moeplace_place_options opt;
    moeplace_place_options_init(&opt);
    opt.expert_bytes = L ? (double)all_bytes / ((double)L * E) : 0.0;
    opt.migration_weight =
        all_bytes ? rt->cfg.migration_tradeoff * L / ((double)R * (double)all_bytes) : 0.0;
    opt.byte_budget = rt->cfg.migration_budget_bytes ? (double)rt->cfg.migration_budget_bytes : -1.0;
    moeplace_place_stats ps;
    st = moeplace_place(rt->topo.shape, L, E, S, p, cur, &opt, &next, &ps);
  }
  for (int l = 0; st == MOEPLACE_OK && l < L; l++) {
    memcpy(new_se + (size_t)l * G, moeplace_placement_phy2log_const(next, l), (size_t)G * sizeof(int));
    memcpy(new_sh + (size_t)l * G, moeplace_placement_share_const(next, l), (size_t)G * sizeof(double));
  }
  if (st == MOEPLACE_OK) st = mp_rt_check_placement(rt, new_se, new_sh);
  int n = 0;
  if (st == MOEPLACE_OK) st = mp_rt_make_plan(rt, new_se, &plan, &n);
  moeplace_placement_destroy(cur);
  moeplace_placement_destroy(next);
  if (st != MOEPLACE_OK) {
    free(p);
    free(plan);
    hdr[0] = st;
    return;
  }
  double old_imb = mp_rt_predicted_imbalance(L, E, R, S, p, rt->slot_expert, rt->shares);
  double new_imb = mp_rt_predicted_imbalance(L, E, R, S, p, new_se, new_sh);
  free(p);
  uint64_t bytes = 0;
  for (int i = 0; i < n; i++)
    if (plan[i].src_rank != plan[i].dst_rank) bytes += rt->expert_bytes[plan[i].layer];
  free(plan);
  double frac = all_bytes ? (double)bytes / (double)all_bytes : 0.0;
  int changed = memcmp(new_se, rt->slot_expert, (size_t)L * G * sizeof *new_se) != 0 ||
                memcmp(new_sh, rt->shares, (size_t)L * G * sizeof *new_sh) != 0;
  int pays = old_imb - new_imb >= rt->cfg.min_gain + rt->cfg.migration_tradeoff * frac;
  int within = rt->cfg.migration_budget_bytes == 0 || bytes <= rt->cfg.migration_budget_bytes;
  hdr[1] = changed && pays && within;
  if (info) {
    info->predicted_imbalance_old = old_imb;
    info->predicted_imbalance_new = hdr[1] ? new_imb : old_imb;
  }
  double dt = mp_now_s() - t0;
  rt->stats.decision_s += dt;
  if (info) info->decision_s = dt;
}

static int rebalance(moeplace_runtime *rt, moeplace_step_info *info) {
  size_t LG = (size_t)rt->L * rt->G;
  int *new_se = rt->next_se;
  double *new_sh = rt->next_sh;
  int hdr[2] = {MOEPLACE_OK, 0};
  // The registration must be agreed before the coordinator prices bytes.
  int status = mp_rt_check_registration(rt);
  if (status != MOEPLACE_OK) return status;
  if (rt->rank == rt->cfg.coordinator) decide(rt, hdr, new_se, new_sh, info);
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
  if (MPI_Bcast(new_se, (int)LG, MPI_INT, rt->cfg.coordinator, rt->comm) != MPI_SUCCESS ||
      MPI_Bcast(new_sh, (int)LG, MPI_DOUBLE, rt->cfg.coordinator, rt->comm) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Bcast of the new placement failed");
  return migrate_to(rt, new_se, new_sh, info);
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

int moeplace_runtime_apply_placement(moeplace_runtime *rt, const int *slot_expert,
                                     const double *shares, moeplace_step_info *info) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "apply_placement: runtime is NULL");
  if (info) memset(info, 0, sizeof *info);
  size_t LG = (size_t)rt->L * rt->G;
  double *sh = malloc(LG * sizeof *sh);
  int local = MOEPLACE_OK;
  if (!slot_expert) local = mp_fail(MOEPLACE_ERR_ARG, "apply_placement: slot_expert is NULL");
  else if (!sh) local = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in apply_placement");
  else {
    if (shares) memcpy(sh, shares, LG * sizeof *sh);
    else mp_rt_equal_shares(rt->L, rt->G, rt->E, slot_expert, sh);
    local = mp_rt_check_placement(rt, slot_expert, sh);
  }
  // v = [valid, hash(slot_expert), hash(shares)], agreed in one allreduce.
  int64_t v[3] = {local == MOEPLACE_OK, 0, 0}, mn[3];
  if (local == MOEPLACE_OK) {
    v[1] = mp_rt_hash62(slot_expert, LG * sizeof *slot_expert, 1);
    v[2] = mp_rt_hash62(sh, LG * sizeof *sh, 2);
  }
  int same = 0;
  int status = mp_rt_agree_i64(rt->comm, v, 3, &same, mn, NULL);
  if (status == MOEPLACE_OK && mn[0] == 0)
    status = local != MOEPLACE_OK ? local
                                  : mp_fail(MOEPLACE_ERR_ARG, "apply_placement: invalid placement on another rank");
  else if (status == MOEPLACE_OK && !same)
    status = mp_fail(MOEPLACE_ERR_MISMATCH, "apply_placement: ranks passed different placements");
  if (status == MOEPLACE_OK) status = migrate_to(rt, slot_expert, sh, info);
  free(sh);
  return status;
}
