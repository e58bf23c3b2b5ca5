/* Accuracy check of the LSTM predictor on a real trace, for development and
 * docs/PREDICT-LSTM.md (the project's moeplace-predict tool does the full
 * evaluation with every method and the state detector).
 *
 *   bench/eval_lstm TRACE [HORIZON_STEPS=1000] [WINDOW=10] [SEED=1] [KEY=VALUE ...]
 *
 * KEY=VALUE overrides a field of mp_lstm_config (hidden, bptt, burn_in,
 * history, baseline, max_batch, train_steps, lr, ema, slow_ema), for tuning.
 *
 * Every layer gets its own predictor, fed the window proportions in order,
 * and forecasts at every origin t (one window apart, from t = bptt) whose
 * horizon fits in the trace. Each forecast of the mean proportion over
 * windows t+1 .. t+h is scored against the truth, beside the `last`
 * reference (the proportions of window t) and the LSTM's own baseline (mean
 * of the last `baseline` windows), separately for origins in the second half
 * of the trace (the stable part of the real traces: the figure that counts)
 * and in the first half (mostly transient). mape and mae_pp as in
 * docs/metrics.md (experts with truth < 1e-6 are left out of mape). */
#include <math.h>
#include <moeplace.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
  if (argc < 2) {
    fprintf(stderr, "usage: %s TRACE [HORIZON_STEPS=1000] [WINDOW=10] [SEED=1] [KEY=VALUE ...]\n",
            argv[0]);
    return 2;
  }
  const int H = argc > 2 ? atoi(argv[2]) : 1000, W = argc > 3 ? atoi(argv[3]) : 10;
  const uint64_t seed = argc > 4 ? strtoull(argv[4], NULL, 10) : 1;
  mp_lstm_config cfg = mp_lstm_config_default();
  for (int i = 5; i < argc; i++) {
    char key[32];
    double v;
    if (sscanf(argv[i], "%31[a-z_]=%lf", key, &v) != 2) {
      fprintf(stderr, "%s: bad override '%s' (KEY=VALUE)\n", argv[0], argv[i]);
      return 2;
    }
#define SET(field, type)      \
  if (!strcmp(key, #field)) { \
    cfg.field = (type)v;      \
    continue;                 \
  }
    SET(hidden, int)
    SET(bptt, int) SET(burn_in, int) SET(history, int) SET(baseline, int) SET(max_batch, int)
        SET(train_steps, int) SET(lr, float) SET(ema, double) SET(slow_ema, double)
#undef SET
            fprintf(stderr, "%s: unknown config key '%s'\n", argv[0], key);
    return 2;
  }
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
  /* [0]: second half (the stable part, the figure that matters), [1]: first
   * half (mostly transient; shown for information). */
  score s_lstm[2] = {{0}}, s_last[2] = {{0}}, s_base[2] = {{0}};
  double *p = malloc(E * sizeof *p), *f = malloc(E * sizeof *f), *a = malloc(E * sizeof *a);
  double *b = malloc(E * sizeof *b), t_fc = 0.0, t_obs = 0.0, trust = 0.0;
  long n_fc = 0;
  for (int l = 0; l < L; l++) {
    void *st;
    if (mp_lstm_create_config(&st, E, seed + (uint64_t)l, &cfg) != MOEPLACE_OK) {
      fprintf(stderr, "%s: %s\n", argv[0], moeplace_last_error());
      return 1;
    }
    for (size_t t = 0; t < nw; t++) {
      double s = 0.0;
      for (int e = 0; e < E; e++) s += p[e] = cnt[(t * L + l) * E + e];
      for (int e = 0; e < E; e++) p[e] = s > 0 ? p[e] / s : 1.0 / E;
      double t0 = mp_now_s();
      if (mp_lstm_ops.observe(st, p) != MOEPLACE_OK) return 1;
      t_obs += mp_now_s() - t0;
      if (t + h >= nw || (size_t)t < (size_t)cfg.bptt) continue;
      const int part = t < nw / 2;
      t0 = mp_now_s();
      if (mp_lstm_ops.forecast(st, h, f) != MOEPLACE_OK) return 1;
      t_fc += mp_now_s() - t0;
      n_fc += !part;
      s = 0.0;
      for (int e = 0; e < E; e++) {
        a[e] = 0.0;
        for (int k = 1; k <= h; k++) a[e] += cnt[((t + k) * L + l) * E + e];
        s += a[e];
      }
      for (int e = 0; e < E; e++) a[e] /= s;
      const size_t K = t + 1 < (size_t)cfg.baseline ? t + 1 : (size_t)cfg.baseline;
      s = 0.0;
      for (int e = 0; e < E; e++) {
        b[e] = 0.0;
        for (size_t k = 0; k < K; k++) b[e] += cnt[((t - k) * L + l) * E + e];
        s += b[e];
      }
      for (int e = 0; e < E; e++) b[e] /= s;
      add(&s_lstm[part], f, a, E);
      add(&s_last[part], p, a, E);
      add(&s_base[part], b, a, E);
    }
    trust += mp_lstm_trust(st) / L;
    mp_lstm_ops.destroy(st);
  }
  printf(
      "trace %s: %d layers x %d experts, %zu windows of %d steps, horizon %d steps "
      "(%d windows), origins in the second half: %ld\n",
      argv[1], L, E, nw, W, H, h, n_fc / (L > 0 ? L : 1));
  printf("%-24s %10s %10s %14s %14s\n", "predictor", "mape_%", "mae_pp", "1st-half mape",
         "1st-half mae");
  const char *names[3] = {"lstm", "last", "baseline (mean, K win.)"};
  const score *sc[3] = {s_lstm, s_last, s_base};
  for (int i = 0; i < 3; i++)
    printf("%-24s %10.3f %10.4f %14.3f %14.4f\n", names[i], 100 * sc[i][0].ape / sc[i][0].n_ape,
           100 * sc[i][0].ae / sc[i][0].n_ae, 100 * sc[i][1].ape / sc[i][1].n_ape,
           100 * sc[i][1].ae / sc[i][1].n_ae);
  printf("mean final trust %.3f; mean observe %.1f us, forecast %.1f us per layer\n", trust,
         1e6 * t_obs / ((double)nw * L), 1e6 * t_fc / (n_fc > 0 ? n_fc : 1));
  free(cnt);
  free(tot);
  free(p);
  free(f);
  free(a);
  free(b);
  return 0;
}
