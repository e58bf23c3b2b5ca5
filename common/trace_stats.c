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

/* The window proportions of the last k windows, [slots][L][E] (slot =
 * window % k). Grown as windows arrive, up to k slots, so that a k larger
 * than the trace's windows costs only the windows it has. */
typedef struct window_ring {
  double *q;
  size_t slots; /* allocated; k once the trace has k windows */
} window_ring;

/* Makes room for the slot of window w (0-based) of s. */
static int ring_reserve(window_ring *ring, const mp_trace_stats *s, int64_t w) {
  const size_t LE = (size_t)s->layers * s->experts;
  if (w < (int64_t)ring->slots || ring->slots == (size_t)s->k) return MOEPLACE_OK;
  size_t n = ring->slots ? 2 * ring->slots : 16;
  if (n > (size_t)s->k) n = (size_t)s->k;
  double *q = n <= SIZE_MAX / sizeof *q / LE ? realloc(ring->q, n * LE * sizeof *q) : NULL;
  if (!q)
    return mp_fail(MOEPLACE_ERR_NOMEM, "trace stats: out of memory for the window proportions of "
                   "%zu of the last k = %d windows (of %d steps) x %d layers x %d experts "
                   "(%.3g GB); a smaller k or a larger window needs less", n, s->k, s->window,
                   s->layers, s->experts, (double)n * LE * sizeof *q / 1e9);
  ring->q = q;
  ring->slots = n;
  return MOEPLACE_OK;
}

/* ring: [k][stride] the last k window proportions of one layer (E of every
 * stride), in any order (slot = window % k; the figures do not depend on
 * the order). */
static void detector_figures(const double *ring, int k, size_t stride, int E, double *var_max,
                             double *range_max) {
  double vmax = 0, rmax = 0;
  for (int e = 0; e < E; e++) {
    double mean = 0, lo = INFINITY, hi = -INFINITY;
    for (int j = 0; j < k; j++) {
      double q = ring[(size_t)j * stride + e];
      mean += q;
      lo = q < lo ? q : lo;
      hi = q > hi ? q : hi;
    }
    mean /= k;
    double var = 0;
    for (int j = 0; j < k; j++) {
      double d = ring[(size_t)j * stride + e] - mean;
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
static int add_tokens(const char *name, int64_t step, long line, int l, const uint64_t *c, int E,
                      uint64_t *layer, uint64_t *all) {
  uint64_t row = 0;
  int over = 0;
  for (int e = 0; e < E; e++) over |= __builtin_add_overflow(row, c[e], &row);
  over |= __builtin_add_overflow(*layer, row, layer) || *layer > INT64_MAX;
  over |= __builtin_add_overflow(*all, row, all) || *all > INT64_MAX;
  if (!over) return MOEPLACE_OK;
  return mp_fail(MOEPLACE_ERR_FORMAT, "%s:%ld: step %" PRId64 ": layer %d: token totals exceed "
                 "2^63 - 1", name, line, step, l);
}

int mp_trace_totals_init(mp_trace_totals *t, const moeplace_trace *trace) {
  const int L = moeplace_trace_layers(trace), E = moeplace_trace_experts(trace);
  t->name = moeplace_trace_name(trace);
  t->layers = L;
  t->experts = E;
  t->all = 0;
  t->expert = calloc((size_t)L * E, sizeof *t->expert);
  t->layer = calloc((size_t)L, sizeof *t->layer);
  if (t->expert && t->layer) return MOEPLACE_OK;
  mp_trace_totals_free(t);
  return mp_fail(MOEPLACE_ERR_NOMEM, "%s: out of memory for the totals of %d layers x %d experts",
                 moeplace_trace_name(trace), L, E);
}

int mp_trace_totals_add(mp_trace_totals *t, int64_t step, const uint64_t *counts,
                        const long *lines) {
  const int L = t->layers, E = t->experts;
  int rc = mp_window_add(t->expert, counts, (size_t)L * E, E, t->name, step, lines, "trace");
  for (int l = 0; l < L && !rc; l++)
    rc = add_tokens(t->name, step, lines[l], l, counts + (size_t)l * E, E, &t->layer[l], &t->all);
  return rc;
}

void mp_trace_totals_free(mp_trace_totals *t) {
  free(t->expert);
  free(t->layer);
  t->expert = NULL;
  t->layer = NULL;
}

/* mp_trace_stats_compute's hook per step (common/trace_window.h): the
 * trace's totals, checked row by row so that a sum past its limit names
 * the file:line of the row that made it. */
static int add_step(void *ctx, int64_t step, const uint64_t *counts, const long *lines) {
  return mp_trace_totals_add(ctx, step, counts, lines);
}

/* The whole-trace figures of layer l from its totals t[E]. */
static int layer_figures(mp_layer_stats *ls, const uint64_t *t, int E) {
  ls->proportion = malloc((size_t)E * sizeof *ls->proportion);
  if (!ls->proportion) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
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
  return MOEPLACE_OK;
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
  mp_trace_totals total;
  int rc = mp_trace_totals_init(&total, trace);
  window_ring ring = {NULL, 0};
  s->layer = calloc((size_t)L, sizeof *s->layer);
  size_t cap = 0;
  if (rc == MOEPLACE_OK && (!counts || !win || !s->layer))
    rc = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory");
  while (rc == MOEPLACE_OK) {
    int64_t first;
    int nsteps;
    int got = mp_trace_read_window_with(trace, window, counts, &first, &nsteps, win, add_step,
                                        &total);
    if (got <= 0) {
      rc = got;
      break;
    }
    if (s->first_step < 0) s->first_step = first;
    s->steps += nsteps;
    if (nsteps < window) break; /* last partial window: totals only */
    if ((rc = ring_reserve(&ring, s, s->windows))) break;
    double *slot = ring.q + (size_t)(s->windows % k) * LE;
    for (int l = 0; l < L; l++)
      mp_proportions_from_counts(win + (size_t)l * E, E, slot + (size_t)l * E);
    s->windows++;
    if (s->windows >= k) {
      if ((rc = grow_series(s, &cap))) break;
      for (int l = 0; l < L; l++)
        detector_figures(ring.q + (size_t)l * E, k, LE, E,
                         &s->layer[l].window_var_max[s->n_series],
                         &s->layer[l].window_range_max[s->n_series]);
      s->n_series++;
    }
  }
  s->progress = moeplace_trace_get_progress(trace);
  s->last_step = s->progress.last_step;
  s->tokens = total.all;
  for (int l = 0; l < L && rc == MOEPLACE_OK; l++) {
    s->layer[l].tokens = total.layer[l];
    rc = layer_figures(&s->layer[l], total.expert + (size_t)l * E, E);
  }
  free(counts);
  free(win);
  mp_trace_totals_free(&total);
  free(ring.q);
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
