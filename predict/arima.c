#include "predict/arima.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "predict/arima_model.h"
#include "predict/history.h"
#include "predict/proportions.h"

typedef struct arima_pred {
  mp_arima_config cfg;
  int experts;
  mp_predict_history hist;
  mp_arima_fit *fit;   /* [experts] */
  int64_t *fitted_at;  /* [experts]: window count at each expert's last refit; -1: never */
  mp_arima_warm *warm; /* [experts]: previous optimum of every order */
  double *series;      /* scratch: one expert's series, oldest first: [history] */
} arima_pred;

void mp_arima_config_init(mp_arima_config *cfg) {
  cfg->history = 200;
  cfg->refit_every = 10;
  cfg->min_history = 40;
  cfg->pmax = 2;
  cfg->dmax = 1;
  cfg->qmax = 1;
  cfg->tol = 1e-3;
  cfg->max_iter = 200;
}

static void arima_destroy(void *state) {
  arima_pred *a = state;
  if (!a) return;
  mp_predict_history_free(&a->hist);
  free(a->fit);
  free(a->warm);
  free(a->fitted_at);
  free(a->series);
  free(a);
}

int mp_arima_create_cfg(void **state, int experts, const mp_arima_config *cfg) {
  if (experts < 1) return mp_fail(MOEPLACE_ERR_ARG, "arima: experts must be >= 1, got %d", experts);
  if (cfg->history < 8 || cfg->history > MP_ARIMA_MAX_HISTORY || cfg->refit_every < 1 || cfg->min_history < 8 ||
      cfg->min_history > cfg->history)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "arima: need 8 <= history <= " MP_ARIMA_MAX_HISTORY_STR
                   " (got %d), refit_every >= 1 (got %d), "
                   "8 <= min_history <= history (got %d)",
                   cfg->history, cfg->refit_every, cfg->min_history);
  if (cfg->pmax < 0 || cfg->pmax > MP_ARIMA_MAX_P || cfg->qmax < 0 || cfg->qmax > MP_ARIMA_MAX_Q ||
      cfg->dmax < 0 || cfg->dmax > 1)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "arima: order grid p<=%d, d<=%d, q<=%d outside p<=%d, d<=1, q<=%d", cfg->pmax,
                   cfg->dmax, cfg->qmax, MP_ARIMA_MAX_P, MP_ARIMA_MAX_Q);
  if (!(cfg->tol > 0) || cfg->max_iter < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "arima: tol must be > 0 and max_iter >= 1");
  arima_pred *a = calloc(1, sizeof *a);
  MP_CHECK_ALLOC(a);
  a->cfg = *cfg;
  a->experts = experts;
  int rc = mp_predict_history_init(&a->hist, cfg->history, experts);
  a->fit = calloc(experts, sizeof *a->fit);
  a->warm = calloc(experts, sizeof *a->warm);
  a->fitted_at = malloc(experts * sizeof *a->fitted_at);
  for (int e = 0; a->fitted_at && e < experts; e++) a->fitted_at[e] = -1;
  a->series = malloc((size_t)cfg->history * sizeof *a->series);
  if (rc || !a->fit || !a->warm || !a->fitted_at || !a->series) {
    arima_destroy(a);
    return rc ? rc : mp_fail(MOEPLACE_ERR_NOMEM, "arima: out of memory");
  }
  *state = a;
  return MOEPLACE_OK;
}

static int arima_create(void **state, int experts, uint64_t seed) {
  (void)seed; // deterministic: the simplex starts from zero
  mp_arima_config cfg;
  mp_arima_config_init(&cfg);
  return mp_arima_create_cfg(state, experts, &cfg);
}

static int arima_observe(void *state, const double *proportions) {
  arima_pred *a = state;
  mp_predict_history_push(&a->hist, proportions);
  return MOEPLACE_OK;
}

/* series[n]: expert e's window proportions, oldest first. */
static void gather(const arima_pred *a, int e, int n) {
  for (int t = 0; t < n; t++) a->series[t] = mp_predict_history_get(&a->hist, n - 1 - t)[e];
}

static int arima_forecast(void *state, int horizon_windows, double *out) {
  arima_pred *a = state;
  const int E = a->experts, n = mp_predict_history_len(&a->hist);
  if (horizon_windows < 1)
    return mp_fail(MOEPLACE_ERR_ARG, "arima: horizon must be >= 1 window, got %d", horizon_windows);
  if (n < a->cfg.min_history) {
    // Too little data for a meaningful fit: the mean of what there is.
    for (int e = 0; e < E; e++) {
      out[e] = 0;
      for (int b = 0; b < n; b++) out[e] += mp_predict_history_get(&a->hist, b)[e];
    }
    mp_normalize_proportions(out, E);
    return MOEPLACE_OK;
  }
  const mp_arima_opts opts = {a->cfg.tol, a->cfg.max_iter, 0};
  const int64_t now = a->hist.count;
  for (int e = 0; e < E; e++) {
    gather(a, e, n);
    if (a->fitted_at[e] < 0 || now - a->fitted_at[e] >= a->cfg.refit_every) {
      int rc = mp_arima_select_warm(a->series, n, a->cfg.pmax, a->cfg.dmax, a->cfg.qmax, &opts,
                                    &a->warm[e], &a->fit[e]);
      if (rc) return rc;
      // Stagger the refits: after the first (cold) fit, expert e is next due
      // e % refit_every windows early, so that each later forecast refits
      // about E / refit_every experts instead of all of them at once.
      a->fitted_at[e] = a->fitted_at[e] < 0 ? now - e % a->cfg.refit_every : now;
    }
    int rc = mp_arima_forecast_mean(&a->fit[e], a->series, n, horizon_windows, &out[e]);
    if (rc) return rc;
  }
  mp_normalize_proportions(out, E);
  return MOEPLACE_OK;
}

const mp_predictor_ops mp_arima_ops = {"arima", arima_create, arima_observe, arima_forecast,
                                       arima_destroy};
