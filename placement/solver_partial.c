/* Partial migration toward a target placement.
 *
 * The fresh candidate of a layer moves everything that differs from the
 * current placement, or nothing; the local search from the current
 * placement takes one change at a time and only while each pays by itself,
 * so it stops where the max rank load needs several changes to drop. This
 * candidate walks from the current assignment toward the target (the
 * fresh placement, relabelled and aligned): slot by slot, each step the
 * change of a slot to its target content that leaves the lowest max rank
 * load (ties: the lowest sum of squared loads), as long as the placement
 * stays valid (every expert keeps a replica, no rank holds one twice). Of
 * all the prefixes of that walk it keeps the one of least score, the same
 * score the candidates are ranked by in place.c: max rank load + lambda x
 * migration cost + min_gain per move. So a fifth of the fresh placement's
 * bytes can buy most of its gain.
 *
 * The walk scores with even shares (w_e / c_e per replica: the assignment
 * alone fixes the loads, so a step is evaluated in O(c_a + c_b)); with
 * weighted shares the kept prefix is then water-filled, which can only
 * lower its max. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "placement/solver_internal.h"

/* Price (load units) of expert e on rank r relative to the current placement. */
static double arrival_price(const mp_place_layer *st, const mp_place_search *sp, int e, int r) {
  if (e < 0 || mp_cur_rank_holds(st, r, e)) return 0;
  int cls;
  return sp->lambda * mp_move_cost(st, e, r, &cls) + sp->min_gain;
}

/* Adds d to rank q's load change, listing q once in tl [nt]. */
static void touch(double *dl, int *tl, int *nt, int q, double d) {
  int k = 0;
  while (k < *nt && tl[k] != q) k++;
  if (k == *nt) tl[(*nt)++] = q;
  dl[q] += d;
}

/* Max rank load and change of the sum of squared loads after slot i changes
 * from its expert a to b (-1: empty). desc [R]: the ranks by decreasing
 * load; dl [R] zero and tl [R] scratch (the touched ranks' load changes). */
static void eval_change(const mp_place_layer *st, int i, int b, const int *desc, double *dl,
                        int *tl, double *mx, double *dsq) {
  const int a = st->slot_e[i], r0 = i / st->S;
  int nt = 0;
  for (int pass = 0; pass < 2; pass++) { // a loses a replica, b gains one
    const int e = pass ? b : a;
    if (e < 0) continue;
    const int c = st->cnt[e], c2 = pass ? c + 1 : c - 1;
    for (int j = st->head[e]; j >= 0; j = st->next[j]) {
      touch(dl, tl, &nt, j / st->S, j == i ? -st->w[e] / c : st->w[e] / c2 - st->w[e] / c);
    }
  }
  if (b >= 0) { // b arrives on r0 (legal: r0 holds no b)
    touch(dl, tl, &nt, r0, st->w[b] / (st->cnt[b] + 1));
  }
  double m = 0, d = 0;
  for (int k = 0; k < nt; k++) {
    const int q = tl[k];
    const double nl = st->load[q] + dl[q];
    d += nl * nl - st->load[q] * st->load[q];
    m = fmax(m, nl);
  }
  for (int k = 0; k < st->R; k++) { // the busiest rank left alone
    int touched = 0;
    for (int t = 0; t < nt && !touched; t++) touched = tl[t] == desc[k];
    if (!touched) {
      m = fmax(m, st->load[desc[k]]);
      break;
    }
  }
  for (int k = 0; k < nt; k++) dl[tl[k]] = 0;
  *mx = m;
  *dsq = d;
}

static void apply_change(mp_place_layer *st, int i, int b) {
  const int a = st->slot_e[i];
  if (a >= 0) {
    mp_st_take(st, i);
    const double x = st->w[a] / st->cnt[a];
    for (int j = st->head[a]; j >= 0; j = st->next[j]) {
      st->load[j / st->S] += x - st->slot_x[j];
      st->slot_x[j] = x;
    }
  }
  if (b >= 0) {
    mp_st_put(st, i, b, 0);
    const double x = st->w[b] / st->cnt[b];
    for (int j = st->head[b]; j >= 0; j = st->next[j]) {
      st->load[j / st->S] += x - st->slot_x[j];
      st->slot_x[j] = x;
    }
  }
}

/* The legal changes' best among the differing slots diff [nd]: its position
 * in diff, or -1. */
static int best_change(const mp_place_layer *st, const int *target, const int *diff, int nd,
                       const int *desc, double *dl, int *tl) {
  int best = -1;
  double bm = INFINITY, bd = INFINITY;
  for (int n = 0; n < nd; n++) {
    const int i = diff[n], a = st->slot_e[i], b = target[i];
    if (a >= 0 && st->cnt[a] < 2) continue;                    // a's last replica
    if (b >= 0 && mp_st_rank_holds(st, i / st->S, b)) continue; // b twice on the rank
    double m, d;
    eval_change(st, i, b, desc, dl, tl, &m, &d);
    if (m < bm - 1e-12 * bm || (m <= bm + 1e-12 * bm && d < bd)) {
      bm = m;
      bd = d;
      best = n;
    }
  }
  return best;
}

void mp_place_layer_toward(mp_place_layer *st, const int *target, const mp_place_search *sp) {
  const int R = st->R;
  mp_even_reset_loads(st);
  int *desc = st->c_rh, *tl = st->c_skip, *diff = st->iscratch;
  int *step_slot = st->c_reps, *step_from = st->c_ord; // [RS] the walk, for the undo
  double *dl = st->t_dbl, tot = 0;
  for (int r = 0; r < R; r++) dl[r] = 0;
  for (int e = 0; e < st->E; e++) tot += st->w[e];
  int nd = 0;
  double price = 0; // of the state's moves; it only grows along the walk
  for (int i = 0; i < st->RS; i++) {
    price += arrival_price(st, sp, st->slot_e[i], i / st->S);
    if (st->slot_e[i] != target[i]) diff[nd++] = i;
  }
  double best = mp_place_layer_max(st) + price;
  int nsteps = 0, best_steps = 0;
  const int cap = sp->max_iter > 0 && sp->max_iter < st->RS ? sp->max_iter : st->RS;
  // no later prefix can score below the mean rank load plus the price so far
  while (nsteps < cap && tot / R + price < best) {
    for (int r = 0; r < R; r++) desc[r] = r;
    mp_radix_sort_desc(desc, R, st->load, st->c_rtmp, st->c_rk0, st->c_rk1);
    const int n = best_change(st, target, diff, nd, desc, dl, tl);
    if (n < 0) break;
    const int i = diff[n], a = st->slot_e[i], r0 = i / st->S;
    diff[n] = diff[--nd];
    price += arrival_price(st, sp, target[i], r0) - arrival_price(st, sp, a, r0);
    step_slot[nsteps] = i;
    step_from[nsteps++] = a;
    apply_change(st, i, target[i]);
    const double score = mp_place_layer_max(st) + price;
    if (score < best - 1e-12 * fabs(best)) {
      best = score;
      best_steps = nsteps;
    }
  }
  while (nsteps > best_steps) { // back to the best prefix
    nsteps--;
    apply_change(st, step_slot[nsteps], step_from[nsteps]);
  }
  mp_even_reset_loads(st); // no drift from the incremental updates
  if (!st->even) mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / R : 1), WF_MAX_PASSES);
}
