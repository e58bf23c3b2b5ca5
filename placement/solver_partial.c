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
 * migration cost + min_gain per move. So part of the fresh placement's
 * bytes can buy much of its gain.
 *
 * The walk scores with even shares (w_e / c_e per replica: the assignment
 * alone fixes the loads, so a step is evaluated in O(c_a + c_b)); with
 * weighted shares the kept prefix is then water-filled, which can only
 * lower its max. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdlib.h>

#include "placement/solver_internal.h"

/* Busiest ranks kept per step: a change touches its two experts' ranks
 * (a few), so the busiest untouched rank is almost always among them. */
#define WALK_TOP 8

/* Max rank load and change of the sum of squared loads once the touched
 * ranks' loads change by v (v->dl [R], cleared here). top [ntop]: the
 * busiest ranks, by decreasing load. */
static void eval_score(const mp_place_layer *st, const mp_even_eval *v, const int *top, int ntop,
                       double *mx, double *dsq) {
  double *dl = v->dl;
  const unsigned char *listed = v->mark;
  const int *tl = v->touched, nt = v->nt;
  double m = 0, d = 0;
  for (int k = 0; k < nt; k++) {
    const int q = tl[k];
    const double nl = st->load[q] + dl[q];
    d += nl * nl - st->load[q] * st->load[q];
    m = fmax(m, nl);
  }
  // the busiest rank left alone: among the WALK_TOP busiest, else any
  int f = 0;
  while (f < ntop && listed[top[f]]) f++;
  if (f < ntop)
    m = fmax(m, st->load[top[f]]);
  else
    for (int r = 0; r < st->R; r++)
      if (!listed[r]) m = fmax(m, st->load[r]);
  for (int k = 0; k < nt; k++) {
    dl[tl[k]] = 0;
    v->mark[tl[k]] = 0;
  }
  *mx = m;
  *dsq = d;
}

/* The same after slot i changes from its expert a to b (-1: empty); dl [R]
 * zero and tl [R] scratch (the touched ranks' load changes). */
static void eval_change(const mp_place_layer *st, int i, int b, const int *top, int ntop, double *dl,
                        int *tl, double *mx, double *dsq) {
  const int a = st->slot_e[i], r0 = i / st->S;
  mp_even_eval v = {dl, tl, 0, st->ev_mark};
  if (a >= 0) { // a leaves slot i: its other replicas grow
    mp_ev_recount(&v, st, a, st->cnt[a] - 1, i);
    mp_ev_add(&v, r0, -st->w[a] / st->cnt[a]);
  }
  if (b >= 0) { // b arrives on r0 (legal: r0 holds no b): its replicas shrink
    mp_ev_recount(&v, st, b, st->cnt[b] + 1, -1);
    mp_ev_add(&v, r0, st->w[b] / (st->cnt[b] + 1));
  }
  eval_score(st, &v, top, ntop, mx, dsq);
}

/* The same for swapping the experts of slots i and j (other ranks): the
 * replica counts stay, so only the two ranks' loads change. */
static void eval_swap(const mp_place_layer *st, int i, int j, const int *top, int ntop, double *dl,
                      int *tl, double *mx, double *dsq) {
  const int a = st->slot_e[i], b = st->slot_e[j];
  const double delta = st->w[b] / st->cnt[b] - st->w[a] / st->cnt[a];
  mp_even_eval v = {dl, tl, 0, st->ev_mark};
  mp_ev_add(&v, i / st->S, delta);
  mp_ev_add(&v, j / st->S, -delta);
  eval_score(st, &v, top, ntop, mx, dsq);
}

static void apply_change(mp_place_layer *st, int i, int b) {
  const int a = st->slot_e[i];
  if (a >= 0) {
    mp_st_take(st, i);
    // a swap's first half leaves a with no replica until its second half
    const double x = st->cnt[a] ? st->w[a] / st->cnt[a] : 0;
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

/* The walk: the slots still differing from the target (diff [nd], pos [RS]
 * each one's index in diff), and the slots of each target expert (thead
 * [E], tnext [RS]; NULL without memory: every step scans all of diff). */
typedef struct walk {
  const int *target;
  int *diff, *pos, nd;
  int *thead, *tnext;
} walk;

/* A step of the walk: slot i changes to its target, or (j >= 0) slots i
 * and j swap their experts; m, d: its max rank load and change of the sum
 * of squared loads. */
typedef struct walk_step {
  int i, j;
  double m, d;
} walk_step;

static void keep(walk_step *best, int i, int j, double m, double d) {
  if (m < best->m - 1e-12 * best->m || (m <= best->m + 1e-12 * best->m && d < best->d))
    *best = (walk_step){i, j, m, d};
}

/* Slot i holds the last replica of its expert a, so it cannot simply take
 * its target b: it swaps with a slot of b on another rank that holds no a
 * (one whose target is a first, else one whose target is not b, so that
 * the walk still progresses). Without spare slots (as many slots as
 * experts) every step is such a swap. -1 if none. */
static int swap_partner(const mp_place_layer *st, const walk *wk, int i, int b) {
  const int a = st->slot_e[i], r0 = i / st->S;
  int pick = -1;
  for (int j = st->head[b]; j >= 0; j = st->next[j]) {
    const int r1 = j / st->S;
    if (r1 == r0 || wk->target[j] == b || mp_st_rank_holds(st, r1, a)) continue;
    if (wk->target[j] == a) return j;
    if (pick < 0) pick = j;
  }
  return pick;
}

/* Scores slot i's step toward its target if legal; keeps the best. */
static void try_slot(const mp_place_layer *st, const walk *wk, int i, const int *top, int ntop,
                     double *dl, int *tl, walk_step *best) {
  const int a = st->slot_e[i], b = wk->target[i];
  if (a == b) return;
  if (b >= 0 && mp_st_rank_holds(st, i / st->S, b)) return; // b twice on the rank
  double m, d;
  if (a >= 0 && st->cnt[a] < 2) { // a's last replica: a swap, if any
    const int j = b >= 0 ? swap_partner(st, wk, i, b) : -1;
    if (j < 0) return;
    eval_swap(st, i, j, top, ntop, dl, tl, &m, &d);
    keep(best, i, j, m, d);
    return;
  }
  eval_change(st, i, b, top, ntop, dl, tl, &m, &d);
  keep(best, i, -1, m, d);
}

/* The legal step of least max rank load (ties: least sum of squares), or
 * one with i = -1. A step can only lower the max if it lowers the busiest
 * rank's load: it replaces a replica there, or adds a replica of an expert
 * held there. Those few are tried first; only when none lowers the max are
 * all the differing slots scanned. */
static walk_step best_change(const mp_place_layer *st, const walk *wk, const int *top, int ntop,
                             double *dl, int *tl) {
  const int S = st->S;
  walk_step best = {-1, -1, INFINITY, INFINITY};
  if (wk->thead && ntop > 0) {
    const int rm = top[0];
    for (int k = 0; k < S; k++) {
      const int i = rm * S + k, e = st->slot_e[i];
      try_slot(st, wk, i, top, ntop, dl, tl, &best);
      if (e >= 0)
        for (int j = wk->thead[e]; j >= 0; j = wk->tnext[j])
          if (j / S != rm) try_slot(st, wk, j, top, ntop, dl, tl, &best);
    }
    if (best.i >= 0 && best.m < st->load[rm] * (1 - 1e-12)) return best;
  }
  for (int n = 0; n < wk->nd; n++) try_slot(st, wk, wk->diff[n], top, ntop, dl, tl, &best);
  return best;
}

/* Slot i now holds its target: off the list of differing slots. */
static void resolve(walk *wk, int i) {
  const int n = wk->pos[i];
  wk->diff[n] = wk->diff[--wk->nd];
  wk->pos[wk->diff[n]] = n;
}

void mp_place_layer_toward(mp_place_layer *st, const int *target, const mp_place_search *sp) {
  const int R = st->R, RS = st->RS;
  mp_even_reset_loads(st);
  int top[WALK_TOP], *tl = st->c_skip;
  // [RS] the walk's slot changes, for the undo (a swap is two)
  int *step_slot = st->c_reps, *step_from = st->c_ord;
  double *dl = st->t_dbl, tot = 0;
  for (int r = 0; r < R; r++) dl[r] = 0;
  for (int e = 0; e < st->E; e++) tot += st->w[e];
  walk wk = {target, st->iscratch, NULL, 0, NULL, NULL};
  int *lists = malloc(((size_t)st->E + 2 * (size_t)RS) * sizeof *lists);
  wk.pos = lists ? lists : st->iscratch + RS; // iscratch holds 2 x max(E, RS, R)
  if (lists) {
    wk.thead = lists + RS;
    wk.tnext = wk.thead + st->E;
    for (int e = 0; e < st->E; e++) wk.thead[e] = -1;
  }
  double price = 0; // of the state's moves; it only grows along the walk
  for (int i = RS - 1; i >= 0; i--) {
    price += mp_move_price(st, sp, st->slot_e[i], i / st->S, NULL);
    if (st->slot_e[i] == target[i]) continue;
    wk.pos[i] = wk.nd;
    wk.diff[wk.nd++] = i;
    if (lists && target[i] >= 0) {
      wk.tnext[i] = wk.thead[target[i]];
      wk.thead[target[i]] = i;
    }
  }
  double best = mp_place_layer_max(st) + price;
  int nsteps = 0, best_steps = 0;
  const int cap = sp->max_iter > 0 && sp->max_iter < RS ? sp->max_iter : RS;
  // no later prefix can score below the mean rank load plus the price so far
  while (nsteps < cap && tot / R + price < best) {
    const int ntop = mp_place_top_loaded(st, WALK_TOP, top);
    const walk_step sp_best = best_change(st, &wk, top, ntop, dl, tl);
    const int i = sp_best.i, j = sp_best.j;
    if (i < 0 || (j >= 0 && nsteps + 2 > RS)) break;
    const int a = st->slot_e[i], b = target[i], r0 = i / st->S;
    resolve(&wk, i);
    price += mp_move_price(st, sp, b, r0, NULL) - mp_move_price(st, sp, a, r0, NULL);
    step_slot[nsteps] = i;
    step_from[nsteps++] = a;
    apply_change(st, i, b);
    if (j >= 0) { // the swap's second half: a goes where b was
      const int r1 = j / st->S;
      if (target[j] == a) resolve(&wk, j);
      price += mp_move_price(st, sp, a, r1, NULL) - mp_move_price(st, sp, b, r1, NULL);
      step_slot[nsteps] = j;
      step_from[nsteps++] = b;
      apply_change(st, j, a);
    }
    const double score = mp_place_layer_max(st) + price;
    if (score < best - 1e-12 * fabs(best)) {
      best = score;
      best_steps = nsteps;
    }
  }
  free(lists);
  while (nsteps > best_steps) { // back to the best prefix
    nsteps--;
    apply_change(st, step_slot[nsteps], step_from[nsteps]);
  }
  mp_even_reset_loads(st); // no drift from the incremental updates
  if (!st->even) mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / R : 1), WF_MAX_PASSES);
}
