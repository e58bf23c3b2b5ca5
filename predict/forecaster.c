/* The public forecaster (include/moeplace/predict.h): one predictor state
 * per layer of the configured method, plus the state detector. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "common/metrics.h"
#include "predict/proportions.h"
#include "predict/registry.h"

struct moeplace_forecaster {
  moeplace_predict_config cfg;
  int horizon_windows;
  const mp_predictor_ops *ops;
  void **layer; /* [layers] */
  moeplace_state_detector *det;
  int64_t windows;
  int64_t *last_change;   /* [layers] */
  double *props;          /* scratch: [layers][experts] */
  unsigned char *changed; /* scratch: [layers] */
};

void moeplace_predict_config_init(moeplace_predict_config *cfg, int layers, int experts) {
  memset(cfg, 0, sizeof *cfg);
  mp_predict_params prm;
  mp_predict_params_default(&prm);
  cfg->layers = layers;
  cfg->experts = experts;
  cfg->window = 10;
  cfg->horizon = 1000;
  cfg->method = MOEPLACE_PREDICT_AUTO;
  cfg->sw_avg_k = prm.sw_avg_k;
  cfg->arima_history = prm.arima.history;
  cfg->arima_refit = prm.arima.refit_every;
  cfg->auto_power = prm.auto_power;
  moeplace_detector_config_init(&cfg->detector);
  cfg->seed = 42;
}

void moeplace_forecaster_destroy(moeplace_forecaster *f) {
  if (!f) return;
  if (f->layer)
    for (int l = 0; l < f->cfg.layers; l++)
      if (f->layer[l]) f->ops->destroy(f->layer[l]);
  free(f->layer);
  moeplace_state_detector_destroy(f->det);
  free(f->last_change);
  free(f->props);
  free(f->changed);
  free(f);
}

int moeplace_forecaster_create(moeplace_forecaster **out, const moeplace_predict_config *cfg) {
  if (!out || !cfg) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  *out = NULL;
  if (cfg->layers < 1 || cfg->experts < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "forecaster: layers (%d) and experts (%d) must be >= 1",
                   cfg->layers, cfg->experts);
  if (cfg->window < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "window must be >= 1 step, got %d", cfg->window);
  if (cfg->horizon < cfg->window || cfg->horizon % cfg->window)
    return mp_fail(MOEPLACE_ERR_ARG, "horizon (%d) must be a positive multiple of the window (%d)",
                   cfg->horizon, cfg->window);
  const char *name = cfg->method ? cfg->method : MOEPLACE_PREDICT_AUTO;
  const mp_predictor_ops *ops = mp_predict_find(name);
  if (!ops) return mp_fail(MOEPLACE_ERR_ARG, "unknown prediction method '%s'", name);
  if (cfg->sw_avg_k < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "sw_avg k must be >= 1, got %d", cfg->sw_avg_k);
  mp_predict_params prm;
  mp_predict_params_default(&prm);
  prm.sw_avg_k = cfg->sw_avg_k;
  prm.arima.history = cfg->arima_history;
  prm.arima.refit_every = cfg->arima_refit;
  if (!(cfg->auto_power >= 0) || !isfinite(cfg->auto_power))
    return mp_fail(MOEPLACE_ERR_ARG, "auto power must be finite and >= 0, got %g", cfg->auto_power);
  prm.auto_power = cfg->auto_power;
  if (prm.arima.min_history > prm.arima.history) prm.arima.min_history = prm.arima.history;

  moeplace_forecaster *f = calloc(1, sizeof *f);
  MP_CHECK_ALLOC(f);
  f->cfg = *cfg;
  f->cfg.method = ops->name; // do not keep the caller's string
  f->ops = ops;
  f->horizon_windows = cfg->horizon / cfg->window;
  const int L = cfg->layers, E = cfg->experts;
  f->layer = calloc(L, sizeof *f->layer);
  f->last_change = malloc(L * sizeof *f->last_change);
  f->props = malloc((size_t)L * E * sizeof *f->props);
  f->changed = calloc(L, 1);
  if (!f->layer || !f->last_change || !f->props || !f->changed) {
    moeplace_forecaster_destroy(f);
    return mp_fail(MOEPLACE_ERR_NOMEM, "forecaster: out of memory");
  }
  int rc = moeplace_state_detector_create(&f->det, L, E, &cfg->detector);
  for (int l = 0; !rc && l < L; l++) {
    f->last_change[l] = -1;
    rc = mp_predict_create(ops, &prm, E, cfg->seed + 1000003u * (uint64_t)l, &f->layer[l]);
  }
  if (rc) {
    moeplace_forecaster_destroy(f);
    return rc;
  }
  *out = f;
  return MOEPLACE_OK;
}

static int observe_props(moeplace_forecaster *f) {
  const int L = f->cfg.layers, E = f->cfg.experts;
  for (int l = 0; l < L; l++) {
    int rc = f->ops->observe(f->layer[l], f->props + (size_t)l * E);
    if (rc) return rc;
  }
  int n = moeplace_state_detector_observe(f->det, f->props, f->changed);
  if (n < 0) return n;
  f->windows++;
  for (int l = 0; l < L; l++)
    if (f->changed[l]) f->last_change[l] = f->windows;
  return n;
}

int moeplace_forecaster_observe_counts(moeplace_forecaster *f, const uint64_t *counts) {
  if (!f || !counts) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  const int L = f->cfg.layers, E = f->cfg.experts;
  for (int l = 0; l < L; l++)
    mp_proportions_from_counts(counts + (size_t)l * E, E, f->props + (size_t)l * E);
  return observe_props(f);
}

int moeplace_forecaster_observe(moeplace_forecaster *f, const double *proportions) {
  if (!f || !proportions) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  const int L = f->cfg.layers, E = f->cfg.experts;
  for (int l = 0; l < L; l++) {
    const double *p = proportions + (size_t)l * E;
    double *q = f->props + (size_t)l * E;
    for (int e = 0; e < E; e++) {
      if (!isfinite(p[e]) || p[e] < 0)
        return mp_fail(MOEPLACE_ERR_ARG, "forecaster: proportion [%d][%d] is %g", l, e, p[e]);
      q[e] = p[e];
    }
    mp_normalize_proportions(q, E); // tolerate rounding; all-zero -> uniform
  }
  return observe_props(f);
}

int moeplace_forecaster_forecast_layer(moeplace_forecaster *f, int layer, double *out) {
  if (!f || !out) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  if (layer < 0 || layer >= f->cfg.layers)
    return mp_fail(MOEPLACE_ERR_ARG, "forecaster: layer %d out of range [0, %d)", layer,
                   f->cfg.layers);
  const int E = f->cfg.experts;
  int rc = f->ops->forecast(f->layer[layer], f->horizon_windows, out);
  if (rc) return rc;
  // The contract, enforced here too so that no method can break it.
  mp_normalize_proportions(out, E);
  return MOEPLACE_OK;
}

int moeplace_forecaster_forecast(moeplace_forecaster *f, double *out) {
  if (!f || !out) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  for (int l = 0; l < f->cfg.layers; l++) {
    int rc = moeplace_forecaster_forecast_layer(f, l, out + (size_t)l * f->cfg.experts);
    if (rc) return rc;
  }
  return MOEPLACE_OK;
}

int moeplace_forecaster_state(const moeplace_forecaster *f, int layer) {
  if (!f) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  return moeplace_state_detector_state(f->det, layer);
}

int moeplace_forecaster_last_change(const moeplace_forecaster *f, int layer, int64_t *window) {
  if (!f || !window) return mp_fail(MOEPLACE_ERR_ARG, "forecaster: NULL argument");
  if (layer < 0 || layer >= f->cfg.layers)
    return mp_fail(MOEPLACE_ERR_ARG, "forecaster: layer %d out of range [0, %d)", layer,
                   f->cfg.layers);
  *window = f->last_change[layer]; // -1 until the layer first changes state
  return MOEPLACE_OK;
}

int64_t moeplace_forecaster_windows(const moeplace_forecaster *f) { return f ? f->windows : 0; }
