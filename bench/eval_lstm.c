/* Accuracy check of the LSTM predictor on a real trace, for development and
 * docs/PREDICT-LSTM.md (the project's moeplace-predict tool does the full
 * evaluation with every method and the state detector).
 *
 *   bench/eval_lstm TRACE [HORIZON_STEPS=1000] [WINDOW=10] [SEED=1] [KEY=VALUE ...]
 *
 * KEY=VALUE overrides a field of mp_lstm_config (hidden, bptt, burn_in,
 * history, baseline, max_batch, train_steps, lr, ema, slow_ema), for tuning.
 *
 * The backtest engine (predict/backtest.h, the one behind moeplace-predict)
 * runs it: the LSTM (one state per layer, seed + layer) is a source of its
 * own beside two forecasters, the `last` reference (the proportions of
 * window t) and sw_avg over the LSTM's `baseline` windows (the mean its
 * forecast is a correction of). Origins are one window apart from
 * t = bptt on, while the horizon fits in the trace; every forecast of the
 * mean proportions over windows t+1 .. t+h is scored separately for origins
 * in the second half of the trace (the stable part of the real traces: the
 * figure that counts) and in the first half (mostly transient). mape and
 * mae_pp as in docs/metrics.md (common/metrics.h). */
#include <math.h>
#include <moeplace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/metrics.h"
#include "predict/backtest.h"
#include "predict/lstm.h"

/* The LSTM as a backtest source: layer[L] states, horizon h windows. */
typedef struct lstm_source {
  void **layer;
  int L, E, h;
} lstm_source;

static int lstm_observe(void *state, const double *proportions) {
  lstm_source *s = state;
  for (int l = 0; l < s->L; l++) {
    int rc = mp_lstm_ops.observe(s->layer[l], proportions + (size_t)l * s->E);
    if (rc) return rc;
  }
  return MOEPLACE_OK;
}

static int lstm_forecast_layer(void *state, int layer, double *out) {
  lstm_source *s = state;
  return mp_lstm_ops.forecast(s->layer[layer], s->h, out);
}

/* Errors by source and half: [source][0] second half, [1] first half. */
typedef struct halves {
  mp_forecast_error err[3][2];
  long origins_second; /* origins in the second half */
} halves;

static int on_origin(void *ctx, const moeplace_backtest_origin *o) {
  halves *hv = ctx;
  const int part = o->window - 1 < o->total_windows / 2; // 0-based window t < nw / 2
  for (int i = 0; i < o->methods && i < 3; i++)
    mp_forecast_error_add(&hv->err[i][part], o->forecast + (size_t)i * o->experts, o->actual,
                          o->experts);
  hv->origins_second += !part && o->layer == 0;
  return MOEPLACE_OK;
}

int main(int argc, char **argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s TRACE [HORIZON_STEPS=1000] [WINDOW=10] [SEED=1] [KEY=VALUE ...]\n",
            argv[0]);
    return 2;
  }
  const int H = argc > 2 ? atoi(argv[2]) : 1000, W = argc > 3 ? atoi(argv[3]) : 10;
  const uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
  mp_lstm_config cfg = mp_lstm_config_init();
  for (int i = 5; i < argc; i++) {
    char key[32];
    double v;
    if (sscanf(argv[i], "%31[a-z_]=%lf", key, &v) != 2) {
      fprintf(stderr, "%s: bad override '%s' (KEY=VALUE)\n", argv[0], argv[i]);
      return 2;
    }
#define SET(field, type)      \
  if (!strcmp(key, #field)) { \
    cfg.field = (type)v;      \
    continue;                 \
  }
    SET(hidden, int)
    SET(bptt, int) SET(burn_in, int) SET(history, int) SET(baseline, int) SET(max_batch, int)
        SET(train_steps, int) SET(lr, float) SET(ema, double) SET(slow_ema, double)
#undef SET
            fprintf(stderr, "%s: unknown config key '%s'\n", argv[0], key);
    return 2;
  }
  if (H <= 0 || W <= 0 || H % W) {
    fprintf(stderr, "%s: horizon %d must be a positive multiple of window %d\n", argv[0], H, W);
    return 2;
  }
  const int h = H / W;
  moeplace_trace *tr;
  if (moeplace_trace_open(&tr, argv[1]) != MOEPLACE_OK) {
    fprintf(stderr, "%s: %s\n", argv[0], moeplace_last_error());
    return 2;
  }
  const int L = moeplace_trace_layers(tr), E = moeplace_trace_experts(tr);
  // Sources: lstm, last, baseline (sw_avg over cfg.baseline windows).
  moeplace_backtest_config bc;
  moeplace_backtest_config_init(&bc);
  bc.predict.layers = L;
  bc.predict.experts = E;
  bc.predict.window = W;
  bc.predict.horizon = H;
  bc.predict.sw_avg_k = cfg.baseline;
  bc.min_history = cfg.bptt + 1;
  lstm_source ls = {calloc((size_t)L, sizeof(void *)), L, E, h};
  moeplace_forecaster *fc[2] = {NULL, NULL};
  const char *methods[2] = {"last", "sw_avg"};
  int rc = ls.layer ? MOEPLACE_OK : MOEPLACE_ERR_NOMEM;
  for (int l = 0; !rc && l < L; l++) rc = mp_lstm_create_config(&ls.layer[l], E, seed + (uint64_t)l, &cfg);
  for (int i = 0; !rc && i < 2; i++) {
    bc.predict.method = methods[i];
    rc = moeplace_forecaster_create(&fc[i], &bc.predict);
  }
  halves hv = {0};
  bc.on_origin = on_origin;
  bc.ctx = &hv;
  moeplace_backtest_result res;
  if (!rc) {
    const mp_backtest_source src[3] = {{"lstm", &ls, lstm_observe, lstm_forecast_layer},
                                       mp_backtest_forecaster_source(fc[0], "last"),
                                       mp_backtest_forecaster_source(fc[1], "baseline")};
    rc = mp_backtest_run_sources(tr, &bc, src, 3, &res);
  }
  moeplace_trace_close(tr);
  double trust = 0.0;
  for (int l = 0; ls.layer && l < L; l++) {
    if (!rc) trust += mp_lstm_trust(ls.layer[l]) / L;
    if (ls.layer[l]) mp_lstm_ops.destroy(ls.layer[l]);
  }
  free(ls.layer);
  for (int i = 0; i < 2; i++) moeplace_forecaster_destroy(fc[i]);
  if (rc) {
    fprintf(stderr, "%s: %s\n", argv[0], moeplace_last_error());
    return rc == MOEPLACE_ERR_ARG || rc == MOEPLACE_ERR_FORMAT ? 2 : 1;
  }
  printf(
      "trace %s: %d layers x %d experts, %lld windows of %d steps, horizon %d steps "
      "(%d windows), origins in the second half: %ld\n",
      argv[1], L, E, (long long)res.windows, W, H, h, hv.origins_second);
  printf("%-24s %10s %10s %14s %14s\n", "predictor", "mape_%", "mae_pp", "1st-half mape",
         "1st-half mae");
  const char *names[3] = {"lstm", "last", "baseline (mean, K win.)"};
  for (int i = 0; i < 3; i++)
    printf("%-24s %10.3f %10.4f %14.3f %14.4f\n", names[i], mp_mape(&hv.err[i][0]),
           mp_mae_pp(&hv.err[i][0]), mp_mape(&hv.err[i][1]), mp_mae_pp(&hv.err[i][1]));
  printf("mean final trust %.3f; mean observe %.1f us, forecast %.1f us per layer\n", trust,
         res.method[0].observe_us, res.method[0].forecast_us);
  moeplace_backtest_result_free(&res);
  return 0;
}
