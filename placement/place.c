/* moeplace_place: validates the problem, runs the per-layer solver on every
 * layer (from the current placement when there is one, with a fresh
 * placement as the alternative when it pays within the budget), decides
 * whether the change pays for its migration, and fills the stats. A third
 * candidate repairs the current placement by component transfers. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/timer.h"
#include "placement/placement_impl.h"
#include "placement/solver.h"
#include "placement/topology.h"

void moeplace_place_options_init(moeplace_place_options *opt) {
  if (!opt) return;
  memset(opt, 0, sizeof *opt);
  opt->migration_weight = 0.0;
  opt->byte_budget = -1.0;
  opt->expert_bytes = 1.0;
  opt->min_gain = 2e-3;
  opt->max_iterations = 64;
  opt->time_limit_ms = 0;
  opt->seed = 1;
}

static int check_options(const moeplace_place_options *o) {
  if (!isfinite(o->migration_weight) || o->migration_weight < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "migration_weight must be finite and >= 0, got %g",
                   o->migration_weight);
  if (!isfinite(o->byte_budget) && !isnan(o->byte_budget) && o->byte_budget > 0)
    return mp_fail(MOEPLACE_ERR_ARG, "byte_budget must be finite (< 0 for unlimited)");
  if (isnan(o->byte_budget)) return mp_fail(MOEPLACE_ERR_ARG, "byte_budget is NaN");
  if (!isfinite(o->expert_bytes) || o->expert_bytes < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "expert_bytes must be finite and >= 0, got %g",
                   o->expert_bytes);
  if (!isfinite(o->min_gain) || o->min_gain < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "min_gain must be finite and >= 0, got %g", o->min_gain);
  if (o->max_iterations < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "max_iterations must be >= 0, got %d", o->max_iterations);
  return MOEPLACE_OK;
}

int moeplace_place(const moeplace_topology *topo, int layers, int experts, int slots,
                   const double *loads, const moeplace_placement *current,
                   const moeplace_place_options *opt_in, moeplace_placement **out,
                   moeplace_place_stats *stats) {
  const double t0 = mp_now_s();
  if (!topo || !loads || !out) return mp_fail(MOEPLACE_ERR_ARG, "place: NULL argument");
  moeplace_place_options opt;
  if (opt_in)
    opt = *opt_in;
  else
    moeplace_place_options_init(&opt);
  int rc = check_options(&opt);
  if (rc) return rc;
  const int R = topo->ranks, E = experts, S = slots, L = layers;
  rc = mp_place_check_shape(L, E, R, S);
  if (rc) return rc;
  for (size_t i = 0; i < (size_t)L * E; i++)
    if (!(loads[i] >= 0) || !isfinite(loads[i]))
      return mp_fail(MOEPLACE_ERR_ARG, "load of layer %zu expert %zu is %g: loads must be finite "
                     "and >= 0", i / (size_t)E, i % (size_t)E, loads[i]);
  if (current) {
    if (current->layers != L || current->experts != E || current->ranks != R ||
        current->slots != S)
      return mp_fail(MOEPLACE_ERR_ARG,
                     "current placement has shape %d layers x %d experts x %d ranks x %d slots, "
                     "the problem %d x %d x %d x %d",
                     current->layers, current->experts, current->ranks, current->slots, L, E, R, S);
    rc = moeplace_placement_validate(current);
    if (rc) {
      return mp_fail(rc, "current placement: %s", moeplace_last_error());
    }
  }
  moeplace_placement *res;
  rc = moeplace_placement_create(&res, L, E, R, S);
  if (rc) return rc;
  mp_place_layer st, alt, bst;
  if (mp_place_layer_init(&st, E, R, S, topo)) {
    moeplace_placement_destroy(res);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the placement solver");
  }
  if (current && mp_place_layer_init(&alt, E, R, S, topo)) {
    mp_place_layer_free(&st);
    moeplace_placement_destroy(res);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the placement solver");
  }
  if (current && mp_place_layer_init(&bst, E, R, S, topo)) {
    mp_place_layer_free(&st);
    mp_place_layer_free(&alt);
    moeplace_placement_destroy(res);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the placement solver");
  }
  const size_t RS = (size_t)R * S;
  double budget = opt.byte_budget; // remaining bytes (< 0: unlimited)
  mp_place_search sp = {.lambda = opt.migration_weight,
                        .min_gain = 0,
                        .max_iter = opt.max_iterations,
                        .budget = &budget,
                        .deadline = opt.time_limit_ms > 0 ? t0 + opt.time_limit_ms * 1e-3 : 0};
  double num = 0, den = 0, lb = 0, num_keep = 0;
  double gain_total = 0, cost_total = 0;
  moeplace_place_stats s;
  memset(&s, 0, sizeof s);
  for (int l = 0; l < L; l++) {
    const double *w = loads + (size_t)l * E;
    double tot = 0;
    for (int e = 0; e < E; e++) tot += w[e];
    const double mean = tot / R;
    sp.min_gain = opt.min_gain * mean;
    lb += mp_place_layer_bound(&st, w);
    den += mean;
    int *ph = moeplace_placement_phy2log(res, l);
    double *sh = moeplace_placement_share(res, l);
    if (!current) {
      mp_place_layer_set_current(&st, NULL, opt.expert_bytes);
      mp_place_layer_fresh(&st, w, &sp);
    } else {
      const int *cur = moeplace_placement_phy2log_const(current, l);
      mp_place_layer_set_current(&st, cur, opt.expert_bytes);
      mp_place_layer_set_current(&alt, cur, opt.expert_bytes);
      // the current assignment with re-optimised shares (moving nothing)
      mp_place_search keep = sp;
      keep.max_iter = 0;
      mp_place_layer_from_current(&st, w, &keep);
      const double m_keep = mp_place_layer_max(&st);
      num_keep += m_keep;
      // Candidates: the repair of the current placement by component
      // transfers, a fresh placement built around the current one, the fresh
      // placement aligned to the current slots, and the local search from
      // the current placement. Score: max load + weight x cost + min_gain
      // per move. The best one within the byte budget wins; keeping the
      // current placement (score m_keep, no move) is the default.
      const double budget_before = budget;
      mp_place_layer_set_current(&bst, cur, opt.expert_bytes);
      int64_t mv, best_mv = 0;
      double by, cb, cost, best_bytes = 0, best_score = m_keep;
      int have_best = 0;
      for (int kind = 0; kind < 4; kind++) {
        if (kind == 0) {
          mp_place_layer_copy(&alt, &st); // the current placement, shares re-optimised
          mp_place_layer_repair(&alt, w);
        } else if (kind == 1) {
          mp_place_layer_home(&alt, w);
        } else if (kind == 2) {
          mp_place_layer_fresh(&alt, w, &sp);
          mp_place_layer_align(&alt);
        } else {
          // the search moves one or two replicas per step: it can only win
          // with fewer moves than the best candidate so far
          mp_place_search ls = sp;
          double ls_budget = budget_before;
          ls.budget = budget_before >= 0 ? &ls_budget : NULL;
          if (have_best && ls.max_iter > best_mv - 1) ls.max_iter = (int)(best_mv - 1);
          if (ls.max_iter <= 0) break;
          mp_place_layer_from_current(&alt, w, &ls);
        }
        mp_place_layer_moves(&alt, &mv, &by, &cb, &cost);
        const double score = mp_place_layer_max(&alt) + opt.migration_weight * cost +
                             sp.min_gain * (double)mv;
        if (score < best_score && (budget_before < 0 || by <= budget_before)) {
          best_score = score;
          best_bytes = by;
          best_mv = mv;
          have_best = 1;
          mp_place_layer_copy(&bst, &alt);
        }
      }
      if (have_best) mp_place_layer_copy(&st, &bst);
      if (budget_before >= 0) budget = budget_before - best_bytes;
      double m_new = mp_place_layer_max(&st);
      mp_place_layer_moves(&st, &mv, &by, &cb, &cost);
      gain_total += m_keep - m_new;
      cost_total += opt.migration_weight * cost;
    }
    if (current) mp_place_layer_align(&st);
    mp_place_layer_export(&st, ph, sh);
  }
  // Explicit decision: keep the current assignment unless the predicted
  // gain pays for the migration (and beats noise).
  if (current && !(gain_total > cost_total + opt.min_gain * den)) {
    for (int l = 0; l < L; l++) {
      const double *w = loads + (size_t)l * E;
      const int *cur = moeplace_placement_phy2log_const(current, l);
      mp_place_layer_set_current(&st, cur, opt.expert_bytes);
      mp_place_search keep = sp;
      keep.max_iter = 0;
      keep.budget = NULL;
      mp_place_layer_from_current(&st, w, &keep);
      mp_place_layer_export(&st, moeplace_placement_phy2log(res, l),
                            moeplace_placement_share(res, l));
    }
    s.kept_current = 1;
  }
  (void)RS;
  // Figures, recomputed from the exported placement.
  double *rl = st.dscratch; // [R] (scratch is at least 2 max(E, RS, R))
  for (int l = 0; l < L; l++) {
    moeplace_placement_rank_loads(res, l, loads + (size_t)l * E, rl);
    double mx = 0;
    for (int r = 0; r < R; r++)
      if (rl[r] > mx) mx = rl[r];
    num += mx;
  }
  if (current) {
    moeplace_move_stats ms;
    rc = moeplace_placement_diff(current, res, topo, opt.expert_bytes, &ms);
    if (rc) goto fail;
    s.moves = ms.moves;
    s.bytes_moved = ms.bytes_moved;
    s.cross_node_bytes = ms.cross_node_bytes;
    s.migration_cost = ms.cost;
    if (opt.byte_budget >= 0 && ms.bytes_moved > opt.byte_budget) {
      // cannot happen by construction; the cap is hard, so never return more
      rc = mp_fail(MOEPLACE_ERR_NUMERIC, "placement moved %g bytes over the budget of %g",
                   ms.bytes_moved, opt.byte_budget);
      goto fail;
    }
    if (s.moves == 0) s.kept_current = 1;
    s.current_imbalance = den > 0 ? num_keep / den : 1.0;
  }
  s.layers = L;
  s.experts = E;
  s.ranks = R;
  s.slots = S;
  s.imbalance = den > 0 ? num / den : 1.0;
  s.lower_bound = den > 0 ? lb / den : 1.0;
  s.gap = s.lower_bound > 0 ? (s.imbalance - s.lower_bound) / s.lower_bound : 0;
  mp_place_layer_free(&st);
  if (current) {
    mp_place_layer_free(&alt);
    mp_place_layer_free(&bst);
  }
  s.solve_ms = (mp_now_s() - t0) * 1e3;
  if (stats) *stats = s;
  *out = res;
  return MOEPLACE_OK;
fail:
  mp_place_layer_free(&st);
  if (current) {
    mp_place_layer_free(&alt);
    mp_place_layer_free(&bst);
  }
  moeplace_placement_destroy(res);
  return rc;
}
