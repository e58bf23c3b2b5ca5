/* LSTM load predictor (method "lstm"): one small LSTM per layer, shared by
 * the layer's experts (each expert is one sequence of the batch), trained
 * online with Adam on the history whose targets have come true, and used as a
 * calibrated correction to a robust baseline (the mean of recent windows).
 * Design and figures: docs/PREDICT-LSTM.md. */
#ifndef MOEPLACE_PREDICT_LSTM_H
#define MOEPLACE_PREDICT_LSTM_H

#include <stdint.h>

#include "predict/predictor.h"

extern const mp_predictor_ops mp_lstm_ops;

/* Tunables; mp_lstm_ops.create uses mp_lstm_config_init(). */
typedef struct mp_lstm_config {
  int hidden;          /* hidden size H (16) */
  int bptt;            /* truncated-BPTT window T, also the forecast context (32) */
  int burn_in;         /* first steps of a window left out of the loss (8) */
  int history;         /* ring buffer of windows kept (256) */
  int baseline;        /* windows averaged by the baseline (50) */
  int max_batch;       /* experts per training step / forecast chunk (64) */
  int train_steps;     /* Adam steps per observe (2) */
  int default_horizon; /* training horizon before the first forecast (100) */
  float lr;            /* Adam learning rate (3e-3) */
  float clip;          /* global gradient-norm clip (1.0) */
  double ema;          /* smoothing of the short-term input feature (0.2) */
  double slow_ema;     /* smoothing of the slow input feature (0.01) */
} mp_lstm_config;

mp_lstm_config mp_lstm_config_init(void);
/* Like mp_lstm_ops.create with explicit tunables (tests, benchmarks). */
int mp_lstm_create_config(void **state, int experts, uint64_t seed, const mp_lstm_config *cfg);
/* Runs `steps` training steps now (benchmarks); returns the last loss in
 * *loss, or an error when not enough history has matured. */
int mp_lstm_train_now(void *state, int steps, double *loss);
/* The current shrinkage of the LSTM correction in [0, 1] (diagnostics). */
double mp_lstm_trust(const void *state);

#endif
