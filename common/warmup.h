/* The warm-up step chosen for "auto" (moeplace-replay's default,
 * MOEPLACE_RUNTIME_WARMUP_AUTO in the runtime): one more decision a tenth
 * of the way into the first interval, from the windows seen by then. The
 * initial placement knew no load; in the closed-loop replay of
 * docs/RESULTS.md a decision at step 50 of a 500-step interval lowers
 * moeplace's imbalance on 35 of 42 rows (7 traces; by 0.027 on average on
 * the six the defaults were chosen on, 0.034 on a held-out one). One home
 * for the rule: the replay and the runtime both call it. */
#ifndef MOEPLACE_COMMON_WARMUP_H
#define MOEPLACE_COMMON_WARMUP_H

#include <stdint.h>

/* A tenth of the interval, down to a multiple of the window; 0 (no warm-up)
 * when that is less than one window. */
static inline int64_t mp_warmup_auto(int64_t interval, int64_t window) {
  if (interval <= 0 || window <= 0) return 0;
  const int64_t k = interval / 10 / window * window;
  return k >= window && k < interval ? k : 0;
}

#endif
