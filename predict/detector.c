/* The transient/stable state detector (include/moeplace/predict.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/error.h"
#include "predict/history.h"

struct moeplace_state_detector {
  int layers, experts;
  moeplace_detector_config cfg;
  mp_predict_history *hist;    /* [layers], each the last k windows */
  int *state;                  /* [layers] */
  int *under;                  /* [layers]: consecutive windows under both thresholds */
  double *var_max, *range_max; /* [layers]: figures after the last window */
};

const char *moeplace_layer_state_name(int state) {
  return state == MOEPLACE_STATE_STABLE ? "stable" : "transient";
}

void moeplace_detector_config_init(moeplace_detector_config *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  // Chosen from the per-window figures of the recorded traces
  // (docs/PREDICT.md, "State detector": the defaults and their table).
  cfg->k = 20;
  cfg->var_threshold = 4e-4;
  cfg->range_threshold = 0.08;
  cfg->hysteresis = 1.5;
}

void moeplace_state_detector_destroy(moeplace_state_detector *det) {
  if (!det) return;
  if (det->hist)
    for (int l = 0; l < det->layers; l++) mp_predict_history_free(&det->hist[l]);
  free(det->hist);
  free(det->state);
  free(det->under);
  free(det->var_max);
  free(det->range_max);
  free(det);
}

int moeplace_state_detector_create(moeplace_state_detector **out, int layers, int experts,
                                   const moeplace_detector_config *cfg) {
  if (!out || !cfg) return mp_fail(MOEPLACE_ERR_ARG, "state detector: NULL argument");
  *out = NULL;
  if (layers < 1 || experts < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "state detector: layers (%d) and experts (%d) must be >= 1",
                   layers, experts);
  if (cfg->k < 2)
    return mp_fail(MOEPLACE_ERR_ARG, "state detector: k must be >= 2, got %d", cfg->k);
  if (!(cfg->var_threshold > 0) || !(cfg->range_threshold > 0) || !isfinite(cfg->var_threshold) ||
      !isfinite(cfg->range_threshold))
    return mp_fail(MOEPLACE_ERR_ARG,
                   "state detector: thresholds must be finite and > 0 (var %g, range %g)",
                   cfg->var_threshold, cfg->range_threshold);
  if (!(cfg->hysteresis >= 1.0) || !isfinite(cfg->hysteresis))
    return mp_fail(MOEPLACE_ERR_ARG, "state detector: hysteresis must be >= 1, got %g",
                   cfg->hysteresis);
  moeplace_state_detector *d = calloc(1, sizeof *d);
  MP_CHECK_ALLOC(d);
  d->layers = layers;
  d->experts = experts;
  d->cfg = *cfg;
  d->hist = calloc(layers, sizeof *d->hist);
  d->state = calloc(layers, sizeof *d->state);
  d->under = calloc(layers, sizeof *d->under);
  d->var_max = calloc(layers, sizeof *d->var_max);
  d->range_max = calloc(layers, sizeof *d->range_max);
  if (!d->hist || !d->state || !d->under || !d->var_max || !d->range_max) {
    moeplace_state_detector_destroy(d);
    return mp_fail(MOEPLACE_ERR_NOMEM, "state detector: out of memory");
  }
  for (int l = 0; l < layers; l++) {
    int rc = mp_predict_history_init(&d->hist[l], cfg->k, experts);
    if (rc) {
      moeplace_state_detector_destroy(d);
      return rc;
    }
    d->state[l] = MOEPLACE_STATE_TRANSIENT;
  }
  *out = d;
  return MOEPLACE_OK;
}

/* Largest per-expert (population) variance and range over the k windows. */
static void figures(const mp_predict_history *h, double *var_max, double *range_max) {
  const int k = mp_predict_history_len(h), E = h->experts;
  double vmax = 0, rmax = 0;
  for (int e = 0; e < E; e++) {
    double mean = 0, lo = INFINITY, hi = -INFINITY;
    for (int b = 0; b < k; b++) {
      double q = mp_predict_history_get(h, b)[e];
      mean += q;
      lo = fmin(lo, q);
      hi = fmax(hi, q);
    }
    mean /= k;
    double var = 0;
    for (int b = 0; b < k; b++) {
      double dq = mp_predict_history_get(h, b)[e] - mean;
      var += dq * dq;
    }
    vmax = fmax(vmax, var / k);
    rmax = fmax(rmax, hi - lo);
  }
  *var_max = vmax;
  *range_max = rmax;
}

int moeplace_state_detector_observe(moeplace_state_detector *det, const double *proportions,
                                    unsigned char *changed) {
  if (!det || !proportions) return mp_fail(MOEPLACE_ERR_ARG, "state detector: NULL argument");
  const int E = det->experts;
  for (size_t i = 0; i < (size_t)det->layers * E; i++)
    if (!isfinite(proportions[i]) || proportions[i] < 0)
      return mp_fail(MOEPLACE_ERR_ARG, "state detector: proportion [%zu][%zu] is %g", i / E, i % E,
                     proportions[i]);
  int n_changed = 0;
  for (int l = 0; l < det->layers; l++) {
    mp_predict_history *h = &det->hist[l];
    mp_predict_history_push(h, proportions + (size_t)l * E);
    if (changed) changed[l] = 0;
    if (mp_predict_history_len(h) < det->cfg.k) continue; // not enough windows yet: stays transient
    figures(h, &det->var_max[l], &det->range_max[l]);
    const double v = det->var_max[l], r = det->range_max[l];
    int next = det->state[l];
    if (det->state[l] == MOEPLACE_STATE_STABLE) {
      const double f = det->cfg.hysteresis;
      if (v > f * det->cfg.var_threshold || r > f * det->cfg.range_threshold) {
        next = MOEPLACE_STATE_TRANSIENT;
        det->under[l] = 0;
      }
    } else {
      det->under[l] =
          v <= det->cfg.var_threshold && r <= det->cfg.range_threshold ? det->under[l] + 1 : 0;
      if (det->under[l] >= det->cfg.k) next = MOEPLACE_STATE_STABLE;
    }
    if (next != det->state[l]) {
      det->state[l] = next;
      n_changed++;
      if (changed) changed[l] = 1;
    }
  }
  return n_changed;
}

int moeplace_state_detector_state(const moeplace_state_detector *det, int layer) {
  if (!det || layer < 0 || layer >= det->layers)
    return mp_fail(MOEPLACE_ERR_ARG, "state detector: layer %d out of range", layer);
  return det->state[layer];
}

int moeplace_state_detector_figures(const moeplace_state_detector *det, int layer, double *var_max,
                                    double *range_max) {
  if (!det || layer < 0 || layer >= det->layers || !var_max || !range_max)
    return mp_fail(MOEPLACE_ERR_ARG, "state detector: bad argument (layer %d)", layer);
  *var_max = det->var_max[layer];
  *range_max = det->range_max[layer];
  return MOEPLACE_OK;
}
