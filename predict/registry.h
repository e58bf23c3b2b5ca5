/* The table of forecasting methods (mp_predictor_ops) and a constructor that
 * passes each method its own parameters. */
#ifndef MOEPLACE_PREDICT_REGISTRY_H
#define MOEPLACE_PREDICT_REGISTRY_H

#include <stdint.h>

#include "predict/arima.h"
#include "predict/predictor.h"

/* Method-specific parameters (defaults: mp_predict_params_default). */
typedef struct mp_predict_params {
  int sw_avg_k;
  mp_arima_config arima;
  double auto_power; /* auto: weight of a method ~ (best error / its error)^power */
} mp_predict_params;

void mp_predict_params_default(mp_predict_params *prm);

int mp_predict_count(void);
const mp_predictor_ops *mp_predict_get(int i);
/* NULL when there is no method of that name. */
const mp_predictor_ops *mp_predict_find(const char *name);

/* Creates the state of method `ops` for one layer with parameters prm. */
int mp_predict_create(const mp_predictor_ops *ops, const mp_predict_params *prm, int experts,
                      uint64_t seed, void **state);

#endif
