#include "predict/sw_avg.h"

#include <stdlib.h>

#include "common/error.h"
#include "predict/history.h"
#include "predict/proportions.h"

typedef struct sw_avg {
  int k;
  mp_predict_history hist; /* the last k windows */
} sw_avg;

static void sw_avg_destroy(void *state) {
  sw_avg *s = state;
  if (!s) return;
  mp_predict_history_free(&s->hist);
  free(s);
}

int mp_sw_avg_create_k(void **state, int experts, int k) {
  if (k < 1) return mp_fail(MOEPLACE_ERR_ARG, "sw_avg: k must be >= 1, got %d", k);
  if (experts < 1) return mp_fail(MOEPLACE_ERR_ARG, "sw_avg: experts must be >= 1, got %d", experts);
  sw_avg *s = calloc(1, sizeof *s);
  MP_CHECK_ALLOC(s);
  s->k = k;
  int rc = mp_predict_history_init(&s->hist, k, experts);
  if (rc) {
    free(s);
    return rc;
  }
  *state = s;
  return MOEPLACE_OK;
}

static int sw_avg_create(void **state, int experts, uint64_t seed) {
  (void)seed;
  return mp_sw_avg_create_k(state, experts, MP_SW_AVG_DEFAULT_K);
}

static int last_create(void **state, int experts, uint64_t seed) {
  (void)seed;
  return mp_sw_avg_create_k(state, experts, 1);
}

static int sw_avg_observe(void *state, const double *proportions) {
  sw_avg *s = state;
  mp_predict_history_push(&s->hist, proportions);
  return MOEPLACE_OK;
}

static int sw_avg_forecast(void *state, int horizon_windows, double *out) {
  sw_avg *s = state;
  const int E = s->hist.experts, n = mp_predict_history_len(&s->hist);
  if (horizon_windows < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "sw_avg: horizon must be >= 1 window, got %d", horizon_windows);
  for (int e = 0; e < E; e++) out[e] = 0;
  // The mean does not depend on the horizon: sw_avg assumes the future looks
  // like the recent past. Summed afresh each time (k*E adds) so no rounding
  // drift accumulates over a long run.
  for (int b = 0; b < n; b++) {
    const double *w = mp_predict_history_get(&s->hist, b); // w: [E]
    for (int e = 0; e < E; e++) out[e] += w[e];
  }
  if (n > 0)
    for (int e = 0; e < E; e++) out[e] /= n;
  mp_normalize_proportions(out, E); // no history yet: uniform
  return MOEPLACE_OK;
}

const mp_predictor_ops mp_sw_avg_ops = {"sw_avg", sw_avg_create, sw_avg_observe, sw_avg_forecast,
                                        sw_avg_destroy};
const mp_predictor_ops mp_last_ops = {"last", last_create, sw_avg_observe, sw_avg_forecast,
                                      sw_avg_destroy};
