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

/* Reads the rest of `trace` (normally all of it, right after open). */
int mp_trace_stats_compute(moeplace_trace *trace, int window, int k, mp_trace_stats *out);
void mp_trace_stats_free(mp_trace_stats *stats);
/* The JSON document of `moeplace-trace stats --json`; NULL when out of memory. */
json_t *mp_trace_stats_to_json(const mp_trace_stats *stats, const moeplace_trace *trace);

#endif
