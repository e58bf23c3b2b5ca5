/* The whole-token split of one expert's tokens among its replicas by their
 * routing shares (moeplace_split_tokens, include/moeplace/placement.h): the
 * one home of this rounding, used by the runtime's dispatch helper
 * (runtime/dispatch.c) and the Python binding (moeplace.split_tokens). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>

#include <moeplace.h>

#include "common/error.h"

/* The exact (real) part of replica i, recomputed by the same expression
 * each time it is needed, so that every use sees the same double. Shares
 * are divided by a scale, 1 unless their sum overflows (then the largest
 * share): x / 1 is x, so ordinary shares split exactly as before. */
static double exact_part(uint64_t tokens, double share, double total) {
  return (double)tokens * (share / total);
}

int moeplace_split_tokens(uint64_t tokens, const double *shares, int n, uint64_t *out) {
  if (!shares || !out || n <= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "split_tokens: need shares and out of n > 0 entries (n = %d)", n);
  double total = 0.0, scale = 1.0, top = 0.0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(shares[i]) || shares[i] < 0.0)
      return mp_fail(MOEPLACE_ERR_ARG, "split_tokens: share %d is %g (must be finite and >= 0)",
                     i, shares[i]);
    total += shares[i];
    top = shares[i] > top ? shares[i] : top;
  }
  if (!isfinite(total)) { // finite shares whose sum overflows: split shares / the largest
    scale = top;
    total = 0.0;
    for (int i = 0; i < n; i++) total += shares[i] / scale;
  }
  if (!(total > 0.0)) {
    if (tokens) return mp_fail(MOEPLACE_ERR_ARG, "split_tokens: shares sum to 0 for %llu tokens",
                               (unsigned long long)tokens);
    for (int i = 0; i < n; i++) out[i] = 0;
    return MOEPLACE_OK;
  }
  // Floors first; the tokens left (fewer than n) go one each to the largest
  // remainders, ties to the lower index (slot order).
  uint64_t given = 0;
  for (int i = 0; i < n; i++) {
    double x = floor(exact_part(tokens, shares[i] / scale, total));
    out[i] = x >= (double)tokens ? tokens : (uint64_t)x;
    given += out[i];
  }
  // Shares normalised in floating point may sum to a hair above 1: take the
  // excess back from the highest indices (never happens below 2^53 tokens).
  for (int i = n - 1; given > tokens && i >= 0; i--) {
    uint64_t d = out[i] < given - tokens ? out[i] : given - tokens;
    out[i] -= d;
    given -= d;
  }
  for (uint64_t left = tokens - given; left > 0; left--) {
    int best = -1;
    double best_rem = -1.0;
    for (int i = 0; i < n; i++) {
      double x = exact_part(tokens, shares[i] / scale, total);
      if (out[i] != (uint64_t)floor(x)) continue; // already got its extra token
      double rem = x - floor(x);
      if (rem > best_rem) { // strict: a tie keeps the lower index
        best = i;
        best_rem = rem;
      }
    }
    if (best < 0) { // every replica has its extra token: start over (not reached)
      out[0]++;
      continue;
    }
    out[best]++;
  }
  return MOEPLACE_OK;
}
