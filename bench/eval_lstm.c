/* Accuracy check of the LSTM predictor on a real trace, for development and
 * docs/PREDICT-LSTM.md (the project's moeplace-predict tool does the full
 * evaluation with every method and the state detector).
 *
 *   bench/eval_lstm TRACE [HORIZON_STEPS=1000] [WINDOW=10] [SEED=1]
 *
 * Every layer gets its own predictor, fed the window proportions in order.
 * At every origin t (one window apart) of the second half of the trace (the
 * stable part of the real traces) whose horizon fits in the trace, it scores
 * the forecast of the mean proportion over windows t+1 .. t+h against the
 * truth, beside the `last` reference (the proportions of window t) and the
 * LSTM's own baseline (mean of the last 50 windows). mape and mae_pp as in
 * docs/metrics.md (experts with truth < 1e-6 are skipped by mape). */
#include <math.h>
#include <moeplace.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/timer.h"
#include "predict/lstm.h"

typedef struct score {
  double ape, ae;
  long n_ape, n_ae;
} score;

static void add(score *s, const double *p, const double *a, int E) {
  for (int e = 0; e < E; e++) {
    const double d = fabs(p[e] - a[e]);
    s->ae += d;
    s->n_ae++;
    if (a[e] >= 1e-6) {
      s->ape += d / a[e];
      s->n_ape++;
    }
  }
}

int main(int argc, char **argv) {
  if (argc < 2 || argc > 5) {
    fprintf(stderr, "usage: %s TRACE [HORIZON_STEPS=1000] [WINDOW=10] [SEED=1]\n", argv[0]);
    return 2;
  }
  const int H = argc > 2 ? atoi(argv[2]) : 1000, W = argc > 3 ? atoi(argv[3]) : 10;
  const uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
  if (H <= 0 || W <= 0 || H % W) {
    fprintf(stderr, "%s: horizon %d must be a positive multiple of window %d\n", argv[0], H, W);
    return 2;
  }
  const int h = H / W;
  moeplace_trace *tr;
  if (moeplace_trace_open(&tr, argv[1]) != MOEPLACE_OK) {
    fprintf(stderr, "%s: %s\n", argv[0], moeplace_last_error());
    return 2;
  }
  const int L = moeplace_trace_layers(tr), E = moeplace_trace_experts(tr);
  size_t cap = 1024, nw = 0;
  double *cnt = malloc(cap * L * E * sizeof *cnt); /* [nw][L][E] window counts */
  uint64_t *tot = malloc((size_t)L * E * sizeof *tot);
  int64_t first;
  int got, rc;
  while ((rc = moeplace_trace_read_window(tr, W, &first, &got, tot)) == 1) {
    if (got < W) break; /* drop a partial last window */
    if (nw == cap) cnt = realloc(cnt, (cap *= 2) * L * E * sizeof *cnt);
    for (int i = 0; i < L * E; i++) cnt[nw * L * E + i] = (double)tot[i];
    nw++;
  }
  if (rc < 0) {
    fprintf(stderr, "%s: %s\n", argv[0], moeplace_last_error());
    return 2;
  }
  moeplace_trace_close(tr);
  score s_lstm = {0}, s_last = {0}, s_base = {0};
  double *p = malloc(E * sizeof *p), *f = malloc(E * sizeof *f), *a = malloc(E * sizeof *a);
  double *b = malloc(E * sizeof *b), t_fc = 0.0, t_obs = 0.0, trust = 0.0;
  long n_fc = 0;
  for (int l = 0; l < L; l++) {
    void *st;
    if (mp_lstm_ops.create(&st, E, seed + (uint64_t)l) != MOEPLACE_OK) return 1;
    for (size_t t = 0; t < nw; t++) {
      double s = 0.0;
      for (int e = 0; e < E; e++) s += p[e] = cnt[(t * L + l) * E + e];
      for (int e = 0; e < E; e++) p[e] = s > 0 ? p[e] / s : 1.0 / E;
      double t0 = mp_now_s();
      if (mp_lstm_ops.observe(st, p) != MOEPLACE_OK) return 1;
      t_obs += mp_now_s() - t0;
      if (t < nw / 2 || t + h >= nw) continue;
      t0 = mp_now_s();
      if (mp_lstm_ops.forecast(st, h, f) != MOEPLACE_OK) return 1;
      t_fc += mp_now_s() - t0;
      n_fc++;
      s = 0.0;
      for (int e = 0; e < E; e++) {
        a[e] = 0.0;
        for (int k = 1; k <= h; k++) a[e] += cnt[((t + k) * L + l) * E + e];
        s += a[e];
      }
      for (int e = 0; e < E; e++) a[e] /= s;
      const int K = 50;
      s = 0.0;
      for (int e = 0; e < E; e++) {
        b[e] = 0.0;
        for (int k = 0; k < K; k++) b[e] += cnt[((t - k) * L + l) * E + e];
        s += b[e];
      }
      for (int e = 0; e < E; e++) b[e] /= s;
      add(&s_lstm, f, a, E);
      add(&s_last, p, a, E);
      add(&s_base, b, a, E);
    }
    trust += mp_lstm_trust(st) / L;
    mp_lstm_ops.destroy(st);
  }
  printf("trace %s: %d layers x %d experts, %zu windows of %d steps, horizon %d steps "
         "(%d windows), origins in the second half: %ld\n",
         argv[1], L, E, nw, W, H, h, n_fc / (L > 0 ? L : 1));
  printf("%-22s %10s %10s\n", "predictor", "mape_%", "mae_pp");
  printf("%-22s %10.3f %10.4f\n", "lstm", 100 * s_lstm.ape / s_lstm.n_ape, 100 * s_lstm.ae / s_lstm.n_ae);
  printf("%-22s %10.3f %10.4f\n", "last", 100 * s_last.ape / s_last.n_ape, 100 * s_last.ae / s_last.n_ae);
  printf("%-22s %10.3f %10.4f\n", "mean of last 50 win.", 100 * s_base.ape / s_base.n_ape,
         100 * s_base.ae / s_base.n_ae);
  printf("mean final trust %.3f; mean observe %.1f us, forecast %.1f us per layer\n", trust,
         1e6 * t_obs / ((double)nw * L), 1e6 * t_fc / (n_fc > 0 ? n_fc : 1));
  free(cnt); free(tot); free(p); free(f); free(a); free(b);
  return 0;
}
