/* Aggregation of a trace into windows of W consecutive steps. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"

int moeplace_trace_read_window(moeplace_trace *trace, int window, int64_t *first_step,
                               int *steps_read, uint64_t *totals) {
  if (!trace || !first_step || !steps_read || !totals)
    return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_read_window: NULL argument");
  if (window <= 0) return mp_fail(MOEPLACE_ERR_ARG, "window must be > 0, got %d", window);
  const size_t n = (size_t)moeplace_trace_layers(trace) * moeplace_trace_experts(trace);
  uint64_t *counts = malloc(n * sizeof *counts);
  if (!counts) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  memset(totals, 0, n * sizeof *totals);
  *steps_read = 0;
  int rc = 0;
  while (*steps_read < window) {
    int64_t step;
    rc = moeplace_trace_read_step(trace, &step, counts);
    if (rc <= 0) break;
    if (*steps_read == 0) *first_step = step;
    for (size_t i = 0; i < n; i++) {
      /* Totals are exact or an error: a sum past 2^64 - 1 (absurd counts)
       * is reported, never wrapped or saturated. */
      if (__builtin_add_overflow(totals[i], counts[i], &totals[i])) {
        const int E = moeplace_trace_experts(trace);
        rc = mp_fail(MOEPLACE_ERR_FORMAT,
                     "%s: step %" PRId64 ": layer %zu expert e%zu: counts summed over the window "
                     "exceed 2^64 - 1",
                     moeplace_trace_name(trace), step, i / (size_t)E, i % (size_t)E);
        break;
      }
    }
    if (rc < 0) break;
    (*steps_read)++;
  }
  free(counts);
  if (rc < 0) return rc;
  return *steps_read > 0 ? 1 : 0;
}
