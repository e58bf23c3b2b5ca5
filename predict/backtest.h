/* Internal side of the backtest (include/moeplace/predict.h): the engine
 * scores "sources", anything that observes windows and forecasts one layer.
 * The public moeplace_backtest_run makes one source per method from a
 * moeplace_forecaster; bench/eval_lstm.c adds a source of its own (the LSTM
 * with a tuned configuration) beside forecasters. */
#ifndef MOEPLACE_PREDICT_BACKTEST_H
#define MOEPLACE_PREDICT_BACKTEST_H

#include <moeplace.h>

typedef struct mp_backtest_source {
  const char *name; /* kept as is in the result: must outlive it */
  void *state;
  /* One complete window: proportions [layers][experts]; < 0: error. */
  int (*observe)(void *state, const double *proportions);
  /* Forecast of the mean proportions over the configured horizon for one
   * layer: out[experts]; non-zero: error. */
  int (*forecast_layer)(void *state, int layer, double *out);
} mp_backtest_source;

/* A source over a forecaster called `name` (state = f; the caller keeps and
 * frees f; name must outlive the result, e.g. moeplace_predict_method_name). */
mp_backtest_source mp_backtest_forecaster_source(moeplace_forecaster *f, const char *name);

/* moeplace_backtest_run with the given sources instead of cfg->methods
 * (which is ignored; no "last" is added). The sources' horizon must be
 * cfg->predict.horizon. Returns and fills *res as moeplace_backtest_run. */
int mp_backtest_run_sources(moeplace_trace *trace, const moeplace_backtest_config *cfg,
                            const mp_backtest_source *src, int n_src,
                            moeplace_backtest_result *res);

#endif
