#include "predict/auto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "predict/history.h"
#include "predict/proportions.h"

#define MAX_CHILDREN 8
#define PENDING 32      /* forecasts awaiting their actuals */
#define ACTUAL_CAP 1024 /* longest horizon (windows) that can be scored */
#define ERR_DECAY 0.2   /* weight of the newest score in the running error */

/* One forecast of every child, scored once its horizon has passed. */
typedef struct pending {
  int used;
  int64_t made_at; /* windows observed when it was made */
  int h;           /* horizon, windows */
  double *fc;      /* [children][E] */
} pending;

typedef struct auto_pred {
  int E, n;
  const mp_predictor_ops *ops[MAX_CHILDREN];
  void *child[MAX_CHILDREN];
  double err[MAX_CHILDREN]; /* running mean of each child's scored error */
  int64_t scored;
  double power;
  mp_predict_history actual; /* the last ACTUAL_CAP windows */
  pending pend[PENDING];
  int64_t last_recorded;
  double *fc; /* scratch: [children][E] */
} auto_pred;

static void auto_destroy(void *state) {
  auto_pred *a = state;
  if (!a) return;
  for (int c = 0; c < a->n; c++) a->ops[c]->destroy(a->child[c]);
  for (int i = 0; i < PENDING; i++) free(a->pend[i].fc);
  mp_predict_history_free(&a->actual);
  free(a->fc);
  free(a);
}

int mp_auto_create_cfg(void **state, int experts, uint64_t seed, const mp_predict_params *prm) {
  if (experts < 1) return mp_fail(MOEPLACE_ERR_ARG, "auto: experts must be >= 1, got %d", experts);
  auto_pred *a = calloc(1, sizeof *a);
  MP_CHECK_ALLOC(a);
  a->E = experts;
  a->power = prm->auto_power;
  a->last_recorded = -1;
  int rc = mp_predict_history_init(&a->actual, ACTUAL_CAP, experts);
  if (rc) {
    free(a);
    return rc;
  }
  // Every registered method except the reference and auto itself.
  for (int i = 0; i < mp_predict_count() && a->n < MAX_CHILDREN; i++) {
    const mp_predictor_ops *o = mp_predict_get(i);
    if (!strcmp(o->name, "last") || o == &mp_auto_ops) continue;
    rc = mp_predict_create(o, prm, experts, seed + 7919u * (uint64_t)(i + 1), &a->child[a->n]);
    if (rc) {
      auto_destroy(a);
      return rc;
    }
    a->ops[a->n++] = o;
  }
  a->fc = calloc((size_t)a->n * experts, sizeof *a->fc);
  for (int i = 0; i < PENDING && a->fc; i++) {
    a->pend[i].fc = malloc((size_t)a->n * experts * sizeof *a->pend[i].fc);
    if (!a->pend[i].fc) {
      free(a->fc);
      a->fc = NULL;
    }
  }
  if (!a->fc) {
    auto_destroy(a);
    return mp_fail(MOEPLACE_ERR_NOMEM, "auto: out of memory");
  }
  *state = a;
  return MOEPLACE_OK;
}

static int auto_create(void **state, int experts, uint64_t seed) {
  mp_predict_params prm;
  mp_predict_params_default(&prm);
  return mp_auto_create_cfg(state, experts, seed, &prm);
}

/* The scored error: mape over experts (docs/metrics.md), the figure auto is
 * judged by, with near-idle experts (< 1e-6) left out. */
static double score(const double *p, const double *act, int E) {
  double s = 0;
  int n = 0;
  for (int e = 0; e < E; e++)
    if (act[e] >= 1e-6) {
      s += fabs(p[e] - act[e]) / act[e];
      n++;
    }
  if (n) return s / n;
  for (int e = 0; e < E; e++) s += fabs(p[e] - act[e]);
  return s / E;
}

static int auto_observe(void *state, const double *proportions) {
  auto_pred *a = state;
  for (int c = 0; c < a->n; c++) {
    int rc = a->ops[c]->observe(a->child[c], proportions);
    if (rc) return rc;
  }
  mp_predict_history_push(&a->actual, proportions);
  const int E = a->E;
  for (int i = 0; i < PENDING; i++) {
    pending *pd = &a->pend[i];
    if (!pd->used || pd->made_at + pd->h > a->actual.count) continue;
    // Its horizon has come true: actual = mean proportion over those windows.
    double act[E];
    for (int e = 0; e < E; e++) act[e] = 0;
    for (int b = 0; b < pd->h; b++) {
      const double *w = mp_predict_history_get(&a->actual, b);
      for (int e = 0; e < E; e++) act[e] += w[e] / pd->h;
    }
    for (int c = 0; c < a->n; c++) {
      double s = score(pd->fc + (size_t)c * E, act, E);
      a->err[c] = a->scored ? (1 - ERR_DECAY) * a->err[c] + ERR_DECAY * s : s;
    }
    a->scored++;
    pd->used = 0;
  }
  return MOEPLACE_OK;
}

/* Weights ~ (best error / error)^power: a method twice as bad as the best
 * gets 2^-power of its weight; before any score, all methods weigh the same. */
static void weights(const auto_pred *a, double *w) {
  double best = INFINITY, sum = 0;
  for (int c = 0; c < a->n; c++) best = fmin(best, a->err[c]);
  for (int c = 0; c < a->n; c++) {
    w[c] = a->scored && best > 0 ? pow(best / fmax(a->err[c], 1e-300), a->power) : 1.0;
    if (!isfinite(w[c])) w[c] = 0;
    sum += w[c];
  }
  for (int c = 0; c < a->n; c++) w[c] = sum > 0 ? w[c] / sum : 1.0 / a->n;
}

static int auto_forecast(void *state, int horizon_windows, double *out) {
  auto_pred *a = state;
  const int E = a->E;
  if (horizon_windows < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "auto: horizon must be >= 1 window, got %d", horizon_windows);
  for (int c = 0; c < a->n; c++) {
    int rc = a->ops[c]->forecast(a->child[c], horizon_windows, a->fc + (size_t)c * E);
    if (rc) return rc;
  }
  double w[MAX_CHILDREN];
  weights(a, w);
  for (int e = 0; e < E; e++) {
    double s = 0;
    for (int c = 0; c < a->n; c++) s += w[c] * a->fc[(size_t)c * E + e];
    out[e] = s;
  }
  mp_normalize_proportions(out, E);
  // Keep this forecast for scoring. Spacing the kept ones by h/16 windows
  // bounds memory to ~17 pending forecasts whatever the horizon.
  int64_t spacing = horizon_windows / 16 > 1 ? horizon_windows / 16 : 1;
  if (horizon_windows <= ACTUAL_CAP &&
      (a->last_recorded < 0 || a->actual.count - a->last_recorded >= spacing)) {
    int slot = -1;
    for (int i = 0; i < PENDING; i++)
      if (!a->pend[i].used && slot < 0) slot = i;
    if (slot < 0) { // full (horizons changed): replace the oldest
      slot = 0;
      for (int i = 1; i < PENDING; i++)
        if (a->pend[i].made_at < a->pend[slot].made_at) slot = i;
    }
    pending *pd = &a->pend[slot];
    pd->used = 1;
    pd->made_at = a->actual.count;
    pd->h = horizon_windows;
    memcpy(pd->fc, a->fc, (size_t)a->n * E * sizeof *a->fc);
    a->last_recorded = a->actual.count;
  }
  return MOEPLACE_OK;
}

int mp_auto_weights(const void *state, const char **names, double *w, int n) {
  const auto_pred *a = state;
  double all[MAX_CHILDREN];
  weights(a, all);
  for (int c = 0; c < a->n && c < n; c++) {
    if (names) names[c] = a->ops[c]->name;
    w[c] = all[c];
  }
  return a->n;
}

const mp_predictor_ops mp_auto_ops = {"auto", auto_create, auto_observe, auto_forecast, auto_destroy};
