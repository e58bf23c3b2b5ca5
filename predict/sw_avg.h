/* sw_avg: the forecast is the mean of the last k window proportions (all
 * windows seen so far while fewer than k). Also the `last` reference: the
 * proportions of the last window (sw_avg with k = 1). */
#ifndef MOEPLACE_PREDICT_SW_AVG_H
#define MOEPLACE_PREDICT_SW_AVG_H

#include "predict/predictor.h"

#define MP_SW_AVG_DEFAULT_K 50

extern const mp_predictor_ops mp_sw_avg_ops; /* k = MP_SW_AVG_DEFAULT_K */
extern const mp_predictor_ops mp_last_ops;

/* sw_avg with an explicit k (>= 1). */
int mp_sw_avg_create_k(void **state, int experts, int k);

#endif
