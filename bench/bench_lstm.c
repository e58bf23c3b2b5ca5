/* Benchmark of the LSTM predictor (docs/BENCHMARKS.md, "LSTM predictor").
 *
 *   bench/bench_lstm [LAYERS=64] [EXPERTS=256] [BATCH=64] [REPEATS=5]
 *
 * Prints, for LAYERS independent layers (one net each, default sizes of
 * mp_lstm_config_init: input 4, hidden 16, BPTT window 32):
 *   - train_step: one training step of every layer's net (forward over the
 *     window, masked MSE, backward, Adam) with BATCH sequences each — the
 *     predictor trains on min(experts, 64) experts per step; BATCH = EXPERTS
 *     times the full batch;
 *   - forecast: one forecast of every layer for EXPERTS experts, after the
 *     predictors have history and a trained net in use (trust > 0);
 *   - observe: one observe of every layer (baseline update, 2 training steps
 *     of min(EXPERTS, 64) experts, one logged prediction).
 * Timings: minimum and median of REPEATS runs after one warm-up. scripts/bench_lstm.sh runs the
 * same-size PyTorch training step beside it and prints the ratio. */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timer.h"
#include "predict/lstm.h"
#include "predict/lstm_net.h"

static int cmp_double(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Sorts v and returns its median; v[0] is then the minimum. On a shared
 * machine the minimum is the least disturbed run, the median the typical. */
static double median(double *v, int n) {
  qsort(v, (size_t)n, sizeof *v, cmp_double);
  return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* Synthetic load: a slow swing between experts plus noise, so the net has
 * something to learn and its correction is in use when forecasts are timed. */
static void window_props(int w, int l, int E, double *p) {
  double s = 0.0;
  for (int e = 0; e < E; e++) {
    uint64_t r = ((uint64_t)w * 131 + (uint64_t)l) * 1000003u + (uint64_t)e;
    p[e] = 1.0 + 0.6 * sin(2.0 * M_PI * w / 40.0 + e) + 0.3 * mp_lstm_rand_uniform(&r);
    s += p[e];
  }
  for (int e = 0; e < E; e++) p[e] /= s;
}

int main(int argc, char **argv) {
  const int L = argc > 1 ? atoi(argv[1]) : 64, E = argc > 2 ? atoi(argv[2]) : 256;
  const int BATCH = argc > 3 ? atoi(argv[3]) : 64, R = argc > 4 ? atoi(argv[4]) : 5;
  if (L <= 0 || E <= 0 || BATCH <= 0 || R <= 0) {
    fprintf(stderr, "usage: %s [LAYERS=64] [EXPERTS=256] [BATCH=64] [REPEATS=5]\n", argv[0]);
    return 2;
  }
  const mp_lstm_config cfg = mp_lstm_config_init();
  const int T = cfg.bptt, H = cfg.hidden, IN = 4; /* the predictor's input features */
  printf(
      "lstm bench: %d layers, %d experts, input %d, hidden %d, T %d, training batch %d, "
      "OpenBLAS threads %d\n",
      L, E, IN, H, T, BATCH, openblas_get_num_threads());

  /* 1. Raw training step: L nets, random inputs and targets. */
  mp_lstm_net **nets = calloc((size_t)L, sizeof *nets);
  const size_t n = (size_t)T * BATCH;
  float *x = malloc(n * IN * sizeof *x), *tg = malloc(n * sizeof *tg), *mk = malloc(n * sizeof *mk);
  uint64_t rng = 1;
  for (size_t i = 0; i < n * IN; i++) x[i] = (float)(2.0 * mp_lstm_rand_uniform(&rng) - 1.0);
  for (size_t i = 0; i < n; i++) {
    tg[i] = (float)(mp_lstm_rand_uniform(&rng) - 0.5);
    mk[i] = i < (size_t)cfg.burn_in * BATCH ? 0.0f : 1.0f;
  }
  for (int l = 0; l < L; l++)
    if (mp_lstm_net_create(&nets[l], IN, H, BATCH, T, (uint64_t)l) != 0) return 1;
  double *ts = malloc((size_t)R * sizeof *ts), loss = 0.0; /* loss: keeps the work live */
  for (int r = 0; r < R + 1; r++) {                        /* first run warms up */
    const double t0 = mp_now_s();
    for (int l = 0; l < L; l++) {
      mp_lstm_net_forward(nets[l], x, BATCH, T, NULL);
      mp_lstm_net_zero_grad(nets[l]);
      loss += mp_lstm_net_backward(nets[l], tg, mk, NULL);
      mp_lstm_net_adam(nets[l], cfg.lr, cfg.clip);
    }
    if (r > 0) ts[r - 1] = mp_now_s() - t0;
  }
  double t_med = median(ts, R);
  printf("train_step (fwd+bwd+adam, %d layers x batch %d x T %d): min %.3f ms, median %.3f ms  "
         "(%.1f us per layer)  [mean loss %.3g]\n",
         L, BATCH, T, 1e3 * ts[0], 1e3 * t_med, 1e6 * ts[0] / L, loss / ((R + 1.0) * L));
  for (int l = 0; l < L; l++) mp_lstm_net_destroy(nets[l]);
  free(nets);

  /* 2. Predictor with the default config: a short horizon (the cost of a
   * forecast does not depend on it) lets the logged predictions mature
   * quickly, so the net's correction is in use (trust > 0) when forecasts
   * are timed. */
  void **st = calloc((size_t)L, sizeof *st);
  double *p = malloc((size_t)E * sizeof *p), *f = malloc((size_t)E * sizeof *f);
  const int horizon = 20, windows = 100;
  for (int l = 0; l < L; l++) {
    if (mp_lstm_create_config(&st[l], E, (uint64_t)l, &cfg) != 0) return 1;
    mp_lstm_ops.forecast(st[l], horizon, f); /* sets the training horizon */
    for (int w = 0; w < windows; w++) {
      window_props(w, l, E, p);
      mp_lstm_ops.observe(st[l], p);
    }
  }
  double trust = 0.0;
  for (int l = 0; l < L; l++) trust += mp_lstm_trust(st[l]) / L;
  for (int r = 0; r < R + 1; r++) {
    const double t0 = mp_now_s();
    for (int l = 0; l < L; l++) mp_lstm_ops.forecast(st[l], horizon, f);
    if (r > 0) ts[r - 1] = mp_now_s() - t0;
  }
  t_med = median(ts, R);
  printf("forecast (%d layers x %d experts): min %.3f ms, median %.3f ms  (%.1f us per layer)  "
         "[mean trust %.2f: %s]\n",
         L, E, 1e3 * ts[0], 1e3 * t_med, 1e6 * ts[0] / L, trust,
         trust > 0 ? "net forward included" : "baseline only");
  /* observe: baseline update, the default training steps, prediction log. */
  for (int r = 0; r < R + 1; r++) {
    const double t0 = mp_now_s();
    for (int l = 0; l < L; l++) {
      window_props(windows + r, l, E, p);
      mp_lstm_ops.observe(st[l], p);
    }
    if (r > 0) ts[r - 1] = mp_now_s() - t0;
  }
  t_med = median(ts, R);
  printf("observe (%d layers, %d training steps + 1 logged prediction each): min %.3f ms, "
         "median %.3f ms  (%.1f us per layer)\n",
         L, cfg.train_steps, 1e3 * ts[0], 1e3 * t_med, 1e6 * ts[0] / L);
  for (int l = 0; l < L; l++) mp_lstm_ops.destroy(st[l]);
  free(st);
  free(p);
  free(f);
  free(x);
  free(tg);
  free(mk);
  free(ts);
  return 0;
}
