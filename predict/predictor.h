/* Internal interface every forecasting method implements (sw_avg, arima,
 * lstm, ...). One predictor instance serves one layer: it is fed the load
 * proportions of each completed window, oldest first, and forecasts the mean
 * proportion of every expert over the next `horizon_windows` windows.
 *
 * Predictors keep their own bounded history, so memory does not grow with
 * training length, and may learn online in observe() (the LSTM does).
 * Every forecast must be a valid proportion vector: finite, non-negative,
 * summing to 1 (mp_normalize_proportions() in predict/proportions.h helps). */
#ifndef MOEPLACE_PREDICT_PREDICTOR_H
#define MOEPLACE_PREDICT_PREDICTOR_H

#include <stdint.h>

typedef struct mp_predictor_ops {
  const char *name; /* "sw_avg", "arima", "lstm", ... */
  /* Creates the state for one layer of `experts` experts. `seed` makes any
   * randomness deterministic. Parameters specific to a method come from its
   * own defaults or from the method-specific config the public API exposes. */
  int (*create)(void **state, int experts, uint64_t seed);
  /* One more completed window: proportions[experts], summing to 1. */
  int (*observe)(void *state, const double *proportions);
  /* Mean proportion over the next horizon_windows windows: out[experts]. */
  int (*forecast)(void *state, int horizon_windows, double *out);
  void (*destroy)(void *state);
} mp_predictor_ops;

#endif
