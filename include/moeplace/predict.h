/* moeplace/predict.h: load forecasting and transient/stable state detection
 * (docs/PREDICT.md; metric definitions in docs/metrics.md). Include <moeplace.h>.
 *
 * Data arrive one window (W training steps) at a time, for all L MoE layers
 * at once, as token counts or load proportions with shape [L][E]. Memory is
 * bounded (ring buffers), independent of the training length. */
#ifndef MOEPLACE_H
#error Please include <moeplace.h> instead of <moeplace/predict.h>.
#endif

#ifndef MOEPLACE_PREDICT_H
#define MOEPLACE_PREDICT_H

#include <stdint.h>

#include <moeplace/base.h>
#include <moeplace/trace.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- State detection -------------------------------------------------- */

typedef enum moeplace_layer_state {
  MOEPLACE_STATE_TRANSIENT = 0, /* loads still moving (a layer starts here) */
  MOEPLACE_STATE_STABLE = 1
} moeplace_layer_state;

/* "stable" for MOEPLACE_STATE_STABLE, "transient" for any other value. Static storage. */
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
  uint64_t reserved[4]; /* zeroed by moeplace_detector_config_init() (ABI: moeplace/base.h) */
} moeplace_detector_config;

void moeplace_detector_config_init(moeplace_detector_config *cfg);

typedef struct moeplace_state_detector moeplace_state_detector;

/* A detector for `layers` x `experts` proportions; cfg NULL = defaults.
 * Returns MOEPLACE_OK and *out (destroy it with
 * moeplace_state_detector_destroy()), or MOEPLACE_ERR_ARG (a shape or
 * parameter out of range, named in the message) / MOEPLACE_ERR_NOMEM with
 * *out = NULL. Memory is O(k x layers x experts). */
int moeplace_state_detector_create(moeplace_state_detector **out, int layers, int experts,
                                   const moeplace_detector_config *cfg);
/* Accepts NULL. */
void moeplace_state_detector_destroy(moeplace_state_detector *det);

/* Feeds one window of proportions [layers][experts]. Returns the number of
 * layers whose state changed with this window (>= 0), or MOEPLACE_ERR_ARG
 * (NULL, or a value that is negative or not finite; the detector is then
 * unchanged). If `changed` [layers] is not NULL, changed[l] is set to 1 for
 * those layers, else 0. */
int moeplace_state_detector_observe(moeplace_state_detector *det, const double *proportions,
                                    unsigned char *changed);

/* The current state of a layer (a moeplace_layer_state, >= 0), or
 * MOEPLACE_ERR_ARG for NULL or a layer out of range. */
int moeplace_state_detector_state(const moeplace_state_detector *det, int layer);

/* The detector's figures for a layer after the last window: the largest
 * per-expert variance and range over the last k windows (0 before k
 * windows). MOEPLACE_ERR_ARG for NULL or a layer out of range. */
int moeplace_state_detector_figures(const moeplace_state_detector *det, int layer, double *var_max,
                                    double *range_max);

/* ---- Forecasting ------------------------------------------------------ */

/* Method names: "last" (reference: the last window), "sw_avg", "arima",
 * "lstm" (when built in) and MOEPLACE_PREDICT_AUTO, which blends the others
 * per layer by their measured error on horizons that have come true. */
#define MOEPLACE_PREDICT_AUTO "auto"

/* Number of available methods, and the name of the i-th (0 <= i < count;
 * NULL outside). Names are static storage. */
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
  uint64_t reserved[8]; /* zeroed by moeplace_predict_config_init() (ABI: moeplace/base.h) */
} moeplace_predict_config;

/* Writes every default (and zeroes reserved) for a model of `layers` x
 * `experts`; `method` points at a static string. Accepts NULL. */
void moeplace_predict_config_init(moeplace_predict_config *cfg, int layers, int experts);

typedef struct moeplace_forecaster moeplace_forecaster;

/* A forecaster for cfg (copied: the strings it points at need not outlive
 * the call). Returns MOEPLACE_OK and *out (destroy it with
 * moeplace_forecaster_destroy()), or MOEPLACE_ERR_ARG (a shape or parameter
 * out of range, an unknown method; named in the message) / MOEPLACE_ERR_NOMEM
 * with *out = NULL. Memory is bounded by the methods' histories, not by
 * the number of windows observed. */
int moeplace_forecaster_create(moeplace_forecaster **out, const moeplace_predict_config *cfg);
/* Accepts NULL. */
void moeplace_forecaster_destroy(moeplace_forecaster *f);

/* One completed window for every layer: counts or proportions [layers][experts].
 * Returns the number of layers whose state changed (>= 0), or
 * MOEPLACE_ERR_ARG (NULL, a proportion that is negative or not finite;
 * nothing is recorded) or a method's MOEPLACE_ERR_NOMEM / _NUMERIC.
 * An all-zero window of a layer counts as uniform load. */
int moeplace_forecaster_observe_counts(moeplace_forecaster *f, const uint64_t *counts);
int moeplace_forecaster_observe(moeplace_forecaster *f, const double *proportions);

/* Forecast of the mean load proportion of every expert over the next
 * `horizon` steps: out[layers][experts], each row non-negative, summing to 1
 * (uniform before any window). MOEPLACE_ERR_ARG for NULL; a method's
 * MOEPLACE_ERR_NUMERIC, after which out is unspecified. */
int moeplace_forecaster_forecast(moeplace_forecaster *f, double *out);

/* Same for one layer only: out[experts]; MOEPLACE_ERR_ARG also for a layer
 * outside [0, layers). */
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

/* Windows observed so far (0 for NULL). */
int64_t moeplace_forecaster_windows(const moeplace_forecaster *f);


/* ---- Backtest --------------------------------------------------------- */

/* Scores forecasting methods on a recorded trace (docs/PREDICT.md, figures
 * as defined in docs/metrics.md). The trace is cut into complete windows of
 * `predict.window` steps (a partial last window is left out). At every
 * forecast origin, one window apart from `min_history` windows on, each
 * method has seen the windows up to the origin only and forecasts, per
 * layer, the mean proportions of the next `predict.horizon` steps; that is
 * scored against what the trace did. The reference "last" is always scored,
 * first. A state detector (predict.detector) splits the figures by the
 * layer's state at the origin. */

/* What one origin saw, for one layer: handed to on_origin. */
typedef struct moeplace_backtest_origin {
  int64_t window;        /* windows observed at this origin (1-based index of its window) */
  int64_t total_windows; /* complete windows of the trace */
  int64_t origin_step;   /* the trace's last step of that window */
  int64_t end_step;      /* the trace's last step of the horizon */
  int layer, experts, methods;
  int state;              /* the layer's moeplace_layer_state at the origin */
  const double *actual;   /* [experts] proportions of the horizon */
  const double *forecast; /* [methods][experts], in the order of the result's method[] */
} moeplace_backtest_origin;

typedef struct moeplace_backtest_config {
  /* Window, horizon, detector, method parameters and seed of the
   * forecasters; layers, experts and method are set by the backtest. */
  moeplace_predict_config predict;
  const char *const *methods; /* [n_methods] scored besides "last" (may be NULL) */
  int n_methods;
  int min_history; /* windows observed before the first origin; 0: predict.detector.k */
  /* Optional: called at every origin for every layer, after every method
   * forecast it; a non-zero return stops the backtest with that status. The
   * pointers are valid during the call only. */
  int (*on_origin)(void *ctx, const moeplace_backtest_origin *origin);
  /* Optional: called after every origin with the origins done and in all. */
  void (*on_progress)(void *ctx, int64_t done, int64_t total);
  void *ctx;
  uint64_t reserved[8]; /* zeroed by moeplace_backtest_config_init() (ABI: moeplace/base.h) */
} moeplace_backtest_config;

/* Defaults: moeplace_predict_config_init() for `predict`, no method but
 * "last", min_history 0 (= the detector's k), no callbacks. */
void moeplace_backtest_config_init(moeplace_backtest_config *cfg);

/* The figures of one method. Index [MOEPLACE_STATE_TRANSIENT] and
 * [MOEPLACE_STATE_STABLE]: origins where the layer was in that state;
 * [MOEPLACE_BACKTEST_ALL]: every origin. */
#define MOEPLACE_BACKTEST_ALL 2
typedef struct moeplace_backtest_method {
  const char *name;         /* the method's name (a static string) */
  double mape[3];           /* percent; NAN when nothing was counted */
  double mae_pp[3];         /* percentage points; NAN when nothing was counted */
  int64_t layer_origins[3]; /* (layer, origin) pairs scored */
  int64_t mape_skipped;     /* entries left out of mape[ALL]: actual < 1e-6 */
  int64_t origins;
  double forecast_us; /* mean time of one forecast of one layer */
  double observe_us;  /* mean time of feeding one window to one layer */
} moeplace_backtest_method;

typedef struct moeplace_backtest_change {
  int layer;
  int state;    /* the new moeplace_layer_state */
  int64_t step; /* the trace's last step of the window that changed it */
} moeplace_backtest_change;

typedef struct moeplace_backtest_result {
  /* The trace, set as soon as it is read (also when the backtest then fails
   * on a parameter, so that a caller can explain; windows < 0 before). */
  int layers, experts;
  int64_t windows;       /* complete windows */
  int partial_steps;     /* steps of a last, partial window left out (0: none) */
  int64_t stride;        /* trace steps between recorded steps (1: every step) */
  int64_t irregular;     /* gaps that differ from the stride */
  /* The run. */
  int64_t origins, first_origin_step;
  int n_methods;
  moeplace_backtest_method *method; /* [n_methods], "last" first */
  int64_t n_changes;
  moeplace_backtest_change *change; /* [n_changes], in step order */
  uint64_t reserved[4]; /* zeroed by the library (ABI: moeplace/base.h) */
} moeplace_backtest_result;

/* Runs the backtest on `trace` (read from its current position to the end;
 * the caller still owns and closes it). Returns MOEPLACE_OK with *res filled
 * (free it with moeplace_backtest_result_free), or an error with the reason
 * in moeplace_last_error(): MOEPLACE_ERR_ARG for a bad parameter, an unknown
 * method, or a trace too short for one origin (with min_history + horizon)
 * or for detector.k / sw_avg_k; the trace's errors (MOEPLACE_ERR_FORMAT,
 * MOEPLACE_ERR_IO); MOEPLACE_ERR_NOMEM; a callback's status. On error *res
 * holds nothing to free (only the trace fields above may be set). */
int moeplace_backtest_run(moeplace_trace *trace, const moeplace_backtest_config *cfg,
                          moeplace_backtest_result *res);

/* Frees what a successful run put in *res and zeroes it; NULL is fine. */
void moeplace_backtest_result_free(moeplace_backtest_result *res);

#ifdef __cplusplus
}
#endif

#endif /* MOEPLACE_PREDICT_H */
