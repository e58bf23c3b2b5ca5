/* The backtest engine (include/moeplace/predict.h, predict/backtest.h):
 * reads a trace into complete windows, feeds the sources and a state
 * detector one window at a time, and scores every source's forecast at
 * every origin with docs/metrics.md's mape and mae_pp. */
#include "predict/backtest.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/metrics.h"
#include "common/timer.h"

/* ---- the trace as windows ----------------------------------------------- */

/* cum: [(windows + 1)][L][E] running token totals, so that the tokens of any
 * span of windows are the difference of two rows; props: [windows][L][E];
 * win_first: [windows] the trace's first step of each window. */
typedef struct series {
  int L, E, W;
  int64_t windows, stride;
  int64_t *win_first;
  double *cum, *props;
} series;

/* Idempotent: series_load frees on a read error, and its caller again. */
static void series_free(series *s) {
  free(s->win_first);
  free(s->cum);
  free(s->props);
  s->win_first = NULL;
  s->cum = s->props = NULL;
}

/* The trace's last step of window w (0-based). A sampled trace (stride > 1)
 * has W recorded steps per window, spanning W x stride trace steps. */
static int64_t window_end(const series *s, int64_t w) {
  return s->win_first[w] + (int64_t)(s->W - 1) * s->stride;
}

/* Room for one more window (cum needs one row more than the windows). */
static int series_grow(series *s, int64_t *cap) {
  if (s->windows + 1 < *cap) return MOEPLACE_OK;
  const size_t LE = (size_t)s->L * s->E;
  *cap = *cap ? 2 * *cap : 256;
  double *c = realloc(s->cum, (size_t)(*cap + 1) * LE * sizeof *c);
  if (c) s->cum = c;
  double *p = c ? realloc(s->props, (size_t)*cap * LE * sizeof *p) : NULL;
  if (p) s->props = p;
  int64_t *wf = p ? realloc(s->win_first, (size_t)*cap * sizeof *wf) : NULL;
  if (wf) s->win_first = wf;
  if (!wf) return mp_fail(MOEPLACE_ERR_NOMEM, "backtest: out of memory reading the trace");
  if (s->windows == 0) memset(s->cum, 0, LE * sizeof *s->cum);
  return MOEPLACE_OK;
}

/* Reads every complete window of W steps; res gets the trace's fields. */
static int series_load(moeplace_trace *trace, int W, series *s, moeplace_backtest_result *res) {
  memset(s, 0, sizeof *s);
  s->L = moeplace_trace_layers(trace);
  s->E = moeplace_trace_experts(trace);
  s->W = W;
  const size_t LE = (size_t)s->L * s->E;
  uint64_t *tot = malloc(LE * sizeof *tot); // [L][E] tokens of one window
  double *tok = malloc(LE * sizeof *tok);   // same, as doubles
  if (!tot || !tok) {
    free(tot);
    free(tok);
    return mp_fail(MOEPLACE_ERR_NOMEM, "backtest: out of memory reading the trace");
  }
  int64_t cap = 0;
  int rc;
  for (;;) {
    int64_t first;
    int got;
    rc = moeplace_trace_read_window(trace, W, &first, &got, tot);
    if (rc <= 0) break;
    if (got < W) { // a partial last window is not a window
      res->partial_steps = got;
      rc = 0;
      break;
    }
    if ((rc = series_grow(s, &cap))) break;
    s->win_first[s->windows] = first;
    const double *prev = s->cum + (size_t)s->windows * LE;
    double *next = s->cum + (size_t)(s->windows + 1) * LE;
    for (size_t i = 0; i < LE; i++) {
      tok[i] = (double)tot[i];
      next[i] = prev[i] + tok[i];
    }
    // the window's proportions, layer by layer (metrics.md)
    for (int l = 0; l < s->L; l++)
      mp_proportions_from_tokens(tok + (size_t)l * s->E, s->E,
                                 s->props + (size_t)s->windows * LE + (size_t)l * s->E);
    s->windows++;
  }
  free(tot);
  free(tok);
  moeplace_trace_progress pr = moeplace_trace_get_progress(trace);
  s->stride = pr.stride > 0 ? pr.stride : 1;
  res->layers = s->L;
  res->experts = s->E;
  res->windows = s->windows;
  res->stride = s->stride;
  res->irregular = pr.irregular;
  if (rc < 0) series_free(s);
  return rc < 0 ? rc : MOEPLACE_OK;
}

/* ---- the run ------------------------------------------------------------ */

/* Accumulators of one source: [state at the origin], [MOEPLACE_BACKTEST_ALL]. */
typedef struct score {
  mp_forecast_error err[3];
  double forecast_s, observe_s;
  int64_t forecasts, observes;
} score;

typedef struct run {
  const moeplace_backtest_config *cfg;
  const mp_backtest_source *src;
  int n_src;
  series s;
  moeplace_state_detector *det;
  score *sc;             /* [n_src] */
  double *pred;          /* [n_src][E] */
  double *act, *tokens;  /* [E] each */
  unsigned char *changed; /* [L] */
  moeplace_backtest_result *res;
  int64_t cap_changes;
} run;

/* The parameters the trace must allow; messages name the config fields. */
static int check_history(const run *r, int n0, int Hw) {
  const moeplace_predict_config *p = &r->cfg->predict;
  const int64_t N = r->s.windows;
  if (N < n0 + Hw)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "backtest: trace too short for one forecast origin: %lld complete windows of "
                   "%d steps, need %d of history (min_history) + %d of horizon",
                   (long long)N, p->window, n0, Hw);
  if (p->detector.k > N - Hw)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "backtest: detector.k (%d) is larger than the history available at the last "
                   "origin (%lld windows)",
                   p->detector.k, (long long)(N - Hw));
  if (p->sw_avg_k > N - Hw)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "backtest: sw_avg_k (%d) is larger than the history available at the last "
                   "origin (%lld windows)",
                   p->sw_avg_k, (long long)(N - Hw));
  return MOEPLACE_OK;
}

/* Feeds window n (1-based) to every source and the detector; records the
 * layers whose state changed at its last step. */
static int observe_window(run *r, int64_t n) {
  const int L = r->s.L;
  const double *win = r->s.props + (size_t)(n - 1) * L * r->s.E;
  for (int i = 0; i < r->n_src; i++) {
    const double t0 = mp_now_s();
    int rc = r->src[i].observe(r->src[i].state, win);
    if (rc < 0) return rc;
    r->sc[i].observe_s += mp_now_s() - t0;
    r->sc[i].observes += L;
  }
  int rc = moeplace_state_detector_observe(r->det, win, r->changed);
  if (rc < 0) return rc;
  moeplace_backtest_result *res = r->res;
  for (int l = 0; l < L; l++) {
    if (!r->changed[l]) continue;
    if (res->n_changes == r->cap_changes) {
      r->cap_changes = r->cap_changes ? 2 * r->cap_changes : 64;
      moeplace_backtest_change *c = realloc(res->change, (size_t)r->cap_changes * sizeof *c);
      if (!c) return mp_fail(MOEPLACE_ERR_NOMEM, "backtest: out of memory");
      res->change = c;
    }
    res->change[res->n_changes++] = (moeplace_backtest_change){
        l, moeplace_state_detector_state(r->det, l), window_end(&r->s, n - 1)};
  }
  return MOEPLACE_OK;
}

/* Origin after window n: every source forecasts every layer, scored against
 * the proportions of windows n+1 .. n+Hw, i.e. the steps (t, t+H]. */
static int score_origin(run *r, int64_t n, int Hw) {
  const int L = r->s.L, E = r->s.E;
  const size_t LE = (size_t)L * E;
  const double *c0 = r->s.cum + (size_t)n * LE, *c1 = r->s.cum + (size_t)(n + Hw) * LE;
  for (int l = 0; l < L; l++) {
    // actual: the horizon's tokens per expert -> proportions
    for (int e = 0; e < E; e++) r->tokens[e] = c1[(size_t)l * E + e] - c0[(size_t)l * E + e];
    mp_proportions_from_tokens(r->tokens, E, r->act);
    const int state = moeplace_state_detector_state(r->det, l);
    for (int i = 0; i < r->n_src; i++) {
      double *p = r->pred + (size_t)i * E;
      const double t0 = mp_now_s();
      int rc = r->src[i].forecast_layer(r->src[i].state, l, p);
      if (rc) return rc;
      r->sc[i].forecast_s += mp_now_s() - t0;
      r->sc[i].forecasts++;
      // the error, by the layer's state and over all origins
      mp_forecast_error_add(&r->sc[i].err[state], p, r->act, E);
      mp_forecast_error_add(&r->sc[i].err[MOEPLACE_BACKTEST_ALL], p, r->act, E);
    }
    if (r->cfg->on_origin) {
      moeplace_backtest_origin o = {n, r->s.windows, window_end(&r->s, n - 1),
                                    window_end(&r->s, n - 1 + Hw), l, E, r->n_src, state,
                                    r->act, r->pred};
      int rc = r->cfg->on_origin(r->cfg->ctx, &o);
      if (rc) return rc;
    }
  }
  return MOEPLACE_OK;
}

/* The figures of every source, from its accumulators. */
static int fill_methods(run *r, int64_t origins) {
  moeplace_backtest_result *res = r->res;
  res->method = calloc((size_t)r->n_src, sizeof *res->method);
  if (!res->method) return mp_fail(MOEPLACE_ERR_NOMEM, "backtest: out of memory");
  res->n_methods = r->n_src;
  for (int i = 0; i < r->n_src; i++) {
    moeplace_backtest_method *m = &res->method[i];
    const score *sc = &r->sc[i];
    m->name = r->src[i].name;
    for (int k = 0; k < 3; k++) {
      m->mape[k] = mp_mape(&sc->err[k]);
      m->mae_pp[k] = mp_mae_pp(&sc->err[k]);
      m->layer_origins[k] = sc->err[k].n_ae / r->s.E;
    }
    m->mape_skipped = sc->err[MOEPLACE_BACKTEST_ALL].skipped;
    m->origins = origins;
    m->forecast_us = 1e6 * sc->forecast_s / (double)(sc->forecasts ? sc->forecasts : 1);
    m->observe_us = 1e6 * sc->observe_s / (double)(sc->observes ? sc->observes : 1);
  }
  return MOEPLACE_OK;
}

static int run_origins(run *r) {
  const moeplace_backtest_config *cfg = r->cfg;
  const int Hw = cfg->predict.horizon / cfg->predict.window;
  const int n0 = cfg->min_history > 0 ? cfg->min_history : cfg->predict.detector.k;
  int rc = check_history(r, n0, Hw);
  if (rc) return rc;
  const int L = r->s.L, E = r->s.E;
  r->sc = calloc((size_t)r->n_src, sizeof *r->sc);
  r->pred = malloc((size_t)r->n_src * E * sizeof *r->pred);
  r->act = malloc((size_t)E * sizeof *r->act);
  r->tokens = malloc((size_t)E * sizeof *r->tokens);
  r->changed = calloc((size_t)L, 1);
  if (!r->sc || !r->pred || !r->act || !r->tokens || !r->changed)
    return mp_fail(MOEPLACE_ERR_NOMEM, "backtest: out of memory");
  if ((rc = moeplace_state_detector_create(&r->det, L, E, &cfg->predict.detector))) return rc;
  const int64_t N = r->s.windows, total = N - Hw - n0 + 1;
  for (int64_t n = 1; n <= N - Hw; n++) { // n = windows observed
    if ((rc = observe_window(r, n))) return rc;
    if (n < n0) continue;
    if ((rc = score_origin(r, n, Hw))) return rc;
    if (cfg->on_progress) cfg->on_progress(cfg->ctx, n - n0 + 1, total);
  }
  r->res->origins = total;
  r->res->first_origin_step = window_end(&r->s, n0 - 1);
  return fill_methods(r, total);
}

int mp_backtest_run_sources(moeplace_trace *trace, const moeplace_backtest_config *cfg,
                            const mp_backtest_source *src, int n_src,
                            moeplace_backtest_result *res) {
  if (!res) return mp_fail(MOEPLACE_ERR_ARG, "backtest: NULL result");
  memset(res, 0, sizeof *res);
  res->windows = -1;
  if (!trace || !cfg || !src || n_src < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "backtest: NULL argument or no method");
  const moeplace_predict_config *p = &cfg->predict;
  if (p->window < 1 || p->horizon < p->window || p->horizon % p->window)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "backtest: horizon (%d) must be a positive multiple of the window (%d)",
                   p->horizon, p->window);
  if (cfg->min_history < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "backtest: min_history must be >= 0, got %d",
                   cfg->min_history);
  run r = {.cfg = cfg, .src = src, .n_src = n_src, .res = res};
  int rc = series_load(trace, p->window, &r.s, res);
  if (!rc) rc = run_origins(&r);
  moeplace_state_detector_destroy(r.det);
  free(r.sc);
  free(r.pred);
  free(r.act);
  free(r.tokens);
  free(r.changed);
  series_free(&r.s);
  if (rc) { // nothing to free on error; the trace's fields stay
    free(res->method);
    free(res->change);
    res->method = NULL;
    res->change = NULL;
    res->n_methods = 0;
    res->n_changes = 0;
  }
  return rc;
}

/* ---- the public entry: one forecaster per method ------------------------ */

static int fc_observe(void *state, const double *proportions) {
  return moeplace_forecaster_observe(state, proportions);
}

static int fc_forecast_layer(void *state, int layer, double *out) {
  return moeplace_forecaster_forecast_layer(state, layer, out);
}

mp_backtest_source mp_backtest_forecaster_source(moeplace_forecaster *f, const char *name) {
  return (mp_backtest_source){name, f, fc_observe, fc_forecast_layer};
}

void moeplace_backtest_config_init(moeplace_backtest_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  moeplace_predict_config_init(&cfg->predict, 0, 0);
}

/* The registry's static name of method `name`, or NULL. */
static const char *method_name(const char *name) {
  for (int i = 0; name && i < moeplace_predict_method_count(); i++)
    if (!strcmp(name, moeplace_predict_method_name(i))) return moeplace_predict_method_name(i);
  return NULL;
}

int moeplace_backtest_run(moeplace_trace *trace, const moeplace_backtest_config *cfg,
                          moeplace_backtest_result *res) {
  if (!res) return mp_fail(MOEPLACE_ERR_ARG, "backtest: NULL result");
  memset(res, 0, sizeof *res);
  res->windows = -1;
  if (!trace || !cfg || (cfg->n_methods > 0 && !cfg->methods) || cfg->n_methods < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "backtest: NULL argument or bad method list");
  // Sources: "last" first, then every listed method once.
  const int cap = 1 + cfg->n_methods;
  mp_backtest_source *src = calloc((size_t)cap, sizeof *src);
  moeplace_forecaster **fc = calloc((size_t)cap, sizeof *fc);
  int n = 0, rc = MOEPLACE_OK;
  if (!src || !fc) rc = mp_fail(MOEPLACE_ERR_NOMEM, "backtest: out of memory");
  for (int i = -1; !rc && i < cfg->n_methods; i++) {
    const char *name = method_name(i < 0 ? "last" : cfg->methods[i]);
    if (!name) {
      rc = mp_fail(MOEPLACE_ERR_ARG, "backtest: unknown method '%s'", cfg->methods[i]);
      break;
    }
    int dup = 0;
    for (int j = 0; j < n; j++) dup |= src[j].name == name;
    if (dup) continue;
    moeplace_predict_config c = cfg->predict;
    c.layers = moeplace_trace_layers(trace);
    c.experts = moeplace_trace_experts(trace);
    c.method = name;
    if ((rc = moeplace_forecaster_create(&fc[n], &c))) break;
    src[n] = mp_backtest_forecaster_source(fc[n], name);
    n++;
  }
  if (!rc) rc = mp_backtest_run_sources(trace, cfg, src, n, res);
  for (int i = 0; fc && i < n; i++) moeplace_forecaster_destroy(fc[i]);
  free(fc);
  free(src);
  return rc;
}

void moeplace_backtest_result_free(moeplace_backtest_result *res) {
  if (!res) return;
  free(res->method);
  free(res->change);
  memset(res, 0, sizeof *res);
}
