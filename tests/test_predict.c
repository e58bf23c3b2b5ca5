/* Unit tests of predict/: proportion contracts of every method (including
 * degenerate input), sw_avg exactness, state detector hysteresis, ARIMA
 * against statsmodels (tests/data/arima_fixture.json, made by
 * scripts/fixtures/make_arima_fixture.py), the auto blend, API errors. */
#include <check.h>
#include <jansson.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/json_file.h"
#include "common/metrics.h"
#include "predict/arima_model.h"
#include "predict/auto.h"
#include "predict/proportions.h"
#include "predict/registry.h"
#include "tests/test_util.h"

static uint64_t rng = 12345;
static double urand(void) {
  rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
  return (double)(rng >> 11) * 0x1.0p-53;
}
static double nrand(void) {
  double u = urand(), v = urand();
  return sqrt(-2.0 * log(u + 1e-300)) * cos(2 * M_PI * v);
}

/* ---- proportions ---------------------------------------------------------- */

START_TEST(test_normalize) {
  double p[4] = {1, -2, NAN, 3};
  mp_normalize_proportions(p, 4);
  ck_assert(mp_is_proportion_vector(p, 4, 1e-12));
  ck_assert_double_eq_tol(p[0], 0.25, 1e-15);
  ck_assert_double_eq_tol(p[3], 0.75, 1e-15);
  double z[3] = {0, 0, 0};
  mp_normalize_proportions(z, 3);
  for (int i = 0; i < 3; i++) ck_assert_double_eq_tol(z[i], 1.0 / 3, 1e-15);
  uint64_t c[2] = {0, 0};
  mp_proportions_from_counts(c, 2, z);
  ck_assert_double_eq_tol(z[0], 0.5, 1e-15);
}
END_TEST

/* ---- every method keeps the contract ------------------------------------ */

/* Feeds `windows` windows made by gen() to one layer of every registered
 * method and checks each forecast is a valid proportion vector. */
typedef void (*gen_fn)(int t, int E, double *p);

static void gen_random(int t, int E, double *p) {
  (void)t;
  for (int e = 0; e < E; e++) p[e] = urand() * (e + 1);
  mp_normalize_proportions(p, E);
}
static void gen_constant(int t, int E, double *p) {
  (void)t;
  for (int e = 0; e < E; e++) p[e] = (e + 1.0) / (E * (E + 1) / 2.0);
}
static void gen_zero_expert(int t, int E, double *p) { // one expert never gets a token
  gen_random(t, E, p);
  p[0] = 0;
  mp_normalize_proportions(p, E);
}
static void gen_trend(int t, int E, double *p) { // one expert grows fast: forecasts may go negative
  for (int e = 0; e < E; e++) p[e] = 1.0;
  p[0] = 1.0 + 0.5 * t;
  mp_normalize_proportions(p, E);
}

static void check_contract(int E, int windows, gen_fn gen) {
  for (int i = 0; i < mp_predict_count(); i++) {
    const mp_predictor_ops *ops = mp_predict_get(i);
    mp_predict_params prm;
    mp_predict_params_default(&prm);
    prm.arima.refit_every = 5;
    void *st = NULL;
    ck_assert_int_eq(mp_predict_create(ops, &prm, E, 1, &st), 0);
    double p[64], out[64];
    // before any window: a valid (uniform) forecast
    ck_assert_int_eq(ops->forecast(st, 3, out), 0);
    ck_assert_msg(mp_is_proportion_vector(out, E, 1e-9), "%s: empty history", ops->name);
    for (int t = 0; t < windows; t++) {
      gen(t, E, p);
      ck_assert_int_eq(ops->observe(st, p), 0);
      if (t % 7 == 0 || t == windows - 1) {
        for (int h = 1; h <= 40; h *= 4) {
          ck_assert_int_eq(ops->forecast(st, h, out), 0);
          ck_assert_msg(mp_is_proportion_vector(out, E, 1e-9), "%s: E=%d t=%d h=%d", ops->name, E,
                        t, h);
        }
      }
    }
    ops->destroy(st);
  }
}

START_TEST(test_contract_random) { check_contract(8, 60, gen_random); }
END_TEST
START_TEST(test_contract_single_expert) { check_contract(1, 40, gen_random); }
END_TEST
START_TEST(test_contract_constant) { check_contract(5, 60, gen_constant); }
END_TEST
START_TEST(test_contract_zero_expert) { check_contract(6, 60, gen_zero_expert); }
END_TEST
START_TEST(test_contract_trend) { check_contract(4, 60, gen_trend); }
END_TEST

START_TEST(test_forecaster_all_zero_window) {
  moeplace_predict_config cfg;
  moeplace_predict_config_init(&cfg, 2, 3);
  cfg.horizon = 50;
  for (int m = 0; m < moeplace_predict_method_count(); m++) {
    cfg.method = moeplace_predict_method_name(m);
    moeplace_forecaster *f;
    ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), 0);
    uint64_t counts[6] = {0, 0, 0, 5, 0, 1};
    for (int t = 0; t < 30; t++) ck_assert_int_ge(moeplace_forecaster_observe_counts(f, counts), 0);
    double out[6];
    ck_assert_int_eq(moeplace_forecaster_forecast(f, out), 0);
    ck_assert(mp_is_proportion_vector(out, 3, 1e-9));
    ck_assert(mp_is_proportion_vector(out + 3, 3, 1e-9));
    ck_assert_double_eq_tol(out[0], 1.0 / 3, 1e-9); // all-zero windows count as uniform
    ck_assert_int_eq(moeplace_forecaster_windows(f), 30);
    moeplace_forecaster_destroy(f);
  }
}
END_TEST

/* ---- sw_avg ------------------------------------------------------------- */

START_TEST(test_sw_avg_exact) {
  moeplace_predict_config cfg;
  moeplace_predict_config_init(&cfg, 1, 2);
  cfg.method = "sw_avg";
  cfg.sw_avg_k = 3;
  cfg.horizon = 20;
  moeplace_forecaster *f;
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), 0);
  const double w[5][2] = {{0.1, 0.9}, {0.2, 0.8}, {0.3, 0.7}, {0.5, 0.5}, {0.9, 0.1}};
  double out[2];
  ck_assert_int_eq(moeplace_forecaster_observe(f, w[0]), 0);
  ck_assert_int_eq(moeplace_forecaster_forecast(f, out), 0);
  ck_assert_double_eq_tol(out[0], 0.1, 1e-15); // fewer than k windows: all of them
  ck_assert_int_eq(moeplace_forecaster_observe(f, w[1]), 0);
  ck_assert_int_eq(moeplace_forecaster_forecast(f, out), 0);
  ck_assert_double_eq_tol(out[0], 0.15, 1e-15);
  for (int t = 2; t < 5; t++) ck_assert_int_ge(moeplace_forecaster_observe(f, w[t]), 0);
  ck_assert_int_eq(moeplace_forecaster_forecast(f, out), 0);
  ck_assert_double_eq_tol(out[0], (0.3 + 0.5 + 0.9) / 3, 1e-15);
  ck_assert_double_eq_tol(out[1], (0.7 + 0.5 + 0.1) / 3, 1e-15);
  moeplace_forecaster_destroy(f);

  // last = the last window
  cfg.method = "last";
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), 0);
  for (int t = 0; t < 5; t++) ck_assert_int_ge(moeplace_forecaster_observe(f, w[t]), 0);
  ck_assert_int_eq(moeplace_forecaster_forecast(f, out), 0);
  ck_assert_double_eq_tol(out[0], 0.9, 1e-15);
  moeplace_forecaster_destroy(f);
}
END_TEST

/* ---- state detector ------------------------------------------------------- */

START_TEST(test_detector_hysteresis) {
  moeplace_detector_config cfg = {
      .k = 5, .var_threshold = 1e-3, .range_threshold = 0.1, .hysteresis = 2.0};
  moeplace_state_detector *d;
  ck_assert_int_eq(moeplace_state_detector_create(&d, 2, 2, &cfg), 0);
  // layer 0 alternates wildly for 10 windows, then is calm; layer 1 is calm throughout.
  double p[4];
  unsigned char ch[2];
  int stable_at = -1;
  for (int t = 0; t < 30; t++) {
    double a = t < 10 ? (t % 2 ? 0.1 : 0.9) : 0.5;
    p[0] = a, p[1] = 1 - a, p[2] = 0.3, p[3] = 0.7;
    int n = moeplace_state_detector_observe(d, p, ch);
    ck_assert_int_ge(n, 0);
    if (ch[0]) {
      ck_assert_int_eq(stable_at, -1); // exactly one change
      stable_at = t;
    }
    if (ch[1]) ck_assert_int_eq(t, 2 * cfg.k - 2); // k windows to fill + k under: window index 8
  }
  // the wild windows leave the k-window span at t = 14; then k more windows under
  ck_assert_int_eq(stable_at, 14 + cfg.k - 1);
  ck_assert_int_eq(moeplace_state_detector_state(d, 0), MOEPLACE_STATE_STABLE);
  // a blip above the threshold but within the hysteresis band: stays stable
  p[0] = 0.5 + 0.07, p[1] = 1 - p[0]; // range 0.07 < 0.1; var small
  ck_assert_int_eq(moeplace_state_detector_observe(d, p, ch), 0);
  p[0] = 0.5 - 0.05, p[1] = 1 - p[0]; // range 0.12: > threshold, < 2 x threshold
  ck_assert_int_eq(moeplace_state_detector_observe(d, p, ch), 0);
  ck_assert_int_eq(moeplace_state_detector_state(d, 0), MOEPLACE_STATE_STABLE);
  double v, r;
  ck_assert_int_eq(moeplace_state_detector_figures(d, 0, &v, &r), 0);
  ck_assert_double_eq_tol(r, 0.12, 1e-12);
  ck_assert(v > cfg.var_threshold && v < 2 * cfg.var_threshold);
  // a jump beyond 2 x threshold: transient at once
  p[0] = 0.9, p[1] = 0.1;
  ck_assert_int_eq(moeplace_state_detector_observe(d, p, ch), 1);
  ck_assert_int_eq(ch[0], 1);
  ck_assert_int_eq(moeplace_state_detector_state(d, 0), MOEPLACE_STATE_TRANSIENT);
  ck_assert_int_eq(moeplace_state_detector_state(d, 1), MOEPLACE_STATE_STABLE);
  ck_assert_int_lt(moeplace_state_detector_state(d, 2), 0);
  moeplace_state_detector_destroy(d);
  cfg.hysteresis = 0.5;
  ck_assert_int_eq(moeplace_state_detector_create(&d, 1, 1, &cfg), MOEPLACE_ERR_ARG);
  ck_assert_ptr_null(d);
  moeplace_state_detector_destroy(NULL);
}
END_TEST

/* The forecaster reports its detector's state changes. */
START_TEST(test_forecaster_states) {
  moeplace_predict_config cfg;
  moeplace_predict_config_init(&cfg, 2, 2);
  cfg.method = "sw_avg";
  cfg.detector = (moeplace_detector_config){
      .k = 3, .var_threshold = 1e-3, .range_threshold = 0.1, .hysteresis = 1.5};
  moeplace_forecaster *f;
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), 0);
  ck_assert_int_eq(moeplace_forecaster_state(f, 0), MOEPLACE_STATE_TRANSIENT);
  int64_t w = 0;
  ck_assert_int_eq(moeplace_forecaster_last_change(f, 0, &w), MOEPLACE_OK);
  ck_assert_int_eq(w, -1); // never changed
  // layer 0 calm, layer 1 alternating: only layer 0 settles, after 2k - 1 windows
  for (int t = 1; t <= 8; t++) {
    double p[4] = {0.4, 0.6, t % 2 ? 0.9 : 0.1, t % 2 ? 0.1 : 0.9};
    int n = moeplace_forecaster_observe(f, p);
    ck_assert_int_eq(n, t == 2 * cfg.detector.k - 1 ? 1 : 0);
  }
  ck_assert_int_eq(moeplace_forecaster_state(f, 0), MOEPLACE_STATE_STABLE);
  ck_assert_int_eq(moeplace_forecaster_last_change(f, 0, &w), MOEPLACE_OK);
  ck_assert_int_eq(w, 2 * cfg.detector.k - 1);
  ck_assert_int_eq(moeplace_forecaster_state(f, 1), MOEPLACE_STATE_TRANSIENT);
  ck_assert_int_eq(moeplace_forecaster_last_change(f, 1, &w), MOEPLACE_OK);
  ck_assert_int_eq(w, -1);
  // Bad arguments are an error with a reason, not "never" (-1).
  w = 7;
  ck_assert_int_eq(moeplace_forecaster_last_change(f, 2, &w), MOEPLACE_ERR_ARG);
  ck_assert_str_eq(moeplace_last_error(), "forecaster: layer 2 out of range [0, 2)");
  ck_assert_int_eq(moeplace_forecaster_last_change(f, -1, &w), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(moeplace_forecaster_last_change(NULL, 0, &w), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(moeplace_forecaster_last_change(f, 0, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "NULL"));
  ck_assert_int_eq(w, 7);
  ck_assert_int_lt(moeplace_forecaster_state(f, 2), 0);
  ck_assert_str_eq(moeplace_layer_state_name(MOEPLACE_STATE_STABLE), "stable");
  moeplace_forecaster_destroy(f);
}
END_TEST

/* ---- ARIMA against statsmodels ------------------------------------------- */

/* Tolerances. Both sides maximise the same exact likelihood; they differ in
 * optimiser (Nelder-Mead here, L-BFGS there) and stopping rules, so the
 * log-likelihoods must agree closely (the maximum is flat, so parameters
 * agree less tightly than the likelihood does). */
#define TOL_LOGLIK 0.002 /* absolute */
#define TOL_COEF 2e-3    /* absolute, phi, theta */
#define TOL_MEAN_SD 2e-3 /* |mean difference| / sd(y) */
#define TOL_SIGMA2 2e-3  /* relative */
#define TOL_FC_SD 2e-3   /* |forecast difference| / sd(y) */
#define TOL_KPSS 1e-6    /* relative */

static double dget(json_t *o, const char *k) { return json_real_value(json_object_get(o, k)); }

START_TEST(test_arima_vs_statsmodels) {
  json_t *doc;
  ck_assert_int_eq(mp_json_read_file(test_src_path("tests/data/arima_fixture.json"), &doc), 0);
  const int H = (int)json_integer_value(json_object_get(doc, "horizon"));
  json_t *series = json_object_get(doc, "series");
  ck_assert_int_ge((int)json_array_size(series), 4);
  const mp_arima_opts opts = {1e-9, 20000, 2};
  size_t si;
  json_t *s;
  int compared = 0, better = 0;
  double max_ll = 0, max_coef = 0, max_fc = 0;
  json_array_foreach(series, si, s) {
    const char *name = json_string_value(json_object_get(s, "name"));
    json_t *ya = json_object_get(s, "y");
    const int n = (int)json_array_size(ya);
    double *y = malloc(n * sizeof *y), mean = 0, sd = 0;
    for (int t = 0; t < n; t++) mean += (y[t] = json_real_value(json_array_get(ya, t))) / n;
    for (int t = 0; t < n; t++) sd += (y[t] - mean) * (y[t] - mean) / n;
    sd = sqrt(sd);
    double kp = mp_arima_kpss(y, n), kp_ref = dget(s, "kpss");
    ck_assert_msg(fabs(kp - kp_ref) <= TOL_KPSS * fabs(kp_ref), "%s: kpss %.9g vs %.9g", name, kp,
                  kp_ref);
    size_t fi;
    json_t *fit;
    json_array_foreach(json_object_get(s, "fits"), fi, fit) {
      json_t *ord = json_object_get(fit, "order");
      int p = (int)json_integer_value(json_array_get(ord, 0)),
          d = (int)json_integer_value(json_array_get(ord, 1)),
          q = (int)json_integer_value(json_array_get(ord, 2));
      mp_arima_fit f;
      ck_assert_int_eq(mp_arima_fit_order(y, n, p, d, q, &opts, &f), 0);
      const double ll_ref = dget(fit, "loglik");
      // Never a worse maximum than statsmodels. A clearly better one means
      // L-BFGS stopped early on a flat likelihood (it happens even with tight
      // settings, for over-parameterised orders): then the reference
      // coefficients are not the optimum and are not compared.
      ck_assert_msg(f.loglik >= ll_ref - TOL_LOGLIK, "%s (%d,%d,%d): loglik %.6f vs %.6f", name, p,
                    d, q, f.loglik, ll_ref);
      max_ll = fmax(max_ll, fabs(f.loglik - ll_ref));
      if (f.loglik > ll_ref + TOL_LOGLIK) {
        better++;
        continue;
      }
      ck_assert_msg(fabs(f.aic - dget(fit, "aic")) <= 2 * TOL_LOGLIK, "%s (%d,%d,%d): aic", name, p,
                    d, q);
      ck_assert_msg(fabs(f.mean - dget(fit, "mean")) <= TOL_MEAN_SD * sd,
                    "%s (%d,%d,%d): mean %.6g vs %.6g", name, p, d, q, f.mean, dget(fit, "mean"));
      for (int i = 0; i < p; i++) {
        double ref = json_real_value(json_array_get(json_object_get(fit, "phi"), i));
        max_coef = fmax(max_coef, fabs(f.phi[i] - ref));
        ck_assert_msg(fabs(f.phi[i] - ref) <= TOL_COEF,
                      "%s (%d,%d,%d): phi%d %.5f vs %.5f (loglik %.6f vs %.6f; phi %.6f %.6f theta "
                      "%.6f mean %.6f)",
                      name, p, d, q, i + 1, f.phi[i], ref, f.loglik, ll_ref, f.phi[0], f.phi[1],
                      f.theta[0], f.mean);
      }
      for (int i = 0; i < q; i++) {
        double ref = json_real_value(json_array_get(json_object_get(fit, "theta"), i));
        max_coef = fmax(max_coef, fabs(f.theta[i] - ref));
        ck_assert_msg(fabs(f.theta[i] - ref) <= TOL_COEF, "%s (%d,%d,%d): theta%d %.5f vs %.5f",
                      name, p, d, q, i + 1, f.theta[i], ref);
      }
      ck_assert_msg(fabs(f.sigma2 / dget(fit, "sigma2") - 1) <= TOL_SIGMA2, "%s (%d,%d,%d): sigma2",
                    name, p, d, q);
      double fc[64];
      ck_assert_int_eq(mp_arima_forecast(&f, y, n, H, fc), 0);
      for (int j = 0; j < H; j++) {
        double ref = json_real_value(json_array_get(json_object_get(fit, "forecast"), j));
        max_fc = fmax(max_fc, fabs(fc[j] - ref) / sd);
        ck_assert_msg(fabs(fc[j] - ref) <= TOL_FC_SD * sd,
                      "%s (%d,%d,%d): forecast %d %.6g vs %.6g", name, p, d, q, j + 1, fc[j], ref);
      }
      compared++;
    }
    free(y);
  }
  ck_assert_int_ge(compared, 30);
  ck_assert_int_le(better, 2);
  printf("arima vs statsmodels: %d fits compared, %d with a better maximum here; largest "
         "differences: loglik %.2g, coefficient %.2g, forecast %.2g sd\n",
         compared, better, max_ll, max_coef, max_fc);
  json_decref(doc);
}
END_TEST

/* The mean over a horizon is walked without a path buffer (a replay
 * interval of 1e9 steps asked for 800 MB there) and ends in one product once
 * the state has decayed (the same interval took minutes of walking): it must
 * be the path's mean, for d = 0 and d = 1 models, at 97 windows and at
 * 2^30, where the path has long settled on its limit. */
START_TEST(test_arima_forecast_mean) {
  enum { H = 20000 };
  static double path[H];
  double rw[200], ar[200], lvl = 0, prev = 0;
  for (int t = 0; t < 200; t++) { // a random walk and an AR(1) of phi 0.5
    lvl += nrand();
    rw[t] = lvl;
    ar[t] = prev = 0.5 * prev + nrand();
  }
  const mp_arima_opts opts = {1e-4, 200, 0};
  const double *series[2] = {rw, ar};
  for (int k = 0; k < 2; k++) {
    mp_arima_fit f;
    ck_assert_int_eq(mp_arima_select(series[k], 200, 2, 1, 1, &opts, &f), 0);
    ck_assert_int_eq(mp_arima_forecast(&f, series[k], 200, H, path), 0);
    double sum = 0, mean = -1;
    for (int j = 0; j < 97; j++) sum += path[j];
    ck_assert_int_eq(mp_arima_forecast_mean(&f, series[k], 200, 97, &mean), 0);
    ck_assert_double_eq_tol(mean, sum / 97, 1e-12 * (fabs(mean) + 1));
    const int big = 1 << 30;
    ck_assert_int_eq(mp_arima_forecast_mean(&f, series[k], 200, big, &mean), 0);
    for (int j = 97; j < H; j++) sum += path[j];
    const double want = (sum + (double)(big - H) * path[H - 1]) / big;
    ck_assert_double_eq_tol(mean, want, 1e-9 * (fabs(want) + 1));
  }
}
END_TEST

START_TEST(test_arima_degenerate) {
  double y[30];
  for (int t = 0; t < 30; t++) y[t] = 0.25;
  const mp_arima_opts opts = {1e-4, 200, 0};
  mp_arima_fit f;
  ck_assert_int_eq(mp_arima_select(y, 30, 2, 1, 1, &opts, &f), 0);
  double fc[5];
  ck_assert_int_eq(mp_arima_forecast(&f, y, 30, 5, fc), 0);
  for (int j = 0; j < 5; j++) ck_assert_double_eq_tol(fc[j], 0.25, 1e-15);
  ck_assert_int_eq(mp_arima_fit_order(y, 3, 2, 0, 1, &opts, &f), MOEPLACE_ERR_ARG);  // too short
  ck_assert_int_eq(mp_arima_fit_order(y, 30, 3, 0, 0, &opts, &f), MOEPLACE_ERR_ARG); // p too large
  // a random walk needs a difference, white noise does not
  double rw[200], wn[200], lvl = 0;
  for (int t = 0; t < 200; t++) {
    lvl += nrand();
    rw[t] = lvl;
    wn[t] = nrand();
  }
  ck_assert(mp_arima_kpss(rw, 200) > MP_ARIMA_KPSS_CRIT_5);
  ck_assert(mp_arima_kpss(wn, 200) < MP_ARIMA_KPSS_CRIT_5);
  ck_assert_int_eq(mp_arima_select(rw, 200, 2, 1, 1, &opts, &f), 0);
  ck_assert_int_eq(f.d, 1);
  ck_assert_int_eq(mp_arima_select(wn, 200, 2, 1, 1, &opts, &f), 0);
  ck_assert_int_eq(f.d, 0);
}
END_TEST

/* Warm-started selections on a sliding series reach the same optimum as
 * cold ones. */
START_TEST(test_arima_warm_start) {
  double y[260];
  double x = 0, e_prev = 0;
  for (int t = 0; t < 260; t++) {
    double e = 0.01 * nrand();
    x = 0.6 * x + e + 0.3 * e_prev;
    e_prev = e;
    y[t] = 0.1 + x;
  }
  const mp_arima_opts opts = {1e-6, 5000, 1};
  mp_arima_warm warm;
  memset(&warm, 0, sizeof warm);
  for (int off = 0; off <= 60; off += 10) {
    mp_arima_fit cold, hot;
    ck_assert_int_eq(mp_arima_select(y + off, 200, 2, 1, 1, &opts, &cold), 0);
    ck_assert_int_eq(mp_arima_select_warm(y + off, 200, 2, 1, 1, &opts, &warm, &hot), 0);
    ck_assert_int_eq(cold.p * 10 + cold.d * 100 + cold.q, hot.p * 10 + hot.d * 100 + hot.q);
    ck_assert_msg(fabs(cold.loglik - hot.loglik) < 1e-3, "offset %d: %.6f vs %.6f", off,
                  cold.loglik, hot.loglik);
  }
}
END_TEST

/* ---- auto ------------------------------------------------------------------ */

/* Backtest of one layer with public forecasters: mape of each method. */
static void backtest(gen_fn gen, int E, int windows, int hw, double *mape_by_method) {
  const int M = moeplace_predict_method_count();
  moeplace_forecaster *f[16];
  moeplace_predict_config cfg;
  moeplace_predict_config_init(&cfg, 1, E);
  cfg.horizon = hw * cfg.window;
  cfg.sw_avg_k = 20;
  for (int m = 0; m < M; m++) {
    cfg.method = moeplace_predict_method_name(m);
    ck_assert_int_eq(moeplace_forecaster_create(&f[m], &cfg), 0);
    mape_by_method[m] = 0;
  }
  double *x = malloc((size_t)windows * E * sizeof *x), out[64];
  for (int t = 0; t < windows; t++) gen(t, E, x + (size_t)t * E);
  int origins = 0;
  for (int t = 0; t + hw < windows; t++) {
    for (int m = 0; m < M; m++)
      ck_assert_int_ge(moeplace_forecaster_observe(f[m], x + (size_t)t * E), 0);
    if (t < 20) continue;
    double act[64] = {0};
    for (int j = 1; j <= hw; j++)
      for (int e = 0; e < E; e++) act[e] += x[(size_t)(t + j) * E + e] / hw;
    for (int m = 0; m < M; m++) {
      ck_assert_int_eq(moeplace_forecaster_forecast(f[m], out), 0);
      for (int e = 0; e < E; e++) mape_by_method[m] += fabs(out[e] - act[e]) / act[e] / E;
    }
    origins++;
  }
  for (int m = 0; m < M; m++) {
    mape_by_method[m] *= 100.0 / origins;
    moeplace_forecaster_destroy(f[m]);
  }
  free(x);
}

static double drift_level[8];
static void gen_noisy_stationary(int t, int E, double *p) {
  (void)t;
  for (int e = 0; e < E; e++) p[e] = (1.0 + 0.3 * e) * exp(0.3 * nrand());
  mp_normalize_proportions(p, E);
}
static void gen_drifting(int t, int E, double *p) {
  if (t == 0)
    for (int e = 0; e < E; e++) drift_level[e] = 0;
  for (int e = 0; e < E; e++) {
    drift_level[e] += 0.08 * nrand();
    p[e] = exp(drift_level[e] + 0.05 * nrand());
  }
  mp_normalize_proportions(p, E);
}

static void check_auto(gen_fn gen) {
  double mape[16];
  backtest(gen, 6, 260, 10, mape);
  int ia = -1;
  double best = INFINITY;
  for (int m = 0; m < moeplace_predict_method_count(); m++) {
    const char *nm = moeplace_predict_method_name(m);
    if (!strcmp(nm, "auto"))
      ia = m;
    else if (strcmp(nm, "last"))
      best = fmin(best, mape[m]);
  }
  ck_assert_int_ge(ia, 0);
  ck_assert_msg(mape[ia] <= 1.10 * best, "auto mape %.3f vs best single %.3f", mape[ia], best);
}

START_TEST(test_auto_stationary) { check_auto(gen_noisy_stationary); }
END_TEST
START_TEST(test_auto_drifting) { check_auto(gen_drifting); }
END_TEST

/* ---- errors --------------------------------------------------------------- */

START_TEST(test_api_errors) {
  moeplace_predict_config cfg;
  moeplace_predict_config_init(&cfg, 2, 4);
  moeplace_forecaster *f = (moeplace_forecaster *)&cfg;
  cfg.horizon = 1005; // not a multiple of 10
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), MOEPLACE_ERR_ARG);
  ck_assert_ptr_null(f);
  ck_assert(strstr(moeplace_last_error(), "multiple") != NULL);
  cfg.horizon = 1000;
  cfg.method = "prophet";
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), MOEPLACE_ERR_ARG);
  ck_assert(strstr(moeplace_last_error(), "prophet") != NULL);
  cfg.method = "sw_avg";
  cfg.sw_avg_k = 0;
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), MOEPLACE_ERR_ARG);
  cfg.sw_avg_k = 5;
  ck_assert_int_eq(moeplace_forecaster_create(&f, &cfg), 0);
  double bad[8] = {0.5, 0.5, 0, 0, NAN, 0, 0, 1};
  ck_assert_int_eq(moeplace_forecaster_observe(f, bad), MOEPLACE_ERR_ARG);
  double out[4];
  ck_assert_int_eq(moeplace_forecaster_forecast_layer(f, 2, out), MOEPLACE_ERR_ARG);
  moeplace_forecaster_destroy(f);
  moeplace_forecaster_destroy(NULL);
}
END_TEST

/* ---- metrics.md formulas against numpy ---------------------------------- */

/* common/metrics.c against scripts/fixtures/make_metrics_fixture.py (an
 * independent numpy computation). Tolerance: relative 1e-12 (absolute near
 * 0): the values are sums of a handful of terms in double on both sides. */
static void assert_near(double got, double want, const char *what, int i) {
  ck_assert_msg(fabs(got - want) <= 1e-12 * fmax(1.0, fabs(want)), "%s case %d: %.17g vs numpy %.17g",
                what, i, got, want);
}

static void real_array(json_t *a, double *out) {
  for (size_t i = 0; i < json_array_size(a); i++) out[i] = json_number_value(json_array_get(a, i));
}

START_TEST(test_metrics_vs_numpy) {
  json_t *doc;
  ck_assert_int_eq(mp_json_read_file(test_src_path("tests/data/metrics_fixture.json"), &doc), 0);
  double x[64], y[64], z[64];
  json_t *cases = json_object_get(doc, "proportions");
  ck_assert_int_ge(json_array_size(cases), 4);
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i), *counts = json_object_get(c, "counts");
    const int n = (int)json_array_size(counts);
    uint64_t cnt[64];
    for (int e = 0; e < n; e++) cnt[e] = (uint64_t)json_integer_value(json_array_get(counts, e));
    real_array(json_object_get(c, "proportions"), y);
    mp_proportions_from_counts(cnt, n, x);
    for (int e = 0; e < n; e++) z[e] = (double)cnt[e];
    mp_proportions_from_tokens(z, n, z);
    for (int e = 0; e < n; e++) {
      assert_near(x[e], y[e], "proportions_from_counts", (int)i);
      assert_near(z[e], y[e], "proportions_from_tokens", (int)i);
    }
  }
  cases = json_object_get(doc, "imbalance");
  ck_assert_int_ge(json_array_size(cases), 4);
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i), *rl = json_object_get(c, "rank_load");
    real_array(json_object_get(c, "layer_tokens"), y);
    mp_imbalance_sums s = {0, 0};
    for (size_t l = 0; l < json_array_size(rl); l++) {
      json_t *row = json_array_get(rl, l);
      real_array(row, x);
      mp_imbalance_add_layer(&s, x, (int)json_array_size(row), y[l]);
    }
    assert_near(s.max_sum, json_number_value(json_object_get(c, "max_sum")), "max_sum", (int)i);
    assert_near(s.mean_sum, json_number_value(json_object_get(c, "mean_sum")), "mean_sum", (int)i);
    assert_near(mp_imbalance_ratio(s.max_sum, s.mean_sum),
                json_number_value(json_object_get(c, "imbalance")), "imbalance", (int)i);
  }
  cases = json_object_get(doc, "mape");
  ck_assert_int_ge(json_array_size(cases), 4);
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i), *pred = json_object_get(c, "pred");
    real_array(pred, x);
    real_array(json_object_get(c, "actual"), y);
    mp_forecast_error err = {0};
    mp_forecast_error_add(&err, x, y, (int)json_array_size(pred));
    json_t *want = json_object_get(c, "mape");
    if (json_is_null(want))
      ck_assert_msg(isnan(mp_mape(&err)), "mape case %zu: nothing counted must give NAN", i);
    else
      assert_near(mp_mape(&err), json_number_value(want), "mape", (int)i);
    assert_near(mp_mae_pp(&err), json_number_value(json_object_get(c, "mae_pp")), "mae_pp", (int)i);
    ck_assert_int_eq(err.n_ape, json_integer_value(json_object_get(c, "n_ape")));
    ck_assert_int_eq(err.skipped, json_integer_value(json_object_get(c, "skipped")));
  }
  json_decref(doc);
}
END_TEST

/* ---- the backtest API ----------------------------------------------------- */

/* A trace of `steps` steps, 2 layers x 3 experts, the same counts every step. */
static moeplace_trace *constant_trace(int steps, char *buf, size_t cap) {
  size_t n = (size_t)snprintf(buf, cap, "step,layer,e0,e1,e2\n");
  for (int t = 0; t < steps; t++)
    for (int l = 0; l < 2; l++)
      n += (size_t)snprintf(buf + n, cap - n, "%d,%d,%d,%d,%d\n", t, l, 5 + l, 3, 2 * l);
  moeplace_trace *tr;
  ck_assert_int_eq(moeplace_trace_open_memory(&tr, buf, n, "const.csv"), 0);
  return tr;
}

static int count_origin(void *ctx, const moeplace_backtest_origin *o) {
  int *calls = ctx;
  ck_assert_int_eq(o->methods, 2);
  ck_assert_int_eq(o->experts, 3);
  ck_assert_int_eq(o->total_windows, 20);
  (*calls)++;
  return MOEPLACE_OK;
}

START_TEST(test_backtest_api) {
  static char buf[1 << 14];
  moeplace_backtest_config cfg;
  moeplace_backtest_config_init(&cfg);
  const char *methods[] = {"sw_avg", "last"}; // "last" listed again: scored once
  cfg.methods = methods;
  cfg.n_methods = 2;
  cfg.predict.window = 5;
  cfg.predict.horizon = 10;
  cfg.predict.sw_avg_k = 3;
  cfg.predict.detector.k = 3;
  cfg.min_history = 4;
  int calls = 0;
  cfg.on_origin = count_origin;
  cfg.ctx = &calls;
  moeplace_trace *tr = constant_trace(100, buf, sizeof buf);
  moeplace_backtest_result res;
  ck_assert_int_eq(moeplace_backtest_run(tr, &cfg, &res), MOEPLACE_OK);
  moeplace_trace_close(tr);
  // 20 windows; origins after windows 4 .. 20 - 2
  ck_assert_int_eq(res.windows, 20);
  ck_assert_int_eq(res.origins, 15);
  ck_assert_int_eq(res.first_origin_step, 19);
  ck_assert_int_eq(calls, 2 * 15);
  ck_assert_int_eq(res.n_methods, 2);
  ck_assert_str_eq(res.method[0].name, "last");
  ck_assert_str_eq(res.method[1].name, "sw_avg");
  for (int i = 0; i < 2; i++) {
    // constant loads: every forecast is exact; expert 2 of layer 0 is idle
    ck_assert_double_eq_tol(res.method[i].mape[MOEPLACE_BACKTEST_ALL], 0.0, 1e-9);
    ck_assert_double_eq_tol(res.method[i].mae_pp[MOEPLACE_BACKTEST_ALL], 0.0, 1e-9);
    ck_assert_int_eq(res.method[i].mape_skipped, 15);
    ck_assert_int_eq(res.method[i].layer_origins[MOEPLACE_BACKTEST_ALL], 2 * 15);
  }
  moeplace_backtest_result_free(&res);
  ck_assert_ptr_null(res.method);

  // Too short for the horizon: an argument error naming the field; the
  // trace's shape is still reported so that a tool can explain.
  cfg.on_origin = NULL;
  cfg.predict.horizon = 200;
  tr = constant_trace(100, buf, sizeof buf);
  ck_assert_int_eq(moeplace_backtest_run(tr, &cfg, &res), MOEPLACE_ERR_ARG);
  moeplace_trace_close(tr);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "(min_history)"));
  ck_assert_int_eq(res.windows, 20);
  ck_assert_ptr_null(res.method);

  const char *unknown[] = {"prophet"};
  cfg.methods = unknown;
  cfg.n_methods = 1;
  cfg.predict.horizon = 10;
  tr = constant_trace(100, buf, sizeof buf);
  ck_assert_int_eq(moeplace_backtest_run(tr, &cfg, &res), MOEPLACE_ERR_ARG);
  ck_assert_str_eq(moeplace_last_error(), "backtest: unknown method 'prophet'");
  ck_assert_int_eq(moeplace_backtest_run(tr, NULL, &res), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(moeplace_backtest_run(tr, &cfg, NULL), MOEPLACE_ERR_ARG);
  moeplace_trace_close(tr);
}
END_TEST

static Suite *predict_suite(void) {
  Suite *s = suite_create("predict");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_normalize);
  tcase_add_test(tc, test_contract_random);
  tcase_add_test(tc, test_contract_single_expert);
  tcase_add_test(tc, test_contract_constant);
  tcase_add_test(tc, test_contract_zero_expert);
  tcase_add_test(tc, test_contract_trend);
  tcase_add_test(tc, test_forecaster_all_zero_window);
  tcase_add_test(tc, test_sw_avg_exact);
  tcase_add_test(tc, test_detector_hysteresis);
  tcase_add_test(tc, test_forecaster_states);
  tcase_add_test(tc, test_arima_vs_statsmodels);
  tcase_add_test(tc, test_arima_degenerate);
  tcase_add_test(tc, test_arima_forecast_mean);
  tcase_add_test(tc, test_arima_warm_start);
  tcase_add_test(tc, test_auto_stationary);
  tcase_add_test(tc, test_auto_drifting);
  tcase_add_test(tc, test_api_errors);
  tcase_add_test(tc, test_metrics_vs_numpy);
  tcase_add_test(tc, test_backtest_api);
  suite_add_tcase(s, tc);
  return s;
}

int main(void) { return test_run_suite(predict_suite()); }
