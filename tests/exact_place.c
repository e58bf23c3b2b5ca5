/* Exact references for small placement instances, used by test_placement
 * only (exhaustive, exponential: not library code). */
#include <math.h>

#include "tests/exact_place.h"

double mp_place_assignment_optimum(const double *w, int E, int R, int S, const int *phy2log) {
  if (R > 16) return -1;
  // mask[e]: ranks holding e. Max-flow/min-cut (Hall): the best max load is
  // max over rank subsets A of (load of experts held only inside A) / |A|.
  int mask[64];
  if (E > 64) return -1;
  for (int e = 0; e < E; e++) mask[e] = 0;
  for (int i = 0; i < R * S; i++)
    if (phy2log[i] >= 0) mask[phy2log[i]] |= 1 << (i / S);
  double best = 0;
  for (int A = 1; A < (1 << R); A++) {
    double s = 0;
    for (int e = 0; e < E; e++)
      if (mask[e] && (mask[e] & ~A) == 0) s += w[e];
    double v = s / __builtin_popcount((unsigned)A);
    if (v > best) best = v;
  }
  return best;
}

/* Branch and bound over the rank sets of each expert (shares are then
 * optimal by the formula above). Slots matter only through capacity. */
typedef struct exact_ctx {
  const double *w;
  int E, R, S;
  int mask[8];
  int used[4];
  double best;
} exact_ctx;

static double subset_value(const exact_ctx *c, int upto) {
  // optimum of the experts assigned so far: a valid lower bound for the
  // complete assignment (adding experts never lowers any subset's value)
  double best = 0;
  for (int A = 1; A < (1 << c->R); A++) {
    double s = 0;
    for (int e = 0; e < upto; e++)
      if ((c->mask[e] & ~A) == 0) s += c->w[e];
    double v = s / __builtin_popcount((unsigned)A);
    if (v > best) best = v;
  }
  return best;
}

static void exact_rec(exact_ctx *c, int e) {
  if (e > 0 && subset_value(c, e) >= c->best) return;
  if (e == c->E) {
    c->best = subset_value(c, e);
    return;
  }
  for (int m = 1; m < (1 << c->R); m++) {
    int ok = 1;
    for (int r = 0; r < c->R; r++)
      if ((m >> r & 1) && c->used[r] == c->S) ok = 0;
    if (!ok) continue;
    // slots left for the remaining experts (one each at least)
    int left = 0;
    for (int r = 0; r < c->R; r++) left += c->S - c->used[r] - (m >> r & 1);
    if (left < c->E - e - 1) continue;
    for (int r = 0; r < c->R; r++) c->used[r] += m >> r & 1;
    c->mask[e] = m;
    exact_rec(c, e + 1);
    for (int r = 0; r < c->R; r++) c->used[r] -= m >> r & 1;
  }
}

double mp_place_exact(const double *w, int E, int R, int S) {
  if (R > 4 || E > 8 || R * S < E) return -1;
  exact_ctx c = {.w = w, .E = E, .R = R, .S = S, .best = INFINITY};
  exact_rec(&c, 0);
  return c.best;
}

/* Even shares: branch and bound over the rank sets of each expert; a rank's
 * load is the sum of w_e / |set_e| over the experts it holds. The max load
 * of the experts assigned so far bounds every completion from below
 * (later experts only add load). */
typedef struct exact_even_ctx {
  const double *w;
  int E, R, S;
  double load[4];
  int used[4];
  double best;
} exact_even_ctx;

static void exact_even_rec(exact_even_ctx *c, int e) {
  double mx = 0;
  for (int r = 0; r < c->R; r++) mx = c->load[r] > mx ? c->load[r] : mx;
  if (mx >= c->best) return;
  if (e == c->E) {
    c->best = mx;
    return;
  }
  for (int m = 1; m < (1 << c->R); m++) {
    int ok = 1, left = 0;
    for (int r = 0; r < c->R; r++) {
      if ((m >> r & 1) && c->used[r] == c->S) ok = 0;
      left += c->S - c->used[r] - (m >> r & 1);
    }
    if (!ok || left < c->E - e - 1) continue;
    const double x = c->w[e] / __builtin_popcount((unsigned)m);
    for (int r = 0; r < c->R; r++)
      if (m >> r & 1) {
        c->used[r]++;
        c->load[r] += x;
      }
    exact_even_rec(c, e + 1);
    for (int r = 0; r < c->R; r++)
      if (m >> r & 1) {
        c->used[r]--;
        c->load[r] -= x;
      }
  }
}

double mp_place_exact_even(const double *w, int E, int R, int S) {
  if (R > 4 || E > 8 || R * S < E) return -1;
  exact_even_ctx c = {.w = w, .E = E, .R = R, .S = S, .best = INFINITY};
  exact_even_rec(&c, 0);
  return c.best;
}
