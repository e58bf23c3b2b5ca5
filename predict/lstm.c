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
 *     x3 = log((l_s + eps) / (b_s + eps))     slow EMA l (~100 windows) against
 *                                             the baseline: lets the net lean
 *                                             towards a longer mean when that
 *                                             predicts better
 * - Training: truncated BPTT over `bptt` windows from a zero state, the loss
 *   on every step after `burn_in` whose target has come true (the window
 *   ends h windows before the newest), a few Adam steps per observe, so the
 *   cost per window is bounded whatever the trace length.
 * - Forecast: the same `bptt`-window context ending at the newest window,
 *   p_e = (b_e + eps) exp(a * r_e) - eps, clamped at 0 and renormalised.
 * - a in [0, 1] is an online least-squares shrinkage of the correction,
 *   a = <r_hat, r> / <r_hat, r_hat> over EMAs of out-of-sample pairs: after
 *   every observe the net's prediction for the newest window is logged, and
 *   h windows later, when its target has come true, it is scored. So a net
 *   that has learnt nothing useful (or overfits) fades out instead of adding
 *   noise, and until the first logged prediction matures the forecast is
 *   the baseline. */
#include "predict/lstm.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "predict/lstm_net.h"

enum { LSTM_IN = 4 };
#define LSTM_MAX_LOG_RATIO 3.0 /* |r| cap: a factor of e^3 ~ 20 around the baseline */
#define LSTM_TRUST_DECAY 0.98  /* EMA decay of the shrinkage statistics */

typedef struct lstm_state {
  mp_lstm_config cfg;
  int E;
  double eps;
  mp_lstm_net *net;
  uint64_t rng;
  /* Ring buffers over windows, slot = window index % history: [N][E]:
   * proportions, baseline, short EMA, slow EMA. */
  float *p, *base, *ema, *slow;
  long count;                  /* windows observed so far */
  int horizon;                 /* training horizon (windows) */
  double trust_num, trust_den; /* EMAs of <r_hat, r> and <r_hat, r_hat> */
  double *base_sum;            /* [E] running sum of p over the baseline windows */
  /* Log of out-of-sample predictions, slot = window % history:
   * log_r [N][Bm] r_hat of experts log_ids [N][Bm], made with horizon
   * log_h[N] at window log_w[N] (-1: empty). */
  float *log_r;
  int *log_ids, *log_h, *log_n;
  long *log_w;
  /* Scratch: x [T][B][IN], target [T][B], mask [T][B], y [T][B], expert ids [E] */
  float *x, *target, *mask, *y;
  int *ids;     /* [E] experts of a training step (shuffled) */
  int *seq_ids; /* [E] 0 .. E-1, forecast chunks */
} lstm_state;

mp_lstm_config mp_lstm_config_init(void) {
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
      .slow_ema = 0.01,
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
  free(s->slow);
  free(s->x);
  free(s->target);
  free(s->mask);
  free(s->y);
  free(s->ids);
  free(s->seq_ids);
  free(s->base_sum);
  free(s->log_r);
  free(s->log_ids);
  free(s->log_h);
  free(s->log_n);
  free(s->log_w);
  free(s);
}

int mp_lstm_create_config(void **state, int experts, uint64_t seed, const mp_lstm_config *cfg) {
  *state = NULL;
  if (experts <= 0) return mp_fail(MOEPLACE_ERR_ARG, "lstm: experts must be > 0, got %d", experts);
  if (cfg->hidden <= 0 || cfg->bptt <= 0 || cfg->burn_in < 0 || cfg->burn_in >= cfg->bptt ||
      cfg->baseline <= 0 || cfg->history < cfg->bptt + 1 || cfg->history <= cfg->baseline ||
      cfg->max_batch <= 0 || cfg->train_steps < 0 || cfg->default_horizon <= 0 ||
      !(cfg->lr > 0.0f) || !(cfg->ema > 0.0 && cfg->ema <= 1.0) ||
      !(cfg->slow_ema > 0.0 && cfg->slow_ema <= 1.0))
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
  s->slow = malloc(NE * sizeof(float));
  s->x = malloc(TB * LSTM_IN * sizeof(float));
  s->target = malloc(TB * sizeof(float));
  s->mask = malloc(TB * sizeof(float));
  s->y = malloc(TB * sizeof(float));
  s->ids = malloc((size_t)experts * sizeof(int));
  s->seq_ids = malloc((size_t)experts * sizeof(int));
  s->base_sum = calloc((size_t)experts, sizeof(double));
  const size_t NB = (size_t)cfg->history * B;
  s->log_r = malloc(NB * sizeof(float));
  s->log_ids = malloc(NB * sizeof(int));
  s->log_h = malloc((size_t)cfg->history * sizeof(int));
  s->log_n = calloc((size_t)cfg->history, sizeof(int));
  s->log_w = malloc((size_t)cfg->history * sizeof(long));
  if (!s->p || !s->base || !s->ema || !s->slow || !s->x || !s->target || !s->mask || !s->y ||
      !s->ids || !s->seq_ids || !s->base_sum || !s->log_r || !s->log_ids || !s->log_h ||
      !s->log_n || !s->log_w) {
    lstm_destroy(s);
    return mp_fail(MOEPLACE_ERR_NOMEM, "lstm: out of memory for %d experts", experts);
  }
  for (int e = 0; e < experts; e++) s->ids[e] = s->seq_ids[e] = e;
  for (int i = 0; i < cfg->history; i++) s->log_w[i] = -1;
  *state = s;
  return MOEPLACE_OK;
}

static int lstm_create(void **state, int experts, uint64_t seed) {
  const mp_lstm_config cfg = mp_lstm_config_init();
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
      x[3] = (float)log((s->slow[o + e] + eps) / bs);
    }
  }
}

/* Training horizon that fits the ring: a sample needs bptt windows of
 * context plus h windows of target. */
static int train_horizon(const lstm_state *s) {
  const int hmax = s->cfg.history - s->cfg.bptt;
  return s->horizon < hmax ? s->horizon : hmax;
}

/* Picks the experts of a step into s->ids[0..B): all of them, or a seeded
 * random subset of net->max_b. Returns B. */
static int pick_experts(lstm_state *s) {
  const int E = s->E, B = s->net->max_b;
  if (B >= E) return E;
  for (int i = 0; i < B; i++) {
    const int j = i + (int)(mp_lstm_rand_u64(&s->rng) % (uint64_t)(E - i));
    const int tmp = s->ids[i];
    s->ids[i] = s->ids[j];
    s->ids[j] = tmp;
  }
  return B;
}

static double clamp_r(double r) {
  if (!isfinite(r)) return 0.0;
  return r > LSTM_MAX_LOG_RATIO ? LSTM_MAX_LOG_RATIO
                                : (r < -LSTM_MAX_LOG_RATIO ? -LSTM_MAX_LOG_RATIO : r);
}

/* One Adam step on the bptt-window ending at window `end` (its targets, the
 * mean of the next h windows, must all be observed). Returns the loss. */
static double train_step(lstm_state *s, long end) {
  const int T = s->cfg.bptt, h = train_horizon(s);
  const int B = pick_experts(s);
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
    return mp_fail(MOEPLACE_ERR_STATE, "lstm: not enough history to train (%ld windows)", s->count);
  const long lo = oldest_trainable(s);
  double l = 0.0;
  for (int i = 0; i < steps; i++) {
    /* First step: the newest matured window (fresh data); then replay of a
     * random window of the ring, so the net does not chase only the latest
     * stretch. */
    const long end = i == 0 ? hi : lo + (long)(mp_lstm_rand_u64(&s->rng) % (uint64_t)(hi - lo + 1));
    l = train_step(s, end);
  }
  if (loss) *loss = l;
  return MOEPLACE_OK;
}

/* Logs the net's raw prediction for the newest window (what a forecast made
 * now would use), for experts picked like a training step. */
static void log_prediction(lstm_state *s) {
  const long last = s->count - 1;
  const int T = s->count < s->cfg.bptt ? (int)s->count : s->cfg.bptt;
  const int B = pick_experts(s);
  build_inputs(s, last - T + 1, T, s->ids, B);
  mp_lstm_net_forward(s->net, s->x, B, T, NULL);
  const size_t ls = (size_t)(last % s->cfg.history);
  for (int b = 0; b < B; b++) {
    s->log_r[ls * s->net->max_b + b] = (float)clamp_r(s->net->y[(size_t)(T - 1) * B + b]);
    s->log_ids[ls * s->net->max_b + b] = s->ids[b];
  }
  s->log_n[ls] = B;
  s->log_h[ls] = train_horizon(s);
  s->log_w[ls] = last;
}

/* Scores every logged prediction whose target window has just come true
 * (made at window w0 with horizon h, newest window = w0 + h) and folds the
 * pairs into the shrinkage EMAs. Horizons change rarely, so only the entry
 * of the current training horizon is looked at. */
static void score_matured(lstm_state *s) {
  const int h = train_horizon(s);
  const long w0 = s->count - 1 - h;
  if (w0 < 0) return;
  const size_t ls = (size_t)(w0 % s->cfg.history);
  if (s->log_w[ls] != w0 || s->log_h[ls] != h) return;
  const int n = s->log_n[ls];
  double num = 0.0, den = 0.0;
  for (int b = 0; b < n; b++) {
    const int e = s->log_ids[ls * s->net->max_b + b];
    double acc = 0.0;
    for (int k = 1; k <= h; k++) acc += s->p[slot(s, w0 + k) + e];
    const double r = log((acc / h + s->eps) / (s->base[slot(s, w0) + e] + s->eps));
    const double rh = s->log_r[ls * s->net->max_b + b];
    num += rh * r;
    den += rh * rh;
  }
  s->log_w[ls] = -1;
  if (n == 0) return;
  s->trust_num = LSTM_TRUST_DECAY * s->trust_num + (1.0 - LSTM_TRUST_DECAY) * num / n;
  s->trust_den = LSTM_TRUST_DECAY * s->trust_den + (1.0 - LSTM_TRUST_DECAY) * den / n;
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
  const long w = s->count, K = s->cfg.baseline;
  const size_t o = slot(s, w);
  for (int e = 0; e < E; e++) s->p[o + e] = (float)(prop[e] / sum);
  /* Baseline: running sum over the last min(count+1, K) windows (history > K,
   * so window w-K is still in the ring); the short and slow EMAs. */
  const long k = w + 1 < K ? w + 1 : K;
  for (int e = 0; e < E; e++) {
    s->base_sum[e] += s->p[o + e];
    if (w >= K) s->base_sum[e] -= s->p[slot(s, w - K) + e];
    const double b = s->base_sum[e] / k;
    s->base[o + e] = (float)(b > 0.0 ? b : 0.0);
    const double prev = w > 0 ? s->ema[slot(s, w - 1) + e] : s->p[o + e];
    s->ema[o + e] = (float)(prev + s->cfg.ema * (s->p[o + e] - prev));
    const double sprev = w > 0 ? s->slow[slot(s, w - 1) + e] : s->p[o + e];
    s->slow[o + e] = (float)(sprev + s->cfg.slow_ema * (s->p[o + e] - sprev));
  }
  s->count++;
  score_matured(s);
  if (s->cfg.train_steps > 0 && newest_trainable(s) >= 0) {
    int rc = mp_lstm_train_now(s, s->cfg.train_steps, NULL);
    if (rc != MOEPLACE_OK) return rc;
  }
  if (s->net->adam_t > 0) log_prediction(s);
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
      const double rb = r ? clamp_r(r[b]) : 0.0;
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
