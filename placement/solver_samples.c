/* Refinement over load samples (moeplace_place_options.samples,
 * docs/PLACEMENT.md "Load samples"). The metric's imbalance is per step,
 * and a step's loads are the forecast plus noise that is not independent
 * across experts: top-k routing sends a fixed number of tokens per step, so
 * experts burst at one another's expense, and some burst together. Which
 * experts share a rank then matters beyond their mean loads. Given n
 * samples of a layer's loads, the refinement swaps the contents of two
 * slots of different ranks (an empty slot too: a replica moves) while that
 * lowers the mean over the samples of the max rank load by more than the
 * swap's migration price. Each slot takes a fixed fraction of its expert's
 * tokens (1 / count with even shares, its weighted share otherwise), which
 * travels with it. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>

#include "common/timer.h"
#include "placement/solver_internal.h"

int mp_samples_init(mp_samples *sm, const double *x, int n, size_t stride, int R, int S) {
  const size_t N = (size_t)n, RS = (size_t)R * S;
  *sm = (mp_samples){.x = x, .stride = stride, .n = n,
                     .v = malloc(N * RS * sizeof(double)), .y = malloc(N * R * sizeof(double)),
                     .ymax = malloc(N * sizeof(double)), .top = malloc(N * 3 * sizeof(int)),
                     .ex1 = malloc(N * sizeof(double)), .ex2 = malloc(N * sizeof(double)),
                     .ex1r = malloc(N * sizeof(int)), .refund = malloc(2 * RS * sizeof(double)),
                     .hot = malloc((size_t)R)};
  return sm->v && sm->y && sm->ymax && sm->top && sm->ex1 && sm->ex2 && sm->ex1r && sm->refund &&
                 sm->hot
             ? 0
             : -1;
}

void mp_samples_free(mp_samples *sm) {
  free(sm->v);
  free(sm->y);
  free(sm->ymax);
  free(sm->top);
  free(sm->ex1);
  free(sm->ex2);
  free(sm->ex1r);
  free(sm->refund);
  free(sm->hot);
  sm->n = 0;
}

/* Fraction of its expert's tokens slot i takes. */
static double slot_fraction(const mp_place_layer *st, int i) {
  const int e = st->slot_e[i];
  if (e < 0) return 0;
  if (st->even || !(st->w[e] > 0)) return 1.0 / st->cnt[e];
  return st->slot_x[i] / st->w[e];
}

/* The three busiest ranks of sample t (-1 where R < 3), into sm->top. */
static void sample_top3(const mp_place_layer *st, mp_samples *sm, int t) {
  const double *y = sm->y; // [R][n]
  const int n = sm->n;
  int *top = sm->top + (size_t)t * 3;
  top[0] = top[1] = top[2] = -1;
  for (int r = 0; r < st->R; r++) {
    int k = 3;
    while (k > 0 && (top[k - 1] < 0 || y[(size_t)top[k - 1] * n + t] < y[(size_t)r * n + t])) k--;
    if (k == 3) continue;
    for (int m = 2; m > k; m--) top[m] = top[m - 1];
    top[k] = r;
  }
  sm->ymax[t] = y[(size_t)top[0] * n + t];
}

/* Every slot's load v [RS][n] and every rank's y [R][n] in each sample,
 * and the busiest ranks per sample. Slot- and rank-major: a swap's
 * evaluation reads two slots and two ranks over all samples. */
static void sample_loads(const mp_place_layer *st, mp_samples *sm) {
  const int n = sm->n;
  for (size_t k = 0; k < (size_t)st->R * n; k++) sm->y[k] = 0;
  for (int i = 0; i < st->RS; i++) {
    const int e = st->slot_e[i];
    const double f = slot_fraction(st, i);
    double *v = sm->v + (size_t)i * n, *y = sm->y + (size_t)(i / st->S) * n;
    for (int t = 0; t < n; t++) {
      v[t] = e >= 0 ? f * sm->x[(size_t)t * sm->stride + e] : 0;
      y[t] += v[t];
    }
  }
  for (int t = 0; t < n; t++) sample_top3(st, sm, t);
}

/* The samples' mean max of the loads sample_loads() computed last. */
static double mean_max(const mp_samples *sm) {
  double tot = 0;
  for (int t = 0; t < sm->n; t++) tot += sm->ymax[t];
  return tot / sm->n;
}

double mp_samples_max(const mp_place_layer *st, mp_samples *sm) {
  sample_loads(st, sm);
  return mean_max(sm);
}

/* The busiest ranks of each sample other than ri: sm->ex1 [n] the max
 * load, sm->ex1r [n] its rank, sm->ex2 [n] the max without that rank too
 * (0 where none). A swap from ri then finds the max of the ranks it does
 * not touch in O(1). */
static void exclude_rank(mp_samples *sm, int ri) {
  const int n = sm->n;
  for (int t = 0; t < n; t++) {
    const int *top = sm->top + (size_t)t * 3;
    int k = 0, got = 0;
    sm->ex1r[t] = -1;
    sm->ex1[t] = sm->ex2[t] = 0;
    for (; k < 3 && got < 2; k++) {
      if (top[k] < 0 || top[k] == ri) continue;
      if (got++ == 0) {
        sm->ex1r[t] = top[k];
        sm->ex1[t] = sm->y[(size_t)top[k] * n + t];
      } else {
        sm->ex2[t] = sm->y[(size_t)top[k] * n + t];
      }
    }
  }
}

/* Change of the mean over samples of the max rank load if slots i and j
 * (ranks ri != rj) swapped their contents; exclude_rank(ri) first. */
static double swap_delta(const mp_place_layer *st, const mp_samples *sm, int i, int j) {
  const int ri = i / st->S, rj = j / st->S, n = sm->n;
  const double *vi = sm->v + (size_t)i * n, *vj = sm->v + (size_t)j * n;
  const double *yi = sm->y + (size_t)ri * n, *yj = sm->y + (size_t)rj * n;
  const double *ex1 = sm->ex1, *ex2 = sm->ex2, *ymax = sm->ymax;
  const int *ex1r = sm->ex1r;
  double tot = 0;
  for (int t = 0; t < n; t++) {
    const double m = ex1r[t] != rj ? ex1[t] : ex2[t]; // max of the others
    const double d = vi[t] - vj[t];                  // what moves from ri to rj
    const double a = yi[t] - d, b = yj[t] + d;
    const double ab = a > b ? a : b;
    tot += (ab > m ? ab : m) - ymax[t];
  }
  return tot / n;
}

/* Migration price and bytes of the swap of slots i and j: what arrives;
 * what the slots' present contents cost is in refund [RS] and refund_bytes. */
static double swap_price(const mp_place_layer *st, const mp_place_search *sp, const double *refund,
                         const double *refund_bytes, int i, int j, double *bytes) {
  const int ri = i / st->S, rj = j / st->S;
  double add = 0;
  const double p = mp_move_price(st, sp, st->slot_e[j], ri, &add) +
                   mp_move_price(st, sp, st->slot_e[i], rj, &add);
  *bytes = add - refund_bytes[i] - refund_bytes[j];
  return p - refund[i] - refund[j];
}

/* 1 if slots i and j may swap: other ranks, not both empty nor the same
 * expert, and neither rank then holds an expert twice. */
static int swap_ok(const mp_place_layer *st, int i, int j) {
  const int ri = i / st->S, rj = j / st->S, ei = st->slot_e[i], ej = st->slot_e[j];
  if (ri == rj || ei == ej) return 0;
  if (ei >= 0 && mp_st_rank_holds(st, rj, ei)) return 0;
  return !(ej >= 0 && mp_st_rank_holds(st, ri, ej));
}

static void apply_swap(mp_place_layer *st, mp_samples *sm, int i, int j) {
  const int ei = st->slot_e[i], ej = st->slot_e[j];
  const double xi = ei >= 0 ? mp_st_take(st, i) : 0, xj = ej >= 0 ? mp_st_take(st, j) : 0;
  if (ej >= 0) mp_st_put(st, i, ej, xj);
  if (ei >= 0) mp_st_put(st, j, ei, xi);
  sample_loads(st, sm);
}

/* The swaps a refinement step tries: a slot of one of the MP_SAMPLES_HOT
 * ranks that are the busiest in the most samples (only a swap touching a
 * busiest rank can lower a max) with a slot of one of the MP_SAMPLES_COLD
 * ranks of least mean sample load (where a replica has room). Bounded so
 * that a step costs O(n x S^2) whatever R: on DeepSeek-V3-sized layers
 * all pairs took minutes per placement. */
#define MP_SAMPLES_HOT 4
#define MP_SAMPLES_COLD 8

/* Picks the k ranks of largest key (ties: lower rank), marking them with
 * bit in sm->hot; key [R]. */
static void mark_top(const mp_place_layer *st, mp_samples *sm, const double *key, int k,
                     unsigned char bit) {
  for (int m = 0; m < k && m < st->R; m++) {
    int best = -1;
    for (int r = 0; r < st->R; r++)
      if (!(sm->hot[r] & bit) && (best < 0 || key[r] > key[best])) best = r;
    sm->hot[best] |= bit;
  }
}

/* Marks the hot ranks (bit 1, busiest in at least one sample) and the cold
 * ones (bit 2) in sm->hot [R]. */
static void mark_ranks(mp_place_layer *st, mp_samples *sm) {
  double *busiest = st->dscratch, *neg_mean = st->dscratch + st->R; // [R] each
  for (int r = 0; r < st->R; r++) {
    sm->hot[r] = 0;
    busiest[r] = 0;
    neg_mean[r] = 0;
    for (int t = 0; t < sm->n; t++) neg_mean[r] -= sm->y[(size_t)r * sm->n + t];
  }
  for (int t = 0; t < sm->n; t++) busiest[sm->top[(size_t)t * 3]] += 1;
  mark_top(st, sm, busiest, MP_SAMPLES_HOT, 1);
  for (int r = 0; r < st->R; r++)
    if (busiest[r] == 0) sm->hot[r] &= ~1u; // a rank never the busiest cannot lower a max
  mark_top(st, sm, neg_mean, MP_SAMPLES_COLD, 2);
}

/* What each slot's present content costs (price, bytes), into refund and
 * refund_bytes [RS] (zero outside the hot and cold ranks). */
static void slot_refunds(const mp_place_layer *st, const mp_samples *sm,
                         const mp_place_search *sp, double *refund, double *refund_bytes) {
  for (int i = 0; i < st->RS; i++) {
    refund[i] = refund_bytes[i] = 0;
    if (sm->hot[i / st->S])
      refund[i] = mp_move_price(st, sp, st->slot_e[i], i / st->S, &refund_bytes[i]);
  }
}

/* The best swap of a hot slot with a cold one, or *bi = -1 if none lowers
 * the objective by more than tol. */
static void best_swap(const mp_place_layer *st, mp_samples *sm, const mp_place_search *sp,
                      const double *bytes_left, double tol, int *bi, int *bj, double *bytes) {
  const double *refund = sm->refund, *refund_bytes = sm->refund + st->RS;
  double best = -tol;
  *bi = *bj = -1;
  for (int i = 0; i < st->RS; i++) {
    if (!(sm->hot[i / st->S] & 1)) continue;
    if (i % st->S == 0) exclude_rank(sm, i / st->S); // a hot rank's first slot
    for (int j = 0; j < st->RS; j++) {
      if (!(sm->hot[j / st->S] & 2) || !swap_ok(st, i, j)) continue;
      const double d = swap_delta(st, sm, i, j);
      if (d - refund[i] - refund[j] >= best) continue; // cannot win even with free arrivals
      double by;
      const double v = d + swap_price(st, sp, refund, refund_bytes, i, j, &by);
      if (v < best && (!bytes_left || *bytes_left < 0 || by <= *bytes_left)) {
        best = v;
        *bytes = by;
        *bi = i;
        *bj = j;
      }
    }
  }
}

double mp_samples_refine(mp_place_layer *st, mp_samples *sm, const mp_place_search *sp,
                         double *bytes_left) {
  const double tol = 1e-12 * mp_samples_max(st, sm); // also computes the sample loads
  for (int it = 0; it < sp->max_iter; it++) {
    if (sp->deadline > 0 && mp_now_s() > sp->deadline) break;
    mark_ranks(st, sm);
    slot_refunds(st, sm, sp, sm->refund, sm->refund + st->RS);
    int bi, bj;
    double by = 0;
    best_swap(st, sm, sp, bytes_left, tol, &bi, &bj, &by);
    if (bi < 0) break;
    apply_swap(st, sm, bi, bj); // recomputes the sample loads
    if (bytes_left && *bytes_left >= 0) *bytes_left -= by;
  }
  return mean_max(sm);
}
