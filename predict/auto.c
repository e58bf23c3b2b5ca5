#include "predict/auto.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "predict/history.h"
#include "common/metrics.h"
#include "predict/proportions.h"

#define MAX_CHILDREN 8
#define PENDING 32      /* forecasts awaiting their actuals */
#define ACTUAL_CAP 1024 /* longest horizon (windows) that is scored */
#define ERR_DECAY 0.2   /* weight of the newest score in the running error */
#define EARLY_AGE 3     /* windows after which a forecast gets its early score */

/* One forecast of every child, scored once its horizon has passed. */
typedef struct pending {
  int used, early_done;
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
  /* Until the first full horizon has come true (h windows after the first
   * forecast: a long time for a long horizon), the weights come from early
   * scores: the same forecasts against the first EARLY_AGE windows of their
   * horizon. A short-range proxy, but better than no evidence at all. */
  double err_early[MAX_CHILDREN];
  int64_t scored_early;
  double *xerr[2]; /* per expert: [2][children][E], early and full scores */
  double power;
  mp_predict_history actual; /* the last windows, as many as the longest horizon asked */
  pending pend[PENDING];
  int64_t last_recorded;
  double *fc;  /* scratch: [children][E] */
  double *act; /* scratch: [E] */
} auto_pred;

static void auto_destroy(void *state) {
  auto_pred *a = state;
  if (!a) return;
  for (int c = 0; c < a->n; c++) a->ops[c]->destroy(a->child[c]);
  for (int i = 0; i < PENDING; i++) free(a->pend[i].fc);
  mp_predict_history_free(&a->actual);
  free(a->fc);
  free(a->xerr[0]);
  free(a->xerr[1]);
  free(a->act);
  free(a);
}

int mp_auto_create_cfg(void **state, int experts, uint64_t seed, const mp_predict_params *prm) {
  if (experts < 1) return mp_fail(MOEPLACE_ERR_ARG, "auto: experts must be >= 1, got %d", experts);
  auto_pred *a = calloc(1, sizeof *a);
  MP_CHECK_ALLOC(a);
  a->E = experts;
  a->power = prm->auto_power;
  a->last_recorded = -1;
  int rc = mp_predict_history_init(&a->actual, EARLY_AGE + 1, experts);
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
  a->act = calloc(experts, sizeof *a->act);
  a->xerr[0] = calloc((size_t)a->n * experts, sizeof(double));
  a->xerr[1] = calloc((size_t)a->n * experts, sizeof(double));
  if (!a->xerr[0] || !a->xerr[1] || !a->act) {
    free(a->fc);
    a->fc = NULL;
  }
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

/* The scored error: mape over experts (docs/metrics.md, common/metrics.h) as
 * a fraction, the figure auto is judged by, with near-idle experts left out;
 * when every expert is near-idle, the mean absolute error instead. */
static double score(const double *p, const double *act, int E) {
  mp_forecast_error err = {0};
  mp_forecast_error_add(&err, p, act, E);
  return err.n_ape ? err.ape / (double)err.n_ape : err.ae / (double)err.n_ae;
}

static void score_experts(auto_pred *a, int which, const double *fc, const double *act, int first) {
  const int E = a->E;
  for (int c = 0; c < a->n; c++)
    for (int e = 0; e < E; e++) {
      if (act[e] < MP_MAPE_MIN_ACTUAL) continue; // left out of mape
      double s = fabs(fc[(size_t)c * E + e] - act[e]) / act[e];
      double *x = &a->xerr[which][(size_t)c * E + e];
      *x = first ? s : (1 - ERR_DECAY) * *x + ERR_DECAY * s;
    }
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
    const int age = EARLY_AGE < pd->h ? EARLY_AGE : pd->h;
    if (!pd->used || pd->early_done || pd->made_at + age > a->actual.count) continue;
    double *act = a->act;
    for (int e = 0; e < E; e++) act[e] = 0;
    for (int b = 0; b < age; b++) {
      const double *w = mp_predict_history_get(&a->actual, b);
      for (int e = 0; e < E; e++) act[e] += w[e] / age;
    }
    for (int c = 0; c < a->n; c++) {
      double s = score(pd->fc + (size_t)c * E, act, E);
      a->err_early[c] = a->scored_early ? (1 - ERR_DECAY) * a->err_early[c] + ERR_DECAY * s : s;
    }
    score_experts(a, 0, pd->fc, act, a->scored_early == 0);
    a->scored_early++;
    pd->early_done = 1;
  }
  for (int i = 0; i < PENDING; i++) {
    pending *pd = &a->pend[i];
    if (!pd->used || pd->made_at + pd->h > a->actual.count) continue;
    // Its horizon has come true: actual = mean proportion over those windows.
    double *act = a->act;
    for (int e = 0; e < E; e++) act[e] = 0;
    for (int b = 0; b < pd->h; b++) {
      const double *w = mp_predict_history_get(&a->actual, b);
      for (int e = 0; e < E; e++) act[e] += w[e] / pd->h;
    }
    for (int c = 0; c < a->n; c++) {
      double s = score(pd->fc + (size_t)c * E, act, E);
      a->err[c] = a->scored ? (1 - ERR_DECAY) * a->err[c] + ERR_DECAY * s : s;
    }
    score_experts(a, 1, pd->fc, act, a->scored == 0);
    a->scored++;
    pd->used = 0;
  }
  return MOEPLACE_OK;
}

/* Weights ~ (best error / error)^power: a method twice as bad as the best
 * gets 2^-power of its weight; before any score, all methods weigh the same. */
static void weights(const auto_pred *a, double *w) {
  const double *err = a->scored ? a->err : a->err_early;
  const int have = a->scored || a->scored_early;
  double best = INFINITY, sum = 0;
  for (int c = 0; c < a->n; c++) best = fmin(best, err[c]);
  for (int c = 0; c < a->n; c++) {
    w[c] = have && best > 0 ? pow(best / fmax(err[c], 1e-300), a->power) : 1.0;
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
    // Per expert: the layer's weight of each method, geometrically averaged
    // with its weight from this expert's own record (experts of one layer can
    // differ: a method may fail on a near-idle expert only). The expert's
    // record mixes early and full scores once both exist.
    double we[MAX_CHILDREN], best = INFINITY, sum = 0;
    for (int c = 0; c < a->n; c++) {
      const double x0 = a->xerr[0][(size_t)c * E + e], x1 = a->xerr[1][(size_t)c * E + e];
      we[c] = a->scored ? sqrt(x0 * x1) : x0;
      best = fmin(best, we[c]);
    }
    for (int c = 0; c < a->n; c++) {
      double r = a->scored_early && best > 0 ? pow(best / fmax(we[c], 1e-300), a->power) : 1.0;
      we[c] = sqrt(r * w[c]);
      if (!isfinite(we[c])) we[c] = 0;
      sum += we[c];
    }
    double v = 0;
    for (int c = 0; c < a->n; c++)
      v += (sum > 0 ? we[c] / sum : 1.0 / a->n) * a->fc[(size_t)c * E + e];
    out[e] = v;
  }
  mp_normalize_proportions(out, E);
  // Grow the window history to the horizon (it starts small so that a short
  // horizon costs little memory), keeping the windows already seen.
  if (horizon_windows <= ACTUAL_CAP && horizon_windows > a->actual.cap) {
    mp_predict_history bigger;
    int rc = mp_predict_history_init(&bigger, horizon_windows, E);
    if (rc) return rc;
    const int len = mp_predict_history_len(&a->actual);
    bigger.count = a->actual.count - len;
    for (int b = len - 1; b >= 0; b--)
      mp_predict_history_push(&bigger, mp_predict_history_get(&a->actual, b));
    mp_predict_history_free(&a->actual);
    a->actual = bigger;
  }
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
    pd->early_done = 0;
    pd->made_at = a->actual.count;
    pd->h = horizon_windows;
    memcpy(pd->fc, a->fc, (size_t)a->n * E * sizeof *a->fc);
    a->last_recorded = a->actual.count;
  }
  return MOEPLACE_OK;
}

const mp_predictor_ops mp_auto_ops = {"auto", auto_create, auto_observe, auto_forecast,
                                      auto_destroy};
