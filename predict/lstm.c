/* LSTM load predictor. See docs/PREDICT-LSTM.md for the design; in short:
 *
 * - Baseline: b_s = mean proportion over the last `baseline` windows up to s.
 *   On the real traces this alone halves the error of `last` (one window of
 *   10 steps is noisy), and it is what the forecast falls back to.
 * - The net predicts, per expert, the log-ratio r between the mean proportion
 *   of the next h windows and the baseline. Working in log-ratios makes the
 *   loss weigh small and large experts alike, as mape does.
 * - Per time step s the inputs of expert e are (eps = 0.01 / E)
 *     x0 = log((p_s + eps) / (b_s + eps))     this window against the baseline
 *     x1 = log((m_s + eps) / (b_s + eps))     short EMA m against the baseline
 *     x2 = log(E b_s + E eps)                 level (1 = fair share -> 0)
 * - Training: truncated BPTT over `bptt` windows from a zero state, the loss
 *   on every step after `burn_in` whose target has come true (the window
 *   ends h windows before the newest), a few Adam steps per observe, so the
 *   cost per window is bounded whatever the trace length.
 * - Forecast: the same `bptt`-window context ending at the newest window,
 *   p_e = (b_e + eps) exp(a * r_e) - eps, clamped at 0 and renormalised.
 *   a in [0, 1] is an online least-squares shrinkage of the correction,
 *   a = <r_hat, r> / <r_hat, r_hat> (EMAs over freshly matured windows), so a
 *   net that has learnt nothing useful fades out instead of adding noise. */
#include "predict/lstm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "predict/lstm_net.h"

enum { LSTM_IN = 3 };
#define LSTM_MAX_LOG_RATIO 3.0 /* |r| cap: a factor of e^3 ~ 20 around the baseline */
#define LSTM_TRUST_DECAY 0.98  /* EMA decay of the shrinkage statistics */

typedef struct lstm_state {
  mp_lstm_config cfg;
  int E;
  double eps;
  mp_lstm_net *net;
  uint64_t rng;
  /* Ring buffers over windows, slot = window index % history: [N][E]. */
  float *p, *base, *ema;
  long count;           /* windows observed so far */
  int horizon;          /* training horizon (windows) */
  double trust_num, trust_den; /* EMAs of <r_hat, r> and <r_hat, r_hat> */
  /* Scratch: x [T][B][IN], target [T][B], mask [T][B], y [T][B], expert ids [E] */
  float *x, *target, *mask, *y;
  int *ids;       /* [E] experts of a training step (shuffled) */
  int *seq_ids;   /* [E] 0 .. E-1, forecast chunks */
} lstm_state;

mp_lstm_config mp_lstm_config_default(void) {
  mp_lstm_config c = {
      .hidden = 16,
      .bptt = 32,
      .burn_in = 8,
      .history = 256,
      .baseline = 50,
      .max_batch = 64,
      .train_steps = 2,
      .default_horizon = 100,
      .lr = 3e-3f,
      .clip = 1.0f,
      .ema = 0.2,
  };
  return c;
}

static void lstm_destroy(void *state) {
  lstm_state *s = state;
  if (!s) return;
  mp_lstm_net_destroy(s->net);
  free(s->p);
  free(s->base);
  free(s->ema);
  free(s->x);
  free(s->target);
  free(s->mask);
  free(s->y);
  free(s->ids);
  free(s->seq_ids);
  free(s);
}

int mp_lstm_create_config(void **state, int experts, uint64_t seed, const mp_lstm_config *cfg) {
  *state = NULL;
  if (experts <= 0) return mp_fail(MOEPLACE_ERR_ARG, "lstm: experts must be > 0, got %d", experts);
  if (cfg->hidden <= 0 || cfg->bptt <= 0 || cfg->burn_in < 0 || cfg->burn_in >= cfg->bptt ||
      cfg->baseline <= 0 || cfg->history < cfg->bptt + 1 || cfg->history < cfg->baseline ||
      cfg->max_batch <= 0 || cfg->train_steps < 0 || cfg->default_horizon <= 0 ||
      !(cfg->lr > 0.0f) || !(cfg->ema > 0.0 && cfg->ema <= 1.0))
    return mp_fail(MOEPLACE_ERR_ARG,
                   "lstm: invalid config (hidden %d, bptt %d, burn_in %d, history %d, "
                   "baseline %d, max_batch %d, train_steps %d, lr %g, ema %g)",
                   cfg->hidden, cfg->bptt, cfg->burn_in, cfg->history, cfg->baseline,
                   cfg->max_batch, cfg->train_steps, (double)cfg->lr, cfg->ema);
  lstm_state *s = calloc(1, sizeof *s);
  MP_CHECK_ALLOC(s);
  s->cfg = *cfg;
  s->E = experts;
  s->eps = 0.01 / experts;
  s->rng = seed ^ 0x6c73746d70726564ULL; /* "lstmpred" */
  s->horizon = cfg->default_horizon;
  const int B = experts < cfg->max_batch ? experts : cfg->max_batch;
  const size_t NE = (size_t)cfg->history * experts, TB = (size_t)cfg->bptt * B;
  int rc = mp_lstm_net_create(&s->net, LSTM_IN, cfg->hidden, B, cfg->bptt, seed);
  if (rc != MOEPLACE_OK) {
    lstm_destroy(s);
    return rc;
  }
  s->p = malloc(NE * sizeof(float));
  s->base = malloc(NE * sizeof(float));
  s->ema = malloc(NE * sizeof(float));
  s->x = malloc(TB * LSTM_IN * sizeof(float));
  s->target = malloc(TB * sizeof(float));
  s->mask = malloc(TB * sizeof(float));
  s->y = malloc(TB * sizeof(float));
  s->ids = malloc((size_t)experts * sizeof(int));
  s->seq_ids = malloc((size_t)experts * sizeof(int));
  if (!s->p || !s->base || !s->ema || !s->x || !s->target || !s->mask || !s->y || !s->ids ||
      !s->seq_ids) {
    lstm_destroy(s);
    return mp_fail(MOEPLACE_ERR_NOMEM, "lstm: out of memory for %d experts", experts);
  }
  for (int e = 0; e < experts; e++) s->ids[e] = s->seq_ids[e] = e;
  *state = s;
  return MOEPLACE_OK;
}

static int lstm_create(void **state, int experts, uint64_t seed) {
  const mp_lstm_config cfg = mp_lstm_config_default();
  return mp_lstm_create_config(state, experts, seed, &cfg);
}

static size_t slot(const lstm_state *s, long w) { return (size_t)(w % s->cfg.history) * s->E; }

/* Fills x[t][b][IN] for windows w0 .. w0+T-1 and experts ids[0..B). */
static void build_inputs(lstm_state *s, long w0, int T, const int *ids, int B) {
  const double eps = s->eps, E = s->E;
  for (int t = 0; t < T; t++) {
    const size_t o = slot(s, w0 + t);
    for (int b = 0; b < B; b++) {
      const int e = ids[b];
      const double bs = s->base[o + e] + eps;
      float *x = s->x + ((size_t)t * B + b) * LSTM_IN;
      x[0] = (float)log((s->p[o + e] + eps) / bs);
      x[1] = (float)log((s->ema[o + e] + eps) / bs);
      x[2] = (float)log(E * bs);
    }
  }
}

/* Training horizon that fits the ring: a sample needs bptt windows of
 * context plus h windows of target. */
static int train_horizon(const lstm_state *s) {
  const int hmax = s->cfg.history - s->cfg.bptt;
  return s->horizon < hmax ? s->horizon : hmax;
}

/* One Adam step on the bptt-window ending at window `end` (its targets, the
 * mean of the next h windows, must all be observed). Returns the loss; when
 * `fresh`, also updates the shrinkage statistics on the last step, measured
 * before the update. */
static double train_step(lstm_state *s, long end, int fresh) {
  const int T = s->cfg.bptt, h = train_horizon(s), E = s->E;
  int B = s->net->max_b;
  /* Experts of this step: all of them, or a seeded random subset. */
  if (B < E) {
    for (int i = 0; i < B; i++) {
      const int j = i + (int)(mp_lstm_rand_u64(&s->rng) % (uint64_t)(E - i));
      const int tmp = s->ids[i];
      s->ids[i] = s->ids[j];
      s->ids[j] = tmp;
    }
  } else {
    B = E;
  }
  const long w0 = end - T + 1;
  build_inputs(s, w0, T, s->ids, B);
  const double eps = s->eps;
  /* Target of step t: the mean of p over windows w0+t+1 .. w0+t+h, kept as
   * a sliding sum in double (O(h + T) per expert instead of O(h T)). */
  for (int b = 0; b < B; b++) {
    const int e = s->ids[b];
    double acc = 0.0;
    for (int k = 1; k <= h; k++) acc += s->p[slot(s, w0 + k) + e];
    for (int t = 0; t < T; t++) {
      const long w = w0 + t;
      if (t > 0) acc += (double)s->p[slot(s, w + h) + e] - s->p[slot(s, w) + e];
      const double mean = acc > 0.0 ? acc / h : 0.0;
      const double r = log((mean + eps) / (s->base[slot(s, w) + e] + eps));
      s->target[(size_t)t * B + b] = (float)r;
      s->mask[(size_t)t * B + b] = t >= s->cfg.burn_in ? 1.0f : 0.0f;
    }
  }
  mp_lstm_net_forward(s->net, s->x, B, T, NULL);
  if (fresh) {
    double num = 0.0, den = 0.0;
    for (int b = 0; b < B; b++) {
      const size_t i = (size_t)(T - 1) * B + b;
      double rh = s->net->y[i];
      if (rh > LSTM_MAX_LOG_RATIO) rh = LSTM_MAX_LOG_RATIO;
      if (rh < -LSTM_MAX_LOG_RATIO) rh = -LSTM_MAX_LOG_RATIO;
      num += rh * s->target[i];
      den += rh * rh;
    }
    s->trust_num = LSTM_TRUST_DECAY * s->trust_num + (1.0 - LSTM_TRUST_DECAY) * num / B;
    s->trust_den = LSTM_TRUST_DECAY * s->trust_den + (1.0 - LSTM_TRUST_DECAY) * den / B;
  }
  mp_lstm_net_zero_grad(s->net);
  const double loss = mp_lstm_net_backward(s->net, s->target, s->mask, NULL);
  mp_lstm_net_adam(s->net, s->cfg.lr, s->cfg.clip);
  return loss;
}

/* Window ends usable for training: the bptt context must lie in the ring
 * (and after window 0), and all h target windows must be observed.
 * newest_trainable() is -1 while no window qualifies. */
static long oldest_trainable(const lstm_state *s) {
  const long oldest = s->count - s->cfg.history + s->cfg.bptt - 1;
  return oldest > s->cfg.bptt - 1 ? oldest : s->cfg.bptt - 1;
}

static long newest_trainable(const lstm_state *s) {
  const long newest = s->count - 1 - train_horizon(s);
  return newest >= oldest_trainable(s) ? newest : -1;
}

int mp_lstm_train_now(void *state, int steps, double *loss) {
  lstm_state *s = state;
  const long hi = newest_trainable(s);
  if (hi < 0)
    return mp_fail(MOEPLACE_ERR_STATE, "lstm: not enough history to train (%ld windows)",
                   s->count);
  const long lo = oldest_trainable(s);
  double l = 0.0;
  for (int i = 0; i < steps; i++) {
    /* First step: the newest matured window (fresh data, feeds the
     * shrinkage); then replay of a random window of the ring, so the net
     * does not chase only the latest stretch. */
    const long end = i == 0 ? hi : lo + (long)(mp_lstm_rand_u64(&s->rng) % (uint64_t)(hi - lo + 1));
    l = train_step(s, end, i == 0);
  }
  if (loss) *loss = l;
  return MOEPLACE_OK;
}

static int lstm_observe(void *state, const double *prop) {
  lstm_state *s = state;
  const int E = s->E;
  double sum = 0.0;
  for (int e = 0; e < E; e++) {
    if (!isfinite(prop[e]) || prop[e] < 0.0)
      return mp_fail(MOEPLACE_ERR_ARG, "lstm: proportion of expert %d is %g", e, prop[e]);
    sum += prop[e];
  }
  if (!(sum > 0.0)) return mp_fail(MOEPLACE_ERR_ARG, "lstm: proportions sum to %g", sum);
  const long w = s->count;
  const size_t o = slot(s, w);
  for (int e = 0; e < E; e++) s->p[o + e] = (float)(prop[e] / sum);
  /* Baseline over the last min(count+1, baseline) windows, EMA. */
  const long k = w + 1 < s->cfg.baseline ? w + 1 : s->cfg.baseline;
  for (int e = 0; e < E; e++) {
    double acc = 0.0;
    for (long j = 0; j < k; j++) acc += s->p[slot(s, w - j) + e];
    s->base[o + e] = (float)(acc / k);
    const double prev = w > 0 ? s->ema[slot(s, w - 1) + e] : s->p[o + e];
    s->ema[o + e] = (float)(prev + s->cfg.ema * (s->p[o + e] - prev));
  }
  s->count++;
  if (s->cfg.train_steps > 0 && newest_trainable(s) >= 0)
    return mp_lstm_train_now(s, s->cfg.train_steps, NULL);
  return MOEPLACE_OK;
}

double mp_lstm_trust(const void *state) {
  const lstm_state *s = state;
  if (!(s->trust_den > 0.0)) return 0.0;
  const double a = s->trust_num / s->trust_den;
  return a < 0.0 ? 0.0 : (a > 1.0 ? 1.0 : a);
}

static int lstm_forecast(void *state, int horizon, double *out) {
  lstm_state *s = state;
  const int E = s->E;
  if (horizon <= 0) return mp_fail(MOEPLACE_ERR_ARG, "lstm: horizon must be > 0, got %d", horizon);
  s->horizon = horizon; /* later training targets this horizon */
  if (s->count == 0) {
    for (int e = 0; e < E; e++) out[e] = 1.0 / E;
    return MOEPLACE_OK;
  }
  const long last = s->count - 1;
  const size_t o = slot(s, last);
  const double a = mp_lstm_trust(s);
  const int T = s->count < s->cfg.bptt ? (int)s->count : s->cfg.bptt;
  const int Bmax = s->net->max_b;
  for (int e0 = 0; e0 < E; e0 += Bmax) {
    const int B = E - e0 < Bmax ? E - e0 : Bmax;
    /* r_hat of expert e0+b is net->y[T-1][b]; skipped while a == 0. */
    const float *r = NULL;
    if (a > 0.0) {
      build_inputs(s, last - T + 1, T, s->seq_ids + e0, B);
      int rc = mp_lstm_net_forward(s->net, s->x, B, T, NULL);
      if (rc != MOEPLACE_OK) return rc;
      r = s->net->y + (size_t)(T - 1) * B;
    }
    for (int b = 0; b < B; b++) {
      double rb = r ? r[b] : 0.0;
      if (!isfinite(rb)) rb = 0.0;
      if (rb > LSTM_MAX_LOG_RATIO) rb = LSTM_MAX_LOG_RATIO;
      if (rb < -LSTM_MAX_LOG_RATIO) rb = -LSTM_MAX_LOG_RATIO;
      const double v = (s->base[o + e0 + b] + s->eps) * exp(a * rb) - s->eps;
      out[e0 + b] = v > 0.0 ? v : 0.0;
    }
  }
  double sum = 0.0;
  for (int e = 0; e < E; e++) sum += out[e];
  if (!(sum > 0.0) || !isfinite(sum)) {
    /* Every correction pushed below zero: fall back to the baseline. */
    sum = 0.0;
    for (int e = 0; e < E; e++) sum += out[e] = s->base[o + e];
  }
  if (!(sum > 0.0)) return mp_fail(MOEPLACE_ERR_NUMERIC, "lstm: forecast sums to %g", sum);
  for (int e = 0; e < E; e++) out[e] /= sum;
  return MOEPLACE_OK;
}

const mp_predictor_ops mp_lstm_ops = {
    .name = "lstm",
    .create = lstm_create,
    .observe = lstm_observe,
    .forecast = lstm_forecast,
    .destroy = lstm_destroy,
};
