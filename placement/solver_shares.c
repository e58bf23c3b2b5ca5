/* Routing shares by water-filling: for one expert, given the other load on
 * its ranks, its tokens are poured so the lowest ranks rise to a common
 * level. Sweeping all replicated experts is block-coordinate descent on the
 * sum of squared rank loads; the achievable rank-load vectors of a fixed
 * assignment form the base polytope of a polymatroid, whose min-norm point
 * also minimises the max load, so the sweeps converge to the optimal shares
 * of the assignment. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "placement/solver_internal.h"

/* Re-splits expert e's tokens over its replicas so that the lowest of its
 * ranks rise to a common level. Returns the largest change of a slot. */
double mp_waterfill_expert(mp_place_layer *st, int e) {
  const int c = st->cnt[e];
  if (c <= 1) return 0;
  int *sl = st->iscratch;
  double *b = st->dscratch; // base load of each replica's rank without e
  int n = 0;
  for (int i = st->head[e]; i >= 0; i = st->next[i]) {
    double base = st->load[i / st->S] - st->slot_x[i];
    // insertion sort by base: c is small
    int k = n++;
    while (k > 0 && b[k - 1] > base) {
      b[k] = b[k - 1];
      sl[k] = sl[k - 1];
      k--;
    }
    b[k] = base;
    sl[k] = i;
  }
  // With spread mu the expert minimises sum_k (b_k + x_k)^2 + mu x_k^2:
  // x_k = max(0, (t - b_k) / (1 + mu)) with sum_k x_k = w, i.e. the plain
  // water-filling of w (1 + mu) scaled down by 1 + mu (mu = 0: exact).
  const double mu1 = 1 + st->spread, w = st->w[e] * mu1;
  double acc = 0, lam = 0;
  for (int k = 0; k < n; k++) {
    acc += b[k];
    lam = (w + acc) / (k + 1);
    if (k + 1 == n || lam <= b[k + 1]) break;
  }
  double change = 0;
  for (int k = 0; k < n; k++) {
    double x = lam > b[k] ? (lam - b[k]) / mu1 : 0;
    int i = sl[k];
    double d = x - st->slot_x[i];
    if (fabs(d) > change) change = fabs(d);
    st->slot_x[i] = x;
    st->load[i / st->S] = b[k] + x;
  }
  return change;
}

/* Sweeps every replicated expert until no slot changes by more than tol. */
void mp_waterfill_all(mp_place_layer *st, double tol, int max_passes) {
  for (int pass = 0; pass < max_passes; pass++) {
    double ch = 0;
    for (int e = 0; e < st->E; e++)
      if (st->cnt[e] > 1) {
        double c = mp_waterfill_expert(st, e);
        if (c > ch) ch = c;
      }
    if (ch <= tol) break;
  }
}

/* Sweeps the replicated experts of ranks ra and rb (and so their neighbours). */
void mp_waterfill_ranks(mp_place_layer *st, int ra, int rb, int passes) {
  for (int pass = 0; pass < passes; pass++)
    for (int t = 0; t < 2; t++) {
      int r = t ? rb : ra;
      if (r < 0) continue;
      for (int k = 0; k < st->S; k++) {
        int e = st->slot_e[r * st->S + k];
        if (e >= 0 && st->cnt[e] > 1) mp_waterfill_expert(st, e);
      }
    }
}
