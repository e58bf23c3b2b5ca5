/* Summary figures of a trace, as `moeplace-trace stats` prints them.
 * Definitions (docs/TOOLS.md gives them with the JSON field names):
 *  - per layer, over the whole trace: each expert's load proportion
 *    p[e] = tokens[e] / sum tokens; its min, max and coefficient of
 *    variation (population std / mean);
 *  - per layer, per complete window of W steps: window proportions q[w][e];
 *    for each window w >= k-1, over windows w-k+1..w: the population variance
 *    and the range (max - min) of each expert's q, and their maxima over the
 *    experts. These are exactly the figures the state detector compares with
 *    its thresholds. A window in which a layer saw no tokens counts as
 *    uniform (1/E). A last partial window counts in the totals only. */
#ifndef MOEPLACE_COMMON_TRACE_STATS_H
#define MOEPLACE_COMMON_TRACE_STATS_H

#include <jansson.h>
#include <stdint.h>

#include <moeplace.h>

typedef struct mp_layer_stats {
  uint64_t tokens;
  double *proportion; /* [experts] */
  double prop_min, prop_max, prop_cv;
  double *window_var_max;   /* [n_series]: max over experts of the variance over the last k windows */
  double *window_range_max; /* [n_series]: same for the range */
} mp_layer_stats;

typedef struct mp_trace_stats {
  int64_t steps, first_step, last_step;
  int layers, experts, window, k;
  uint64_t tokens;
  int64_t windows;  /* complete windows */
  size_t n_series;  /* windows - k + 1, or 0 */
  moeplace_trace_progress progress;
  mp_layer_stats *layer; /* [layers] */
} mp_trace_stats;

/* The whole-trace sums every reader of a trace relies on: each expert's
 * counts summed over the trace (which bound every window's sum) and the
 * token totals of each layer and of the trace (which `stats` prints as
 * signed 64-bit integers). The one home of the rule that these are exact or
 * an error: `moeplace-trace validate` adds every step here, so that a trace
 * it accepts is one that stats and the replay accept too. */
typedef struct mp_trace_totals {
  const char *name;  /* the trace's, for messages */
  int layers, experts;
  uint64_t *expert;  /* [layers][experts] */
  uint64_t *layer;   /* [layers] token totals, <= 2^63 - 1 */
  uint64_t all;      /* token total, <= 2^63 - 1 */
} mp_trace_totals;

/* Zero totals shaped as `trace` (which must stay open while they are used). */
int mp_trace_totals_init(mp_trace_totals *t, const moeplace_trace *trace);
/* Adds the step `step`: counts [layers][experts] and the lines of its rows
 * [layers] (mp_trace_step_lines). An expert's sum past 2^64 - 1 or a token
 * total past 2^63 - 1 is MOEPLACE_ERR_FORMAT naming the file:line of the
 * row that made it (mp_window_add's message, over "trace", or "FILE:LINE:
 * step S: layer L: token totals exceed 2^63 - 1"); the totals are then
 * partly added. */
int mp_trace_totals_add(mp_trace_totals *t, int64_t step, const uint64_t *counts,
                        const long *lines);
void mp_trace_totals_free(mp_trace_totals *t);

/* Reads the rest of `trace` (normally all of it, right after open). The
 * memory held grows with the windows read, up to k windows' proportions. */
int mp_trace_stats_compute(moeplace_trace *trace, int window, int k, mp_trace_stats *out);
void mp_trace_stats_free(mp_trace_stats *stats);
/* The JSON document of `moeplace-trace stats --json`; NULL when out of memory. */
json_t *mp_trace_stats_to_json(const mp_trace_stats *stats, const moeplace_trace *trace);

#endif
