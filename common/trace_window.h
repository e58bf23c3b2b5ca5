/* Window sums of trace counts (trace_window.c): the one home of the rule
 * that a window's totals are exact or an error. */
#ifndef MOEPLACE_COMMON_TRACE_WINDOW_H
#define MOEPLACE_COMMON_TRACE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* totals[n] += counts[n] (n = layers x experts, E experts per layer) for
 * the trace step `step` of the trace named `name`. A sum past 2^64 - 1
 * (absurd counts) is reported, never wrapped or saturated:
 * MOEPLACE_ERR_FORMAT naming the file, step, layer and expert, totals then
 * partly added. MOEPLACE_OK otherwise. */
int mp_window_add(uint64_t *totals, const uint64_t *counts, size_t n, int E, const char *name,
                  int64_t step);

/* The first i < n where totals[i] + add[i] would exceed 2^64 - 1, or -1:
 * for callers that refuse such an addition whole, adding nothing. */
static inline long mp_window_overflow_at(const uint64_t *totals, const uint64_t *add, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (totals[i] > UINT64_MAX - add[i]) return (long)i;
  return -1;
}

#endif
