/* Aggregation of a trace into windows of W consecutive steps. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/trace_window.h"

int mp_window_add(uint64_t *totals, const uint64_t *counts, size_t n, int E, const char *name,
                  int64_t step, const long *lines, const char *over) {
  for (size_t i = 0; i < n; i++) {
    if (!__builtin_add_overflow(totals[i], counts[i], &totals[i])) continue;
    const size_t layer = i / (size_t)E;
    char where[32] = "";
    if (lines && lines[layer] > 0) snprintf(where, sizeof where, ":%ld", lines[layer]);
    return mp_fail(MOEPLACE_ERR_FORMAT,
                   "%s%s: step %" PRId64 ": layer %zu expert e%zu: counts summed over the %s "
                   "exceed 2^64 - 1",
                   name, where, step, layer, i % (size_t)E, over);
  }
  return MOEPLACE_OK;
}

int mp_trace_read_window_with(moeplace_trace *trace, int window, uint64_t *counts,
                              int64_t *first_step, int *steps_read, uint64_t *totals,
                              mp_window_step_fn fn, void *ctx) {
  const int E = moeplace_trace_experts(trace);
  const size_t n = (size_t)moeplace_trace_layers(trace) * E;
  memset(totals, 0, n * sizeof *totals);
  for (*steps_read = 0; *steps_read < window; (*steps_read)++) {
    int64_t step;
    int rc = moeplace_trace_read_step(trace, &step, counts);
    if (rc < 0) return rc;
    if (rc == 0) break;
    if (*steps_read == 0) *first_step = step;
    const long *lines = mp_trace_step_lines(trace);
    if ((rc = mp_window_add(totals, counts, n, E, moeplace_trace_name(trace), step, lines,
                            "window")) ||
        (fn && (rc = fn(ctx, step, counts, lines))))
      return rc;
  }
  return *steps_read > 0;
}

int moeplace_trace_read_window(moeplace_trace *trace, int window, int64_t *first_step,
                               int *steps_read, uint64_t *totals) {
  if (!trace || !first_step || !steps_read || !totals)
    return mp_fail(MOEPLACE_ERR_ARG, "moeplace_trace_read_window: NULL argument");
  if (window <= 0) return mp_fail(MOEPLACE_ERR_ARG, "window must be > 0, got %d", window);
  const size_t n = (size_t)moeplace_trace_layers(trace) * moeplace_trace_experts(trace);
  uint64_t *counts = malloc(n * sizeof *counts);
  if (!counts) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  int rc = mp_trace_read_window_with(trace, window, counts, first_step, steps_read, totals, NULL,
                                     NULL);
  free(counts);
  return rc;
}
