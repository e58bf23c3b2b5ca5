/* arima predictor: one ARIMA model per expert series of window proportions
 * (predict/arima_model.h), order chosen by KPSS (d) and AIC (p, q), refitted
 * every `refit_every` windows on the last `history` windows (each order warm-
 * started from its previous optimum); between refits
 * the fitted models are re-filtered over the new data (cheap). The forecast
 * of each expert is the mean of its ARIMA point forecasts over the horizon;
 * the vector is then clipped at 0 and renormalised. */
#ifndef MOEPLACE_PREDICT_ARIMA_H
#define MOEPLACE_PREDICT_ARIMA_H

#include "predict/predictor.h"

/* Fits use stack buffers of the series length: keep it bounded. */
#define MP_ARIMA_MAX_HISTORY 10000
#define MP_ARIMA_MAX_HISTORY_STR "10000"

typedef struct mp_arima_config {
  int history;          /* windows a model is fitted on (ring buffer size); default 200 */
  int refit_every;      /* windows between refits; default 10 */
  int min_history;      /* fewer windows than this: forecast their mean; default 16 */
  int pmax, dmax, qmax; /* order grid; default 2, 1, 1 */
  double tol;           /* Nelder-Mead simplex size tolerance; default 1e-3 */
  int max_iter;         /* default 200 */
} mp_arima_config;

void mp_arima_config_init(mp_arima_config *cfg);
int mp_arima_create_cfg(void **state, int experts, const mp_arima_config *cfg);

extern const mp_predictor_ops mp_arima_ops;

#endif
