/* Window sums of trace counts (trace_window.c): the one home of the rule
 * that a window's totals are exact or an error. */
#ifndef MOEPLACE_COMMON_TRACE_WINDOW_H
#define MOEPLACE_COMMON_TRACE_WINDOW_H

#include <stddef.h>
#include <stdint.h>

#include <moeplace.h>

/* totals[n] += counts[n] (n = layers x experts, E experts per layer) for
 * the trace step `step` of the trace named `name`; lines[l] is the line of
 * layer l's row of that step (NULL or 0: unknown). A sum past 2^64 - 1
 * (absurd counts) is reported, never wrapped or saturated:
 * MOEPLACE_ERR_FORMAT naming the file:line of the row that made it, the
 * step, layer and expert, and what the totals sum over (`over`: "window"
 * or "trace"), totals then partly added. MOEPLACE_OK otherwise. */
int mp_window_add(uint64_t *totals, const uint64_t *counts, size_t n, int E, const char *name,
                  int64_t step, const long *lines, const char *over);

/* Called by mp_trace_read_window_with for every step read, after it was
 * added to the window: counts [L][E] and the lines of its rows [L]
 * (mp_trace_step_lines). Returns MOEPLACE_OK, or an error that ends the
 * read. */
typedef int (*mp_window_step_fn)(void *ctx, int64_t step, const uint64_t *counts,
                                 const long *lines);

/* moeplace_trace_read_window with the caller's scratch counts [L][E] and a
 * hook per step (NULL: none), so that a caller that needs more than the
 * window's totals reads the trace once, row by row. Returns 1 with
 * *steps_read > 0, 0 at the end of the trace, or an error. */
int mp_trace_read_window_with(moeplace_trace *trace, int window, uint64_t *counts,
                              int64_t *first_step, int *steps_read, uint64_t *totals,
                              mp_window_step_fn fn, void *ctx);

/* The lines of the rows of the step moeplace_trace_read_step() returned
 * last: [layers], owned by the reader, valid until the next read (for
 * mp_window_add's messages; trace_reader.c). */
const long *mp_trace_step_lines(const moeplace_trace *trace);

/* The first i < n where totals[i] + add[i] would exceed 2^64 - 1, or -1:
 * for callers that refuse such an addition whole, adding nothing. */
static inline long mp_window_overflow_at(const uint64_t *totals, const uint64_t *add, size_t n) {
  for (size_t i = 0; i < n; i++)
    if (totals[i] > UINT64_MAX - add[i]) return (long)i;
  return -1;
}

#endif
