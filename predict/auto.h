/* auto: per layer, blends the other methods by their measured error on
 * forecasts whose horizon has already come true (docs/PREDICT.md). */
#ifndef MOEPLACE_PREDICT_AUTO_H
#define MOEPLACE_PREDICT_AUTO_H

#include "predict/predictor.h"
#include "predict/registry.h"

extern const mp_predictor_ops mp_auto_ops;

int mp_auto_create_cfg(void **state, int experts, uint64_t seed, const mp_predict_params *prm);

/* The current blend weights: w[n] for the first n methods (n <= count);
 * returns the number of methods blended. For tests and reports. */
int mp_auto_weights(const void *state, const char **names, double *w, int n);

#endif
