/* The per-layer placement solver: the four ways place.c builds a layer
 * (fresh, from the current placement, repair, home), each a sequence of
 * the steps in the other solver files:
 *
 *   solver_state.c      working state, slot operations, undo, export
 *   solver_construct.c  replica counts, lower bound, LPT and snake starts
 *   solver_transfer.c   transfers between components (balancing)
 *   solver_shares.c     routing shares by water-filling
 *   solver_migration.c  migration cost relative to the current placement
 *   solver_search.c     local search with migration in the objective
 *   solver_even.c       the search of the even-share objective
 *   solver_relabel.c    rank labels of a fresh layer of least migration
 *   solver_partial.c    the partial walk from the current layer toward a fresh one
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdlib.h>

#include "placement/solver_internal.h"

/* Drops the spare replicas a fresh placement left with no tokens (a zero
 * share): the slot is better empty, free for the next rebalance. */
static void drop_idle(mp_place_layer *st, double T) {
  const double tiny = 1e-12 * (T > 0 ? T : 1);
  for (int i = 0; i < st->RS; i++) {
    const int e = st->slot_e[i];
    if (e >= 0 && st->cnt[e] > 1 && st->slot_x[i] <= tiny) mp_st_take(st, i);
  }
}

/* Noise-aware mode (spread > 0): every free slot gets a replica, ranks
 * from the lightest, each slot the expert with the most tokens per replica
 * that the rank does not hold yet (EPLB's replication rule); the shares are
 * then water-filled. A replica more lowers no mean load, but it splits its
 * expert's per-step noise over one rank more. O(R S E S). */
static void fill_slots(mp_place_layer *st, double tol) {
  int *ord = st->c_rh;
  for (int r = 0; r < st->R; r++) ord[r] = r;
  mp_radix_sort_desc(ord, st->R, st->load, st->c_rtmp, st->c_rk0, st->c_rk1);
  int added = 0;
  for (int t = st->R - 1; t >= 0; t--) { // lightest first
    const int r = ord[t];
    while (st->nfree[r] > 0) {
      int best = -1;
      for (int e = 0; e < st->E; e++)
        if (st->cnt[e] < st->R && !mp_st_rank_holds(st, r, e) &&
            (best < 0 || st->w[e] * st->cnt[best] > st->w[best] * st->cnt[e]))
          best = e;
      if (best < 0) break;
      mp_st_put(st, mp_st_free_slot(st, r), best, 0);
      added++;
    }
  }
  if (added) mp_waterfill_all(st, tol, WF_MAX_PASSES);
}

/* Slots up to which a fresh weighted layer still far from its bound also
 * tries the LPT starts of every other replica total (as the even solver
 * does): with few spare slots on few ranks one start and its local search
 * can end 5-11% above the optimum (3 ranks x 2 slots, tests/test_placement.c). */
#define WEIGHTED_MULTISTART_SLOTS 64

/* The multistart above, keeping the best layer (st ends with it). The
 * best is kept in its own arrays: the local search uses the undo snapshot. */
static void fresh_multistart(mp_place_layer *st, const mp_place_search *fs, double bound,
                             double tol) {
  double best = mp_place_layer_max(st);
  if (st->RS > WEIGHTED_MULTISTART_SLOTS || best <= bound * (1 + MP_PLACE_GOOD_GAP)) return;
  int *be = malloc((size_t)st->RS * sizeof *be);
  double *bx = malloc((size_t)st->RS * sizeof *bx);
  if (be && bx) {
    for (int i = 0; i < st->RS; i++) be[i] = st->slot_e[i], bx[i] = st->slot_x[i];
    for (long total = st->RS; total >= st->E && best > bound * (1 + MP_PLACE_GOOD_GAP); total--) {
      mp_construct_lpt_n(st, total);
      mp_waterfill_all(st, tol, WF_MAX_PASSES);
      double used = 0;
      mp_local_search(st, fs, bound, &used);
      const double m = mp_place_layer_max(st);
      if (m < best * (1 - 1e-12)) {
        best = m;
        for (int i = 0; i < st->RS; i++) be[i] = st->slot_e[i], bx[i] = st->slot_x[i];
      }
    }
    mp_st_clear(st);
    for (int i = 0; i < st->RS; i++)
      if (be[i] >= 0) mp_st_put(st, i, be[i], bx[i]);
  }
  free(be);
  free(bx);
}

void mp_place_layer_fresh(mp_place_layer *st, const double *w, const mp_place_search *sp) {
  st->w = w;
  const int *cur = st->cur;
  st->cur = NULL; // a fresh placement ignores migration
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  double bound = mp_place_layer_bound(st, w);
  if ((long)st->RS - st->E >= st->R - 1) {
    mp_construct_transfer(st);
    mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
    // the transfers can get stuck when light ranks run out of free slots:
    // then the replicate-then-LPT start may be better
    const double m1 = mp_place_layer_max(st);
    if (m1 > bound * (1 + 4 * MP_PLACE_GOOD_GAP)) {
      mp_st_save(st);
      mp_construct_lpt(st);
      mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
      if (mp_place_layer_max(st) >= m1) mp_st_restore(st);
    }
  } else {
    mp_construct_lpt(st);
    mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
  }
  mp_place_search fs = *sp;
  fs.lambda = 0;
  fs.min_gain = 0; // nothing moves from scratch: min_gain prices moves only
  fs.budget = NULL;
  double used = 0;
  mp_local_search(st, &fs, bound, &used);
  fresh_multistart(st, &fs, bound, WF_TOL * (tot > 0 ? tot / st->R : 1));
  if (st->spread > 0)
    fill_slots(st, WF_TOL * (tot > 0 ? tot / st->R : 1));
  else
    drop_idle(st, tot / st->R);
  st->cur = cur;
}

/* Replica totals the fresh even placement tries (the best count is often
 * not "all slots": fewer replicas leave free slots, so that a rank need
 * not hold exactly S items):
 *  - up to EVEN_MULTISTART_SLOTS slots: every total from E to R x S, each
 *    searched;
 *  - up to EVEN_SCREEN_ALL slots: every total, screened: only a start whose
 *    LPT max is already below the best found gets a search;
 *  - up to EVEN_SCREEN_SLOTS: when the all-slots start ended more than
 *    EVEN_SCREEN_GAP above the bound, the EVEN_SCREEN_STARTS totals below
 *    it, screened (layers near the bound, as the DeepSeek shapes within
 *    0.2%, pay nothing more);
 *  - beyond: R x S only.
 * The LPT start's max jumps from one total to the next, so no stride would
 * do. (Random shapes: 78 slots for 61 heavy-tailed experts ended 11% above
 * the mean from all slots, 3% from 69; docs/BENCHMARKS.md.) */
#define EVEN_MULTISTART_SLOTS 64
#define EVEN_SCREEN_ALL 128
#define EVEN_SCREEN_SLOTS 512
#define EVEN_SCREEN_STARTS 32
#define EVEN_SCREEN_GAP 0.01

/* The lowest replica total the fresh even placement tries, and whether it
 * needs the all-slots start to end above the gap first (*gapped). */
static long even_first_total(const mp_place_layer *st, int *gapped) {
  *gapped = 0;
  if (st->spread > 0) return st->RS; // noise-aware: every slot holds a replica
  if (st->RS <= EVEN_SCREEN_ALL) return st->E;
  if (st->RS > EVEN_SCREEN_SLOTS) return st->RS;
  *gapped = 1;
  return st->RS - EVEN_SCREEN_STARTS > st->E ? st->RS - EVEN_SCREEN_STARTS : st->E;
}

void mp_place_layer_fresh_even(mp_place_layer *st, const double *w, const mp_place_search *sp) {
  st->w = w;
  const int *cur = st->cur;
  st->cur = NULL;
  const double bound = mp_place_layer_bound(st, w);
  mp_place_search fs = *sp;
  fs.lambda = 0;
  fs.min_gain = 0;
  fs.budget = NULL;
  const int small = st->RS <= EVEN_MULTISTART_SLOTS;
  int gapped;
  const long first = even_first_total(st, &gapped);
  double best = INFINITY;
  int best_here = 1; // the state holds the best start
  mp_lpt_totals lt; // the later starts' counts and order, taken at the second start
  int lt_taken = 0;
  for (long total = st->RS; total >= first; total--) {
    if (sp->max_starts > 0 && st->RS - total >= sp->max_starts) break; // the caller's effort cap
    // the remaining starts cannot beat a best at the bound, nor need to
    // beat one at the target. (Skipping the starts whose largest replica
    // w_e / c_e is above the best would be wrong: their search adds
    // replicas.)
    if (total < st->RS && (best <= bound * (1 + 1e-12) || best <= sp->target)) break;
    if (total < st->RS && gapped && best <= bound * (1 + EVEN_SCREEN_GAP)) break;
    if (total < st->RS) {
      if (!lt_taken++) mp_lpt_totals_init(st, &lt);
      mp_construct_lpt_total(st, &lt, total);
    } else {
      mp_construct_lpt_n(st, total);
    }
    mp_even_reset_loads(st);
    if (total < st->RS && !small && mp_place_layer_max(st) >= best) { // screened out
      best_here = 0;
      continue;
    }
    double used = 0;
    mp_even_search(st, &fs, bound, &used);
    const double m = mp_place_layer_max(st);
    best_here = m < best * (1 - 1e-12);
    if (best_here) {
      best = m;
      // kept aside only if another start may follow
      if (total > first && (sp->max_starts <= 0 || st->RS - total + 1 < sp->max_starts))
        mp_st_save(st);
    }
  }
  if (!best_here) mp_st_restore(st);
  st->cur = cur;
}

void mp_place_layer_from_current_even(mp_place_layer *st, const double *w,
                                      const mp_place_search *sp) {
  st->w = w;
  mp_st_clear(st);
  for (int i = 0; i < st->RS; i++)
    if (st->cur[i] >= 0) mp_st_put(st, i, st->cur[i], 0);
  mp_even_reset_loads(st);
  const double bound = mp_place_layer_bound(st, w);
  double used = 0;
  mp_place_search ms = *sp;
  ms.target = 0; // the target is for fresh placements
  if (sp->budget && *sp->budget >= 0) {
    mp_even_search(st, &ms, bound, &used); // checks used against the remaining budget
    *sp->budget -= used;
  } else {
    ms.budget = NULL;
    mp_even_search(st, &ms, bound, &used);
  }
}

void mp_place_layer_from_current(mp_place_layer *st, const double *w, const mp_place_search *sp) {
  st->w = w;
  mp_st_clear(st);
  // start with equal shares, then water-fill
  for (int i = 0; i < st->RS; i++) {
    int e = st->cur[i];
    if (e >= 0) mp_st_put(st, i, e, 0);
  }
  for (int e = 0; e < st->E; e++)
    for (int i = st->head[e]; i >= 0; i = st->next[i]) {
      st->slot_x[i] = w[e] / st->cnt[e];
      st->load[i / st->S] += st->slot_x[i];
    }
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  double bound = mp_place_layer_bound(st, w);
  mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
  double used = 0;
  mp_place_search ms = *sp;
  if (sp->budget && *sp->budget >= 0) {
    // mp_local_search checks bytes_used against the remaining budget
    mp_local_search(st, &ms, bound, &used);
    *sp->budget -= used;
  } else {
    ms.budget = NULL;
    mp_local_search(st, &ms, bound, &used);
  }
}

void mp_place_layer_repair(mp_place_layer *st, const double *w) {
  st->w = w;
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  const double T = tot / st->R;
  // spare replicas the current loads leave idle free their slots (no bytes);
  // noise-aware, they stay (they cost nothing where they are)
  for (int i = 0; i < st->RS && !(st->spread > 0); i++) {
    int e = st->slot_e[i];
    if (e >= 0 && st->cnt[e] > 1 && st->slot_x[i] <= 1e-12 * (T > 0 ? T : 1)) mp_st_take(st, i);
  }
  mp_transfer_components(st, T);
  mp_waterfill_all(st, WF_TOL * (T > 0 ? T : 1), WF_MAX_PASSES);
}

void mp_place_layer_home(mp_place_layer *st, const double *w) {
  const int E = st->E, R = st->R, S = st->S;
  st->w = w;
  mp_st_clear(st);
  double tot = 0;
  int *ord = st->c_ord;
  for (int e = 0; e < E; e++) {
    ord[e] = e;
    tot += w[e];
  }
  mp_radix_sort_desc(ord, E, w, st->c_rtmp, st->c_rk0, st->c_rk1);
  const int keep = (long)R * (S - 1) >= E ? 1 : 0;
  // heaviest first, each expert to the least loaded of its current ranks
  // with room; an expert whose ranks are all full waits for the second pass
  int *late = st->c_reps, nlate = 0;
  for (int t = 0; t < E; t++) {
    int e = ord[t], b = -1;
    for (int i = st->cur_head[e]; i >= 0; i = st->cur_next[i]) {
      int r = i / S;
      if (st->nfree[r] > keep && (b < 0 || st->load[r] < st->load[b])) b = r;
    }
    if (b < 0) {
      late[nlate++] = e;
      continue;
    }
    mp_st_put(st, mp_st_free_slot(st, b), e, w[e]);
  }
  for (int t = 0; t < nlate; t++) { // these move: to the least loaded rank with room
    int e = late[t], b = -1;
    for (int r = 0; r < R; r++)
      if (st->nfree[r] > keep && (b < 0 || st->load[r] < st->load[b])) b = r;
    if (b < 0)
      for (int r = 0; r < R; r++)
        if (st->nfree[r] > 0 && (b < 0 || st->load[r] < st->load[b])) b = r;
    mp_st_put(st, mp_st_free_slot(st, b), e, w[e]);
  }
  mp_transfer_components(st, tot / R);
  mp_waterfill_all(st, WF_TOL * (tot > 0 ? tot / R : 1), WF_MAX_PASSES);
}
