/* The warm-up: the moeplace policy's extra decisions inside the first
 * rebalance interval (moeplace-replay's --warmup, the runtime's
 * warmup_steps). The initial placement knew no load, so the first
 * decision comes once a few windows are seen, and later ones each time the
 * steps seen have doubled (k, 2k, 4k, ... below the interval): each decides
 * from twice the evidence of the one before, and there are only
 * log2(interval / k) of them. One home for the rule: the replay and the
 * runtime both call it. Measured in docs/RESULTS.md ("Closed loop on every
 * trace"). */
#ifndef MOEPLACE_COMMON_WARMUP_H
#define MOEPLACE_COMMON_WARMUP_H

#include <stdint.h>

/* The first warm-up step chosen for "auto" (moeplace-replay's default,
 * MOEPLACE_RUNTIME_WARMUP_AUTO in the runtime): two windows, the least
 * evidence a forecast averages over, or the decision lag (lag_steps, a
 * multiple of the window) if longer: a decision requested before the one
 * before it is applied would wait for it and drop it (runtime/loop.c). 0
 * (no warm-up) when that is not below the interval. */
static inline int64_t mp_warmup_auto(int64_t interval, int64_t window, int64_t lag_steps) {
  if (interval <= 0 || window <= 0) return 0;
  const int64_t k = lag_steps > 2 * window ? lag_steps : 2 * window;
  return k < interval ? k : 0;
}

/* Whether a warm-up decision falls after `step` steps of the first
 * interval: step = warmup * 2^j < interval. 0 when warmup <= 0. */
static inline int mp_warmup_decides(int64_t step, int64_t warmup, int64_t interval) {
  if (warmup <= 0 || step < warmup || step >= interval || step % warmup) return 0;
  const int64_t m = step / warmup;
  return (m & (m - 1)) == 0;
}

#endif
