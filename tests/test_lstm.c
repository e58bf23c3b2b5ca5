/* Tests of the LSTM predictor:
 * - the hand-written net against torch.nn.LSTM + nn.Linear on a committed
 *   fixture (tests/data/lstm_fixture.json, scripts/fixtures/make_lstm_fixture.py):
 *   outputs, loss, every parameter gradient and the input gradient;
 * - a central finite-difference check of every parameter gradient;
 * - one Adam step against its closed form;
 * - the predictor contract (valid proportions on degenerate inputs, errors on
 *   bad input), determinism for a seed, and that online training learns a
 *   predictable drift the baseline cannot follow. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/json_file.h"
#include "predict/lstm.h"
#include "predict/lstm_net.h"
#include "tests/test_util.h"

/* Fixture tolerance: the reference is float64 on float32 inputs, the C code
 * computes in float32, so agreement is limited by float32 rounding over a
 * T = 5 recurrence: |c - ref| <= 1e-5 * max(|ref|, 1e-1) (i.e. 1e-5 relative,
 * 1e-6 absolute near zero). Measured worst: about 2% of that. */
#define FIX_REL 1e-5
#define FIX_FLOOR 1e-1

static json_t *fixture;
static double fix_worst; /* largest |c - ref| / tol seen, reported */

static double *get_array(const char *key, size_t expect) {
  json_t *a = json_object_get(fixture, key);
  ck_assert_msg(json_is_array(a), "fixture lacks %s", key);
  ck_assert_uint_eq(json_array_size(a), expect);
  double *v = malloc(expect * sizeof *v);
  for (size_t i = 0; i < expect; i++) v[i] = json_number_value(json_array_get(a, i));
  return v;
}

static int get_int(const char *key) {
  return (int)json_integer_value(json_object_get(fixture, key));
}

static void assert_close(const char *what, size_t i, double got, double ref) {
  const double tol = FIX_REL * fmax(fabs(ref), FIX_FLOOR);
  if (fabs(got - ref) / tol > fix_worst) fix_worst = fabs(got - ref) / tol;
  ck_assert_msg(fabs(got - ref) <= tol, "%s[%zu]: C %.9g vs torch %.9g (tol %.3g)", what, i, got,
                ref, tol);
}

START_TEST(test_fixture_forward_backward) {
  ck_assert_msg(mp_json_read_file(test_src_path("tests/data/lstm_fixture.json"), &fixture) == 0,
                "cannot read the fixture: %s", moeplace_last_error());
  const int B = get_int("batch"), T = get_int("T"), in = get_int("in"), H = get_int("hid");
  const int G = 4 * H;
  mp_lstm_net *net;
  ck_assert_int_eq(mp_lstm_net_create(&net, in, H, B, T, 1), 0);
  double *wih = get_array("weight_ih", (size_t)G * in),
         *whh = get_array("weight_hh", (size_t)G * H);
  double *bih = get_array("bias_ih", G), *bhh = get_array("bias_hh", G);
  double *hw = get_array("head_weight", H), *hb = get_array("head_bias", 1);
  /* PyTorch weight_ih: [4H][in], weight_hh: [4H][H]; ours W: [in+H][4H]. */
  float *W = net->params + net->off_w;
  for (int j = 0; j < G; j++) {
    for (int k = 0; k < in; k++) W[(size_t)k * G + j] = (float)wih[(size_t)j * in + k];
    for (int k = 0; k < H; k++) W[(size_t)(in + k) * G + j] = (float)whh[(size_t)j * H + k];
    net->params[net->off_b + j] = (float)(bih[j] + bhh[j]);
  }
  for (int k = 0; k < H; k++) net->params[net->off_wout + k] = (float)hw[k];
  net->params[net->off_bout] = (float)hb[0];

  const size_t n = (size_t)T * B;
  double *xd = get_array("x", n * in), *td = get_array("target", n), *md = get_array("mask", n);
  float *x = malloc(n * in * sizeof *x), *tg = malloc(n * sizeof *tg), *mk = malloc(n * sizeof *mk);
  float *y = malloc(n * sizeof *y), *dx = malloc(n * in * sizeof *dx);
  for (size_t i = 0; i < n * in; i++) x[i] = (float)xd[i];
  for (size_t i = 0; i < n; i++) {
    tg[i] = (float)td[i];
    mk[i] = (float)md[i];
  }
  ck_assert_int_eq(mp_lstm_net_forward(net, x, B, T, y), 0);
  double *yref = get_array("y", n);
  for (size_t i = 0; i < n; i++) assert_close("y", i, y[i], yref[i]);
  mp_lstm_net_zero_grad(net);
  const double loss = mp_lstm_net_backward(net, tg, mk, dx);
  assert_close("loss", 0, loss, json_number_value(json_object_get(fixture, "loss")));

  double *gwih = get_array("grad_weight_ih", (size_t)G * in);
  double *gwhh = get_array("grad_weight_hh", (size_t)G * H);
  double *gbih = get_array("grad_bias_ih", G), *gbhh = get_array("grad_bias_hh", G);
  double *ghw = get_array("grad_head_weight", H), *ghb = get_array("grad_head_bias", 1);
  double *gx = get_array("grad_x", n * in);
  const float *dW = net->grads + net->off_w;
  for (int j = 0; j < G; j++) {
    for (int k = 0; k < in; k++)
      assert_close("grad_weight_ih", (size_t)j * in + k, dW[(size_t)k * G + j],
                   gwih[(size_t)j * in + k]);
    for (int k = 0; k < H; k++)
      assert_close("grad_weight_hh", (size_t)j * H + k, dW[(size_t)(in + k) * G + j],
                   gwhh[(size_t)j * H + k]);
    /* b = bias_ih + bias_hh: both PyTorch biases get the same gradient. */
    assert_close("grad_bias_ih", (size_t)j, net->grads[net->off_b + j], gbih[j]);
    assert_close("grad_bias_hh", (size_t)j, net->grads[net->off_b + j], gbhh[j]);
  }
  for (int k = 0; k < H; k++)
    assert_close("grad_head_weight", (size_t)k, net->grads[net->off_wout + k], ghw[k]);
  assert_close("grad_head_bias", 0, net->grads[net->off_bout], ghb[0]);
  for (size_t i = 0; i < n * in; i++) assert_close("grad_x", i, dx[i], gx[i]);

  free(wih);
  free(whh);
  free(bih);
  free(bhh);
  free(hw);
  free(hb);
  free(xd);
  free(td);
  free(md);
  free(yref);
  free(gwih);
  free(gwhh);
  free(gbih);
  free(gbhh);
  free(ghw);
  free(ghb);
  free(gx);
  free(x);
  free(tg);
  free(mk);
  free(y);
  free(dx);
  mp_lstm_net_destroy(net);
  json_decref(fixture);
  fprintf(stderr, "lstm fixture: worst |C - torch| = %.3g of the tolerance\n", fix_worst);
}
END_TEST

/* Central differences in float32 with step 1e-2 on a loss of order 1: the
 * truncation error is O(step^2 * f''') ~ 1e-5 and the rounding error
 * ~ 1e-7 / 1e-2 = 1e-5, so |fd - analytic| <= 2e-4 + 2e-3 |analytic|
 * (measured worst: about 2% of that bound). */
START_TEST(test_finite_difference) {
  const int B = 4, T = 6, in = 3, H = 10; /* 10: the 8-lane path and the scalar tail */
  mp_lstm_net *net;
  ck_assert_int_eq(mp_lstm_net_create(&net, in, H, B, T, 42), 0);
  uint64_t rng = 7;
  for (int k = 0; k <= H; k++)
    net->params[net->off_wout + k] = (float)(mp_lstm_rand_uniform(&rng) - 0.5); /* head + bias */
  const size_t n = (size_t)T * B;
  float x[6 * 4 * 3], tg[6 * 4], mk[6 * 4];
  for (size_t i = 0; i < n * in; i++) x[i] = (float)(2.0 * mp_lstm_rand_uniform(&rng) - 1.0);
  for (size_t i = 0; i < n; i++) {
    tg[i] = (float)(mp_lstm_rand_uniform(&rng) - 0.5);
    mk[i] = i < (size_t)B ? 0.0f : 1.0f;
  }
  ck_assert_int_eq(mp_lstm_net_forward(net, x, B, T, NULL), 0);
  mp_lstm_net_zero_grad(net);
  mp_lstm_net_backward(net, tg, mk, NULL);
  const float step = 1e-2f;
  double worst = 0.0;
  for (size_t p = 0; p < net->n_params; p++) {
    const float keep = net->params[p];
    net->params[p] = keep + step;
    mp_lstm_net_forward(net, x, B, T, NULL);
    const double lp = mp_lstm_net_loss(net, tg, mk);
    net->params[p] = keep - step;
    mp_lstm_net_forward(net, x, B, T, NULL);
    const double lm = mp_lstm_net_loss(net, tg, mk);
    net->params[p] = keep;
    const double fd = (lp - lm) / (2.0 * step), an = net->grads[p];
    const double err = fabs(fd - an) / (2e-4 + 2e-3 * fabs(an));
    if (err > worst) worst = err;
    ck_assert_msg(err <= 1.0, "param %zu: analytic %.6g vs finite difference %.6g", p, an, fd);
  }
  fprintf(stderr, "finite differences: worst error = %.3g of the tolerance\n", worst);
  mp_lstm_net_destroy(net);
}
END_TEST

/* Adam's first bias-corrected step moves every parameter by lr * g / (|g| + eps'),
 * i.e. by lr against the sign of its gradient (torch.optim.Adam semantics). */
START_TEST(test_adam_first_step) {
  mp_lstm_net *net;
  ck_assert_int_eq(mp_lstm_net_create(&net, 2, 3, 1, 1, 3), 0);
  float *before = malloc(net->n_params * sizeof *before);
  memcpy(before, net->params, net->n_params * sizeof *before);
  for (size_t p = 0; p < net->n_params; p++)
    net->grads[p] = (p % 3 == 0) ? 0.0f : (p % 2 ? 0.5f : -2.0f);
  const double norm = mp_lstm_net_adam(net, 0.01f, 0.0f);
  ck_assert(norm > 0.0);
  for (size_t p = 0; p < net->n_params; p++) {
    const float g = net->grads[p];
    const double expect = g == 0.0f ? 0.0 : (g > 0 ? -0.01 : 0.01);
    ck_assert_msg(fabs((net->params[p] - before[p]) - expect) < 1e-6, "param %zu moved %g", p,
                  (double)(net->params[p] - before[p]));
  }
  free(before);
  mp_lstm_net_destroy(net);
}
END_TEST

static void assert_proportions(const double *p, int E) {
  double s = 0.0;
  for (int e = 0; e < E; e++) {
    ck_assert_msg(isfinite(p[e]) && p[e] >= 0.0, "forecast[%d] = %g", e, p[e]);
    s += p[e];
  }
  ck_assert_msg(fabs(s - 1.0) < 1e-9, "forecast sums to %.12g", s);
}

/* A small config so contract tests train quickly. */
static mp_lstm_config small_cfg(void) {
  mp_lstm_config c = mp_lstm_config_init();
  c.history = 64;
  c.bptt = 12;
  c.burn_in = 4;
  c.baseline = 10;
  c.default_horizon = 8;
  c.max_batch = 16;
  return c;
}

/* Feeds `windows` windows of gen(w, e) (normalised) and forecasts every 10
 * windows; checks every forecast. Returns the last forecast in out. */
typedef double (*series_fn)(int w, int e, int E);
static void run_series(void *st, int E, int windows, series_fn gen, int horizon, double *out) {
  double *p = malloc((size_t)E * sizeof *p);
  for (int w = 0; w < windows; w++) {
    double s = 0.0;
    for (int e = 0; e < E; e++) s += p[e] = gen(w, e, E);
    for (int e = 0; e < E; e++) p[e] /= s;
    ck_assert_int_eq(mp_lstm_ops.observe(st, p), 0);
    if (w % 10 == 9 || w == windows - 1) {
      ck_assert_int_eq(mp_lstm_ops.forecast(st, horizon, out), 0);
      assert_proportions(out, E);
    }
  }
  free(p);
}

static double gen_const(int w, int e, int E) { return 1.0; }
static double gen_zero_expert(int w, int e, int E) {
  return e == 1 ? 0.0 : 1.0 + 0.5 * sin(0.3 * w + e);
}
static double gen_one_hot(int w, int e, int E) { return e == 0 ? 1.0 : 0.0; }
static double gen_noisy(int w, int e, int E) {
  uint64_t s = (uint64_t)w * 1000003u + (uint64_t)e;
  return 1.0 + e + 3.0 * mp_lstm_rand_uniform(&s);
}

START_TEST(test_contract_degenerate) {
  const mp_lstm_config cfg = small_cfg();
  double out[200];
  void *st;
  /* Before any window: uniform. */
  ck_assert_int_eq(mp_lstm_create_config(&st, 5, 1, &cfg), 0);
  ck_assert_int_eq(mp_lstm_ops.forecast(st, 10, out), 0);
  for (int e = 0; e < 5; e++) ck_assert_double_eq_tol(out[e], 0.2, 1e-15);
  /* Constant uniform series: stays uniform. */
  run_series(st, 5, 150, gen_const, 8, out);
  for (int e = 0; e < 5; e++) ck_assert_double_eq_tol(out[e], 0.2, 1e-3);
  mp_lstm_ops.destroy(st);
  /* One expert: always [1]. */
  ck_assert_int_eq(mp_lstm_create_config(&st, 1, 1, &cfg), 0);
  run_series(st, 1, 150, gen_const, 8, out);
  ck_assert_double_eq_tol(out[0], 1.0, 1e-12);
  mp_lstm_ops.destroy(st);
  /* An expert that never gets tokens keeps a near-zero forecast. */
  ck_assert_int_eq(mp_lstm_create_config(&st, 4, 2, &cfg), 0);
  run_series(st, 4, 150, gen_zero_expert, 8, out);
  ck_assert(out[1] < 1e-2);
  mp_lstm_ops.destroy(st);
  /* All tokens on one expert. */
  ck_assert_int_eq(mp_lstm_create_config(&st, 6, 3, &cfg), 0);
  run_series(st, 6, 150, gen_one_hot, 8, out);
  ck_assert(out[0] > 0.9);
  mp_lstm_ops.destroy(st);
  /* More experts than a batch (chunked forecast, sampled training), and a
   * horizon longer than the ring (training horizon clamped). */
  ck_assert_int_eq(mp_lstm_create_config(&st, 200, 4, &cfg), 0);
  run_series(st, 200, 120, gen_noisy, 500, out);
  mp_lstm_ops.destroy(st);
  /* Default config through the ops table. */
  ck_assert_int_eq(mp_lstm_ops.create(&st, 3, 5), 0);
  ck_assert_str_eq(mp_lstm_ops.name, "lstm");
  run_series(st, 3, 40, gen_noisy, 100, out);
  mp_lstm_ops.destroy(st);
  mp_lstm_ops.destroy(NULL);
}
END_TEST

START_TEST(test_contract_errors) {
  void *st = (void *)1;
  ck_assert_int_lt(mp_lstm_ops.create(&st, 0, 1), 0);
  ck_assert_ptr_null(st);
  ck_assert_int_eq(mp_lstm_ops.create(&st, 3, 1), 0);
  double bad[3] = {0.5, NAN, 0.5}, neg[3] = {0.5, -0.1, 0.6}, zero[3] = {0, 0, 0}, out[3];
  ck_assert_int_eq(mp_lstm_ops.observe(st, bad), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(mp_lstm_ops.observe(st, neg), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(mp_lstm_ops.observe(st, zero), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(mp_lstm_ops.forecast(st, 0, out), MOEPLACE_ERR_ARG);
  mp_lstm_ops.destroy(st);
  mp_lstm_config c = small_cfg();
  c.burn_in = c.bptt;
  ck_assert_int_eq(mp_lstm_create_config(&st, 3, 1, &c), MOEPLACE_ERR_ARG);
}
END_TEST

START_TEST(test_deterministic_seed) {
  const mp_lstm_config cfg = small_cfg();
  void *a, *b;
  double fa[7], fb[7];
  ck_assert_int_eq(mp_lstm_create_config(&a, 7, 99, &cfg), 0);
  ck_assert_int_eq(mp_lstm_create_config(&b, 7, 99, &cfg), 0);
  run_series(a, 7, 200, gen_noisy, 8, fa);
  run_series(b, 7, 200, gen_noisy, 8, fb);
  ck_assert_mem_eq(fa, fb, sizeof fa);
  mp_lstm_ops.destroy(a);
  mp_lstm_ops.destroy(b);
}
END_TEST

/* A slow periodic swing of the load between two experts: the mean of the next
 * h windows is a deterministic function of the phase the last windows show,
 * which a mean of recent windows cannot follow. After online training the
 * LSTM must have non-zero trust and beat that baseline on mape. */
static double gen_swing(int w, int e, int E) {
  const double s = sin(2.0 * M_PI * w / 40.0);
  return e == 0 ? 1.0 + 0.8 * s : (e == 1 ? 1.0 - 0.8 * s : 1.0);
}

START_TEST(test_learns_predictable_swing) {
  const int E = 4, h = 8, N = 900;
  mp_lstm_config cfg = small_cfg();
  cfg.lr = 1e-2f;
  void *st;
  ck_assert_int_eq(mp_lstm_create_config(&st, E, 11, &cfg), 0);
  double p[4], f[4], err_lstm = 0.0, err_base = 0.0;
  int scored = 0;
  for (int w = 0; w < N; w++) {
    double s = 0.0;
    for (int e = 0; e < E; e++) s += p[e] = gen_swing(w, e, E);
    for (int e = 0; e < E; e++) p[e] /= s;
    ck_assert_int_eq(mp_lstm_ops.observe(st, p), 0);
    ck_assert_int_eq(mp_lstm_ops.forecast(st, h, f), 0);
    if (w >= N - 200) { /* score the end: truth = mean of the next h windows */
      for (int e = 0; e < E; e++) {
        double a = 0.0, b = 0.0;
        for (int k = 1; k <= h; k++) {
          double t = 0.0;
          for (int j = 0; j < E; j++) t += gen_swing(w + k, j, E);
          a += gen_swing(w + k, e, E) / t / h;
        }
        for (int k = 0; k < cfg.baseline; k++) {
          double t = 0.0;
          for (int j = 0; j < E; j++) t += gen_swing(w - k, j, E);
          b += gen_swing(w - k, e, E) / t / cfg.baseline;
        }
        err_lstm += fabs(f[e] - a) / a;
        err_base += fabs(b - a) / a;
      }
      scored++;
    }
  }
  const double trust = mp_lstm_trust(st);
  fprintf(stderr, "swing: trust %.3f, mape lstm %.3f%% vs baseline %.3f%%\n", trust,
          100.0 * err_lstm / (scored * E), 100.0 * err_base / (scored * E));
  ck_assert_msg(trust > 0.2, "trust %g", trust);
  ck_assert_msg(err_lstm < 0.7 * err_base, "mape lstm %.3f%% vs baseline %.3f%%",
                100.0 * err_lstm / (scored * E), 100.0 * err_base / (scored * E));
  mp_lstm_ops.destroy(st);
}
END_TEST

/* On the bundled cut of a real trace (data/, first 4000 steps, 4 layers x 16
 * experts), forecasts of the mean proportion over the next 1000 steps (100
 * windows of 10) at every window of the second half that has a full horizon
 * must beat `last` (the proportions of the newest window) on mape, as the
 * issue requires; on the full traces the margin is 2.2-2.9x (docs/PREDICT-LSTM.md),
 * here at least 1.5x is asserted. */
START_TEST(test_real_trace_beats_last) {
  moeplace_trace *tr;
  ck_assert_msg(
      moeplace_trace_open(&tr, test_src_path("data/pycode-L4-E16-top2-4k.csv.gz")) == MOEPLACE_OK,
      "%s", moeplace_last_error());
  const int L = moeplace_trace_layers(tr), E = moeplace_trace_experts(tr), W = 10, h = 100;
  enum { MAXW = 400 };
  double *cnt = calloc((size_t)MAXW * L * E, sizeof *cnt); /* [nw][L][E] */
  uint64_t *tot = malloc((size_t)L * E * sizeof *tot);
  int64_t first;
  int got, nw = 0;
  while (nw < MAXW && moeplace_trace_read_window(tr, W, &first, &got, tot) == 1 && got == W) {
    for (int i = 0; i < L * E; i++) cnt[(size_t)nw * L * E + i] = (double)tot[i];
    nw++;
  }
  moeplace_trace_close(tr);
  ck_assert_int_eq(nw, MAXW);
  double ape_lstm = 0.0, ape_last = 0.0, p[64], f[64], a[64];
  long n = 0;
  ck_assert_int_le(E, 64);
  for (int l = 0; l < L; l++) {
    void *st;
    ck_assert_int_eq(mp_lstm_ops.create(&st, E, 1), 0);
    for (int t = 0; t < nw; t++) {
      double sum = 0.0;
      for (int e = 0; e < E; e++) sum += p[e] = cnt[((size_t)t * L + l) * E + e];
      for (int e = 0; e < E; e++) p[e] /= sum;
      ck_assert_int_eq(mp_lstm_ops.observe(st, p), 0);
      if (t < nw / 2 || t + h >= nw) continue;
      ck_assert_int_eq(mp_lstm_ops.forecast(st, h, f), 0);
      assert_proportions(f, E);
      sum = 0.0;
      for (int e = 0; e < E; e++) {
        a[e] = 0.0;
        for (int k = 1; k <= h; k++) a[e] += cnt[((size_t)(t + k) * L + l) * E + e];
        sum += a[e];
      }
      for (int e = 0; e < E; e++) {
        a[e] /= sum;
        if (a[e] < 1e-6) continue;
        ape_lstm += fabs(f[e] - a[e]) / a[e];
        ape_last += fabs(p[e] - a[e]) / a[e];
        n++;
      }
    }
    mp_lstm_ops.destroy(st);
  }
  free(cnt);
  free(tot);
  ck_assert(n > 0);
  fprintf(stderr, "4k cut, horizon 1000 steps, second half: mape lstm %.2f%%, last %.2f%%\n",
          100.0 * ape_lstm / n, 100.0 * ape_last / n);
  ck_assert_msg(ape_lstm * 1.5 < ape_last, "mape lstm %.2f%% vs last %.2f%%", 100.0 * ape_lstm / n,
                100.0 * ape_last / n);
}
END_TEST

static Suite *lstm_suite(void) {
  Suite *s = suite_create("lstm");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_fixture_forward_backward);
  tcase_add_test(tc, test_finite_difference);
  tcase_add_test(tc, test_adam_first_step);
  tcase_add_test(tc, test_contract_degenerate);
  tcase_add_test(tc, test_contract_errors);
  tcase_add_test(tc, test_deterministic_seed);
  tcase_add_test(tc, test_learns_predictable_swing);
  tcase_add_test(tc, test_real_trace_beats_last);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(lstm_suite()); }
