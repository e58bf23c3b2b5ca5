/* moeplace/predict.h: load forecasting and transient/stable state detection
 * (docs/PREDICT.md; metric definitions in docs/metrics.md). Include <moeplace.h>.
 *
 * Data arrive one window (W training steps) at a time, for all L MoE layers
 * at once, as token counts or load proportions with shape [L][E]. Memory is
 * bounded (ring buffers), independent of the training length. */
#ifndef MOEPLACE_PREDICT_H
#define MOEPLACE_PREDICT_H

#include <stdint.h>

#include <moeplace/base.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- State detection -------------------------------------------------- */

typedef enum moeplace_layer_state {
  MOEPLACE_STATE_TRANSIENT = 0, /* loads still moving (a layer starts here) */
  MOEPLACE_STATE_STABLE = 1
} moeplace_layer_state;

/* "transient" or "stable". */
const char *moeplace_layer_state_name(int state);

/* A layer is transient while, over its last k windows, the variance or the
 * range (max - min) of any expert's proportion exceeds its threshold; it
 * turns stable after both stayed under the thresholds for k consecutive
 * windows. Hysteresis: a stable layer turns transient again only when a
 * figure exceeds `hysteresis` times its threshold (1.0 = the bare rule). */
typedef struct moeplace_detector_config {
  int k;                  /* windows (default 20) */
  double var_threshold;   /* default 4e-4 */
  double range_threshold; /* default 0.08 */
  double hysteresis;      /* >= 1, default 1.5 */
} moeplace_detector_config;

void moeplace_detector_config_default(moeplace_detector_config *cfg);

typedef struct moeplace_state_detector moeplace_state_detector;

int moeplace_state_detector_create(moeplace_state_detector **out, int layers, int experts,
                                   const moeplace_detector_config *cfg);
void moeplace_state_detector_destroy(moeplace_state_detector *det);

/* Feeds one window of proportions [layers][experts]. Returns the number of
 * layers whose state changed with this window (>= 0), or an error. If
 * `changed` is not NULL, changed[l] is set to 1 for those layers, else 0. */
int moeplace_state_detector_observe(moeplace_state_detector *det, const double *proportions,
                                    unsigned char *changed);

/* The current state of a layer (a moeplace_layer_state), or an error. */
int moeplace_state_detector_state(const moeplace_state_detector *det, int layer);

/* The detector's figures for a layer after the last window: the largest
 * per-expert variance and range over the last k windows (0 before k windows). */
int moeplace_state_detector_figures(const moeplace_state_detector *det, int layer, double *var_max,
                                    double *range_max);

/* ---- Forecasting ------------------------------------------------------ */

/* Method names: "last" (reference: the last window), "sw_avg", "arima",
 * "lstm" (when built in) and MOEPLACE_PREDICT_AUTO, which blends the others
 * per layer by their measured error on horizons that have come true. */
#define MOEPLACE_PREDICT_AUTO "auto"

/* Number of available methods, and the name of the i-th (0 <= i < count;
 * NULL outside). */
int moeplace_predict_method_count(void);
const char *moeplace_predict_method_name(int i);

typedef struct moeplace_predict_config {
  int layers, experts;
  int window;         /* steps per window (default 10) */
  int horizon;        /* steps forecast, a multiple of window (default 1000) */
  const char *method; /* see above (default MOEPLACE_PREDICT_AUTO) */
  int sw_avg_k;       /* sw_avg: windows averaged (default 50) */
  int arima_history;  /* arima: windows fitted on (default 200) */
  int arima_refit;    /* arima: windows between refits (default 10) */
  double auto_power;  /* auto: a method's weight ~ (best error / its error)^power (default 4) */
  moeplace_detector_config detector;
  uint64_t seed; /* makes learned methods deterministic */
} moeplace_predict_config;

/* Fills the defaults for a model of `layers` x `experts`. */
void moeplace_predict_config_default(moeplace_predict_config *cfg, int layers, int experts);

typedef struct moeplace_forecaster moeplace_forecaster;

int moeplace_forecaster_create(moeplace_forecaster **out, const moeplace_predict_config *cfg);
void moeplace_forecaster_destroy(moeplace_forecaster *f);

/* One completed window for every layer: counts or proportions [layers][experts].
 * Returns the number of layers whose state changed (>= 0), or an error. An
 * all-zero window of a layer counts as uniform load. */
int moeplace_forecaster_observe_counts(moeplace_forecaster *f, const uint64_t *counts);
int moeplace_forecaster_observe(moeplace_forecaster *f, const double *proportions);

/* Forecast of the mean load proportion of every expert over the next
 * `horizon` steps: out[layers][experts], each row non-negative, summing to 1. */
int moeplace_forecaster_forecast(moeplace_forecaster *f, double *out);

/* Same for one layer only: out[experts]. */
int moeplace_forecaster_forecast_layer(moeplace_forecaster *f, int layer, double *out);

/* A layer's state (a moeplace_layer_state, >= 0), or MOEPLACE_ERR_ARG for a
 * NULL forecaster or a layer outside [0, layers). */
int moeplace_forecaster_state(const moeplace_forecaster *f, int layer);

/* When a layer last changed state: *window = the number of windows observed
 * when the change happened (1 = with the first window), or -1 when the layer
 * never changed (it is still in its initial transient state). Returns
 * MOEPLACE_OK, or MOEPLACE_ERR_ARG (NULL f or window, layer outside
 * [0, layers); the reason in moeplace_last_error(), *window left as is). */
int moeplace_forecaster_last_change(const moeplace_forecaster *f, int layer, int64_t *window);

/* Windows observed so far. */
int64_t moeplace_forecaster_windows(const moeplace_forecaster *f);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_PREDICT_H */
