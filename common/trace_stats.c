#include "common/trace_stats.h"

#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/metrics.h"
#include "common/trace_window.h"

static int grow_series(mp_trace_stats *s, size_t *cap) {
  if (s->n_series < *cap) return MOEPLACE_OK;
  size_t n = *cap ? 2 * *cap : 256;
  for (int l = 0; l < s->layers; l++) {
    double *v = realloc(s->layer[l].window_var_max, n * sizeof *v);
    if (v) s->layer[l].window_var_max = v;
    double *r = realloc(s->layer[l].window_range_max, n * sizeof *r);
    if (r) s->layer[l].window_range_max = r;
    if (!v || !r) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  }
  *cap = n;
  return MOEPLACE_OK;
}

/* ring: [k][experts] the last k window proportions of one layer, in any
 * order (slot = window % k; the figures do not depend on the order). */
static void detector_figures(const double *ring, int k, int E, double *var_max,
                             double *range_max) {
  double vmax = 0, rmax = 0;
  for (int e = 0; e < E; e++) {
    double mean = 0, lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < k; j++) {
      double q = ring[(size_t)j * E + e];
      mean += q;
      lo = q < lo ? q : lo;
      hi = q > hi ? q : hi;
    }
    mean /= k;
    double var = 0;
    for (int j = 0; j < k; j++) {
      double d = ring[(size_t)j * E + e] - mean;
      var += d * d;
    }
    var /= k;
    vmax = var > vmax ? var : vmax;
    rmax = hi - lo > rmax ? hi - lo : rmax;
  }
  *var_max = vmax;
  *range_max = rmax;
}

/* Adds layer l's row of the trace step `step` (its counts c[E], read from
 * line `line`) to the layer's and the trace's token totals, exactly: they
 * are printed and written to JSON as signed 64-bit integers, so a sum past
 * 2^63 - 1 is an error naming the row, never a wrapped figure. */
static int add_tokens(const moeplace_trace *trace, int64_t step, long line, int l,
                      const uint64_t *c, int E, uint64_t *layer, uint64_t *all) {
  uint64_t row = 0;
  int over = 0;
  for (int e = 0; e < E; e++) over |= __builtin_add_overflow(row, c[e], &row);
  over |= __builtin_add_overflow(*layer, row, layer) || *layer > INT64_MAX;
  over |= __builtin_add_overflow(*all, row, all) || *all > INT64_MAX;
  if (!over) return MOEPLACE_OK;
  return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: step %" PRId64 ": layer %d: token totals exceed "
                 "2^63 - 1", moeplace_trace_name(trace), line, step, l);
}

/* What mp_trace_stats_compute adds per step beyond the window's totals:
 * the trace's totals total [L][E] and the token totals of s, checked row by
 * row so that a sum past its limit names the file:line of the row that made
 * it (common/trace_window.h). */
typedef struct stats_step {
  moeplace_trace *trace;
  mp_trace_stats *s;
  uint64_t *total;
} stats_step;

static int add_step(void *ctx, int64_t step, const uint64_t *counts, const long *lines) {
  const stats_step *x = ctx;
  mp_trace_stats *s = x->s;
  const int L = s->layers, E = s->experts;
  int rc = mp_window_add(x->total, counts, (size_t)L * E, E, moeplace_trace_name(x->trace), step,
                         lines, "trace");
  for (int l = 0; l < L && !rc; l++)
    rc = add_tokens(x->trace, step, lines[l], l, counts + (size_t)l * E, E, &s->layer[l].tokens,
                    &s->tokens);
  return rc;
}

int mp_trace_stats_compute(moeplace_trace *trace, int window, int k, mp_trace_stats *s) {
  memset(s, 0, sizeof *s);
  if (!trace) return mp_fail(MOEPLACE_ERR_ARG, "mp_trace_stats_compute: NULL trace");
  if (window <= 0) return mp_fail(MOEPLACE_ERR_ARG, "trace stats: window must be > 0, got %d", window);
  if (k <= 0) return mp_fail(MOEPLACE_ERR_ARG, "trace stats: k must be > 0, got %d", k);
  const int L = moeplace_trace_layers(trace), E = moeplace_trace_experts(trace);
  s->layers = L;
  s->experts = E;
  s->window = window;
  s->k = k;
  s->first_step = -1;
  const size_t LE = (size_t)L * E;
  uint64_t *counts = malloc(LE * sizeof *counts); /* [L][E] one step */
  uint64_t *win = malloc(LE * sizeof *win);    /* [L][E] window totals */
  uint64_t *total = calloc(LE, sizeof *total); /* [L][E] trace totals */
  double *ring = malloc((size_t)k * LE * sizeof *ring); /* [L][k][E] */
  s->layer = calloc((size_t)L, sizeof *s->layer);
  int rc = MOEPLACE_OK;
  size_t cap = 0;
  if (!counts || !win || !total || !ring || !s->layer) {
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
    goto out;
  }
  for (;;) {
    int64_t first;
    int nsteps;
    int got = mp_trace_read_window_with(trace, window, counts, &first, &nsteps, win, add_step,
                                        &(stats_step){trace, s, total});
    if (got < 0) {
      rc = got;
      goto out;
    }
    if (got == 0) break;
    if (s->first_step < 0) s->first_step = first;
    s->steps += nsteps;
    if (nsteps < window) break; /* last partial window: totals only */
    const int slot = (int)(s->windows % k);
    for (int l = 0; l < L; l++) {
      mp_proportions_from_counts(win + (size_t)l * E, E, ring + ((size_t)l * k + slot) * E);
    }
    s->windows++;
    if (s->windows >= k) {
      if ((rc = grow_series(s, &cap))) goto out;
      for (int l = 0; l < L; l++)
        detector_figures(ring + (size_t)l * k * E, k, E, &s->layer[l].window_var_max[s->n_series],
                         &s->layer[l].window_range_max[s->n_series]);
      s->n_series++;
    }
  }
  s->progress = moeplace_trace_get_progress(trace);
  s->last_step = s->progress.last_step;
  for (int l = 0; l < L; l++) {
    mp_layer_stats *ls = &s->layer[l];
    ls->proportion = malloc((size_t)E * sizeof *ls->proportion);
    if (!ls->proportion) {
      rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
      goto out;
    }
    const uint64_t *t = total + (size_t)l * E;
    mp_proportions_from_counts(t, E, ls->proportion);
    double mean = 1.0 / E, var = 0;
    ls->prop_min = INFINITY;
    ls->prop_max = -INFINITY;
    for (int e = 0; e < E; e++) {
      const double p = ls->proportion[e];
      ls->prop_min = p < ls->prop_min ? p : ls->prop_min;
      ls->prop_max = p > ls->prop_max ? p : ls->prop_max;
      var += (p - mean) * (p - mean);
    }
    ls->prop_cv = sqrt(var / E) / mean;
  }
out:
  free(counts);
  free(win);
  free(total);
  free(ring);
  if (rc) mp_trace_stats_free(s);
  return rc;
}

void mp_trace_stats_free(mp_trace_stats *s) {
  if (!s) return;
  for (int l = 0; s->layer && l < s->layers; l++) {
    free(s->layer[l].proportion);
    free(s->layer[l].window_var_max);
    free(s->layer[l].window_range_max);
  }
  free(s->layer);
  memset(s, 0, sizeof *s);
}

static json_t *real_array(const double *v, size_t n) {
  json_t *a = json_array();
  for (size_t i = 0; a && i < n; i++) json_array_append_new(a, json_real(v[i]));
  return a;
}

json_t *mp_trace_stats_to_json(const mp_trace_stats *s, const moeplace_trace *trace) {
  json_t *meta = json_object();
  for (size_t i = 0; i < moeplace_trace_meta_count(trace); i++) {
    moeplace_trace_meta m = moeplace_trace_meta_get(trace, i);
    json_object_set_new(meta, m.key, json_string(m.value));
  }
  json_t *layers = json_array();
  for (int l = 0; l < s->layers; l++) {
    const mp_layer_stats *ls = &s->layer[l];
    json_array_append_new(
        layers, json_pack("{s:i, s:I, s:o, s:f, s:f, s:f, s:o, s:o}", "layer", l, "tokens",
                          (json_int_t)ls->tokens, "proportions", real_array(ls->proportion, (size_t)s->experts),
                          "proportion_min", ls->prop_min, "proportion_max", ls->prop_max,
                          "proportion_cv", ls->prop_cv, "window_variance_max",
                          real_array(ls->window_var_max, s->n_series), "window_range_max",
                          real_array(ls->window_range_max, s->n_series)));
  }
  return json_pack("{s:s, s:I, s:i, s:i, s:I, s:I, s:I, s:I, s:I, s:i, s:i, s:I, s:o, s:o}",
                   "trace", moeplace_trace_name(trace), "steps", (json_int_t)s->steps, "layers",
                   s->layers, "experts", s->experts, "tokens", (json_int_t)s->tokens, "first_step",
                   (json_int_t)s->first_step, "last_step", (json_int_t)s->last_step, "step_stride",
                   (json_int_t)s->progress.stride, "irregular_gaps", (json_int_t)s->progress.irregular,
                   "window", s->window, "k", s->k, "windows", (json_int_t)s->windows, "metadata",
                   meta, "per_layer", layers);
}
