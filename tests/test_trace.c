/* Unit tests of trace reading, writing, windowing and statistics. */
#include <inttypes.h>
#include <math.h>
#include <unistd.h>

#include <jansson.h>
#include <moeplace.h>

#include "common/error.h"
#include "common/metrics.h"
#include "common/trace_stats.h"
#include "common/trace_window.h"
#include "tests/test_util.h"

static const char good_trace[] =
    "# model: tiny\n"
    "# plain comment without a key\n"
    "# tokens_per_step: 10\n"
    "step,layer,e0,e1,e2\n"
    "0,1,4,5,1\n"
    "0,0,1,2,7\r\n"
    "\n"
    "1,0,3,3,4\n"
    "1,1,0,0,10\n"
    "# late: comment\n"
    "2,1,18446744073709551615,0,0\n"
    "2,0,1,1,8";

/* Opens `text` and reads every step; returns the first error (or OK). */
static int read_all(const char *text, int64_t *steps) {
  moeplace_trace *t;
  int rc = moeplace_trace_open_memory(&t, text, strlen(text), "t.csv");
  if (rc) return rc;
  size_t n = (size_t)moeplace_trace_layers(t) * moeplace_trace_experts(t);
  uint64_t *counts = malloc(n * sizeof *counts);
  int64_t step;
  *steps = 0;
  while ((rc = moeplace_trace_read_step(t, &step, counts)) > 0) (*steps)++;
  free(counts);
  moeplace_trace_close(t);
  return rc;
}

START_TEST(reads_valid_trace) {
  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open_memory(&t, good_trace, strlen(good_trace), "t.csv"), 0);
  ck_assert_int_eq(moeplace_trace_layers(t), 2);
  ck_assert_int_eq(moeplace_trace_experts(t), 3);
  uint64_t c[6];
  int64_t step;
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 1);
  ck_assert_int_eq(step, 0);
  /* rows arrive layer 1 first; counts are stored by layer index */
  uint64_t want0[6] = {1, 2, 7, 4, 5, 1};
  ck_assert_mem_eq(c, want0, sizeof want0);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 1);
  ck_assert_int_eq(step, 1);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 1);
  ck_assert_int_eq(step, 2);
  ck_assert(c[3] == UINT64_MAX);
  ck_assert_int_eq(c[2], 8);
  ck_assert_int_eq(c[5], 0);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 0);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 0);
  ck_assert_uint_eq(moeplace_trace_meta_count(t), 3);
  ck_assert_str_eq(moeplace_trace_meta_get(t, 0).key, "model");
  ck_assert_str_eq(moeplace_trace_meta_get(t, 0).value, "tiny");
  ck_assert_str_eq(moeplace_trace_meta_get(t, 1).key, "tokens_per_step");
  ck_assert_str_eq(moeplace_trace_meta_get(t, 2).key, "late");
  moeplace_trace_progress p = moeplace_trace_get_progress(t);
  ck_assert_int_eq(p.steps_read, 3);
  ck_assert_int_eq(p.stride, 1);
  ck_assert_int_eq(p.irregular, 0);
  moeplace_trace_close(t);
}
END_TEST

/* Every malformed input of docs/trace-format.md, with the line the error
 * must name and a phrase of the reason. */
static const struct {
  const char *text;
  int line;
  const char *reason;
} bad[] = {
    {"", 0, "empty trace"},
    {"# only a comment\n\n", 2, "empty trace"},
    {"step,layer,e0,e1\n", 1, "no data rows"},
    {"0,0,1,2\n", 1, "header must start"},
    {"step,layer,e0,e2\n0,0,1,2\n", 1, "header column 4 should be 'e1'"},
    {"step,layer,\n0,0,1\n", 1, "header column 3 should be 'e0'"},
    {"Step,Layer,e0\n0,0,1\n", 1, "header must start"},
    {"step,layer,e0,e1\n0,0,1\n", 2, "expected 2 expert counts, found 1"},
    {"step,layer,e0,e1\n0,0,1,2,3\n", 2, "expected 2 expert counts, found 3"},
    {"step,layer,e0,e1\n0,0,1,x\n", 2, "count for e1 is not a non-negative integer: 'x'"},
    {"step,layer,e0,e1\n0,0,1,-3\n", 2, "is negative"},
    {"step,layer,e0,e1\n0,0,nan,1\n", 2, "'nan'"},
    {"step,layer,e0,e1\n0,0,inf,1\n", 2, "'inf'"},
    {"step,layer,e0,e1\n0,0,1.5,1\n", 2, "'1.5'"},
    {"step,layer,e0,e1\n0,0,1e3,1\n", 2, "'1e3'"},
    {"step,layer,e0,e1\n0,0, 1,1\n", 2, "' 1'"},
    {"step,layer,e0,e1\n0,0,,1\n", 2, "is not a non-negative integer"},
    {"step,layer,e0,e1\n0,0,18446744073709551616,1\n", 2, "overflows 64 bits"},
    {"step,layer,e0,e1\n-1,0,1,1\n", 2, "step is negative"},
    {"step,layer,e0,e1\n9223372036854775808,0,1,1\n", 2, "step overflows"},
    {"step,layer,e0,e1\nx,0,1,1\n", 2, "step is not"},
    {"step,layer,e0,e1\n0,-1,1,1\n", 2, "layer is negative"},
    {"step,layer,e0,e1\n0,99999,1,1\n", 2, "exceeds the limit"},
    {"step,layer,e0\n0,0,1\n0,2,1\n", 3, "layer 2 out of range: step 0 has 2 layer rows"},
    {"step,layer,e0\n0,0,1\n0,0,2\n", 3, "layer 0 appears twice in step 0 (first at line 2)"},
    {"step,layer,e0\n0,0,1\n0,1,1\n1,1,1\n1,1,1\n", 5, "layer 1 appears twice in step 1"},
    {"step,layer,e0\n0,0,1\n0,1,1\n1,0,1\n1,2,1\n", 5, "layer 2 out of range: the trace has 2 layers"},
    {"step,layer,e0\n0,0,1\n0,1,1\n1,0,1\n2,0,1\n2,1,1\n", 4, "step 1 has 1 of 2 layers (layer 1 missing)"},
    {"step,layer,e0\n0,0,1\n0,1,1\n1,1,1\n", 4, "step 1 has 1 of 2 layers (layer 0 missing)"},
    {"step,layer,e0\n5,0,1\n5,1,1\n3,0,1\n3,1,1\n", 4, "step 3 goes backwards after step 5"},
    {"step,layer,e0\n5,0,1\n6,0,1\n4,0,1\n", 4, "step 4 goes backwards after step 6"},
    {"step,layer,e0\n5,0,1\n6,0,1\n6,0,1\n", 4, "layer 0 appears twice in step 6"},
    {"step,layer,e0\n0,0,1\n1,0,\x01\x02\x7f\n", 3, "count for e0 is not"},
    {"step,layer,e0\n0\n", 2, "expected 'step,layer,counts...'"},
};

START_TEST(rejects_malformed) {
  int64_t steps;
  int rc = read_all(bad[_i].text, &steps);
  ck_assert_msg(rc == MOEPLACE_ERR_FORMAT, "case %d: expected a format error, got %d", _i, rc);
  char want_prefix[32];
  snprintf(want_prefix, sizeof want_prefix, "t.csv:%d: ", bad[_i].line);
  const char *msg = moeplace_last_error();
  ck_assert_msg(strncmp(msg, want_prefix, strlen(want_prefix)) == 0,
                "case %d: message '%s' should start with '%s'", _i, msg, want_prefix);
  ck_assert_msg(strstr(msg, bad[_i].reason) != NULL, "case %d: message '%s' lacks '%s'", _i, msg,
                bad[_i].reason);
}
END_TEST

START_TEST(rejects_nul_bytes_and_long_lines) {
  static const char nul[] = "step,layer,e0\n0,0,1\n1,0,1\n2,0,\0\n";
  moeplace_trace *t;
  uint64_t c[1];
  int64_t step;
  ck_assert_int_eq(moeplace_trace_open_memory(&t, nul, sizeof nul - 1, "t.csv"), 0);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 1);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), MOEPLACE_ERR_FORMAT);
  ck_assert_str_eq(moeplace_last_error(), "t.csv:4: binary data (NUL byte) in a text trace");
  /* The error is sticky: the reader never resumes after a bad line. */
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), MOEPLACE_ERR_FORMAT);
  ck_assert_str_eq(moeplace_last_error(), "t.csv:4: binary data (NUL byte) in a text trace");
  moeplace_trace_close(t);

  size_t n = MOEPLACE_TRACE_MAX_LINE + 100;
  char *huge = malloc(n + 64);
  strcpy(huge, "step,layer,e0\n0,0,");
  memset(huge + strlen(huge), '1', n);
  huge[18 + n] = '\0';
  ck_assert_int_eq(moeplace_trace_open_memory(&t, huge, strlen(huge), "t.csv"), MOEPLACE_ERR_FORMAT);
  ck_assert_msg(strstr(moeplace_last_error(), "t.csv:2: line longer than") != NULL, "%s",
                moeplace_last_error());
  free(huge);
}
END_TEST

START_TEST(reports_gaps) {
  static const char sampled[] = "step,layer,e0\n0,0,1\n5,0,1\n10,0,1\n20,0,1\n25,0,1\n26,0,1\n";
  int64_t steps;
  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open_memory(&t, sampled, strlen(sampled), "s.csv"), 0);
  uint64_t c[1];
  int64_t step;
  while (moeplace_trace_read_step(t, &step, c) > 0) {}
  moeplace_trace_progress p = moeplace_trace_get_progress(t);
  ck_assert_int_eq(p.steps_read, 6);
  ck_assert_int_eq(p.first_step, 0);
  ck_assert_int_eq(p.last_step, 26);
  ck_assert_int_eq(p.stride, 5);
  ck_assert_int_eq(p.irregular, 2);
  ck_assert_int_eq(p.irregular_from, 10);
  ck_assert_int_eq(p.irregular_to, 20);
  ck_assert_int_eq(p.first_irregular_line, 5);
  moeplace_trace_close(t);
  ck_assert_int_eq(read_all(sampled, &steps), 0);
  ck_assert_int_eq(steps, 6);
}
END_TEST

START_TEST(windows_sum_steps) {
  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open_memory(&t, good_trace, strlen(good_trace), "t.csv"), 0);
  uint64_t tot[6];
  int64_t first;
  int n;
  ck_assert_int_eq(moeplace_trace_read_window(t, 2, &first, &n, tot), 1);
  ck_assert_int_eq(first, 0);
  ck_assert_int_eq(n, 2);
  uint64_t want[6] = {4, 5, 11, 4, 5, 11};
  ck_assert_mem_eq(tot, want, sizeof want);
  ck_assert_int_eq(moeplace_trace_read_window(t, 2, &first, &n, tot), 1);
  ck_assert_int_eq(n, 1); /* the last, partial window */
  ck_assert_int_eq(first, 2);
  ck_assert_int_eq(moeplace_trace_read_window(t, 2, &first, &n, tot), 0);
  ck_assert_int_eq(moeplace_trace_read_window(t, 0, &first, &n, tot), MOEPLACE_ERR_ARG);
  moeplace_trace_close(t);
}
END_TEST

START_TEST(writer_round_trip_and_atomicity) {
  char dir[] = "/tmp/moeplace-test-XXXXXX";
  ck_assert_ptr_nonnull(mkdtemp(dir));
  char path[256];
  snprintf(path, sizeof path, "%s/out.csv.gz", dir);
  moeplace_trace_meta meta[] = {{"model", "unit test"}};
  moeplace_trace_writer *w;
  ck_assert_int_eq(moeplace_trace_writer_open(&w, path, 2, 3, meta, 1), 0);
  /* Until commit, the target does not exist. */
  ck_assert_int_ne(access(path, F_OK), 0);
  uint64_t a[6] = {1, 2, 3, 4, 5, 6}, b[6] = {0, 0, UINT64_MAX, 7, 8, 9};
  ck_assert_int_eq(moeplace_trace_writer_write_step(w, 3, a), 0);
  ck_assert_int_eq(moeplace_trace_writer_write_step(w, 3, b), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(moeplace_trace_writer_write_step(w, 9, b), 0);
  ck_assert_int_eq(moeplace_trace_writer_commit(w), 0);

  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open(&t, path), 0);
  ck_assert_int_eq(moeplace_trace_layers(t), 2);
  ck_assert_str_eq(moeplace_trace_meta_get(t, 0).value, "unit test");
  uint64_t c[6];
  int64_t step;
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 1);
  ck_assert_int_eq(step, 3);
  ck_assert_mem_eq(c, a, sizeof a);
  ck_assert_int_eq(moeplace_trace_read_step(t, &step, c), 1);
  ck_assert_int_eq(step, 9);
  ck_assert_mem_eq(c, b, sizeof b);
  moeplace_trace_close(t);

  /* An aborted write leaves the previous file untouched and no temporary. */
  ck_assert_int_eq(moeplace_trace_writer_open(&w, path, 1, 1, NULL, 0), 0);
  moeplace_trace_writer_abort(w);
  ck_assert_int_eq(moeplace_trace_open(&t, path), 0);
  ck_assert_int_eq(moeplace_trace_layers(t), 2);
  moeplace_trace_close(t);
  unlink(path);
  ck_assert_int_eq(rmdir(dir), 0); /* fails if a temporary file was left behind */

  ck_assert_int_eq(moeplace_trace_writer_open(&w, "/nonexistent-dir/x.csv", 1, 1, NULL, 0),
                   MOEPLACE_ERR_IO);
  ck_assert_int_eq(moeplace_trace_writer_open(&w, "x.csv", 0, 1, NULL, 0), MOEPLACE_ERR_ARG);
  ck_assert_int_eq(moeplace_trace_open(&t, "/nonexistent-dir/x.csv"), MOEPLACE_ERR_IO);
  ck_assert_ptr_null(t);
}
END_TEST

/* ---- Statistics against the numpy fixture --------------------------- */

static double fixture_real(json_t *obj, const char *key) {
  json_t *v = json_object_get(obj, key);
  ck_assert_msg(json_is_number(v), "fixture lacks %s", key);
  return json_number_value(v);
}

static void assert_close(double got, double want, double rtol, double atol, const char *what,
                         int layer, int index) {
  ck_assert_msg(fabs(got - want) <= atol + rtol * fabs(want),
                "layer %d %s[%d]: got %.17g, numpy says %.17g", layer, what, index, got, want);
}

/* Compares mp_trace_stats of `trace_path` with a fixture written by
 * scripts/fixtures/make_trace_stats_fixture.py. */
static void check_stats_against(const char *trace, const char *fixture) {
  char trace_path[4096]; /* test_src_path() reuses one buffer */
  snprintf(trace_path, sizeof trace_path, "%s", trace);
  json_error_t jerr;
  json_t *fx = json_load_file(test_src_path(fixture), 0, &jerr);
  ck_assert_msg(fx != NULL, "cannot load %s: %s", fixture, jerr.text);
  int window = (int)fixture_real(fx, "window"), k = (int)fixture_real(fx, "k");
  int stride = (int)fixture_real(fx, "series_stride");

  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open(&t, trace_path), 0);
  mp_trace_stats s;
  ck_assert_int_eq(mp_trace_stats_compute(t, window, k, &s), 0);
  ck_assert_int_eq(s.steps, (int64_t)fixture_real(fx, "steps"));
  ck_assert_int_eq(s.layers, (int)fixture_real(fx, "layers"));
  ck_assert_int_eq(s.experts, (int)fixture_real(fx, "experts"));
  ck_assert(s.tokens == (uint64_t)fixture_real(fx, "tokens"));
  ck_assert_int_eq(s.windows, (int64_t)fixture_real(fx, "windows"));
  json_t *layers = json_object_get(fx, "per_layer");
  ck_assert_int_eq(json_array_size(layers), s.layers);
  for (int l = 0; l < s.layers; l++) {
    json_t *fl = json_array_get(layers, l);
    const mp_layer_stats *ls = &s.layer[l];
    ck_assert(ls->tokens == (uint64_t)fixture_real(fl, "tokens"));
    assert_close(ls->prop_min, fixture_real(fl, "proportion_min"), 1e-12, 0, "min", l, 0);
    assert_close(ls->prop_max, fixture_real(fl, "proportion_max"), 1e-12, 0, "max", l, 0);
    assert_close(ls->prop_cv, fixture_real(fl, "proportion_cv"), 1e-10, 0, "cv", l, 0);
    json_t *props = json_object_get(fl, "proportions");
    for (int e = 0; e < s.experts; e++)
      assert_close(ls->proportion[e], json_number_value(json_array_get(props, e)), 1e-12, 0,
                   "proportion", l, e);
    json_t *var = json_object_get(fl, "window_variance_max");
    json_t *rng = json_object_get(fl, "window_range_max");
    ck_assert_uint_eq(json_array_size(var), (s.n_series + stride - 1) / stride);
    for (size_t i = 0; i < s.n_series; i += stride) {
      /* Variances are summed in a different order than numpy: compare to
       * a relative 1e-9 plus an absolute floor far below any threshold. */
      assert_close(ls->window_var_max[i], json_number_value(json_array_get(var, i / stride)),
                   1e-9, 1e-15, "window_variance_max", l, (int)i);
      assert_close(ls->window_range_max[i], json_number_value(json_array_get(rng, i / stride)),
                   1e-12, 1e-15, "window_range_max", l, (int)i);
    }
  }
  mp_trace_stats_free(&s);
  moeplace_trace_close(t);
  json_decref(fx);
}

START_TEST(stats_match_numpy_bundled) {
  check_stats_against(test_src_path("data/pycode-L4-E16-top2-4k.csv.gz"),
                      "tests/data/stats-pycode-4k.json");
}
END_TEST

/* The detector figures with a k the ring reaches by doubling (16, 32, 40)
 * and then wraps, against a plain recomputation over the last k windows in
 * order (summed in another order: 1e-15). */
START_TEST(stats_ring_grows_to_k) {
  enum { W = 10, K = 40, L = 4, E = 16, N = 400 };
  static double q[N][L][E];
  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open(&t, test_src_path("data/pycode-L4-E16-top2-4k.csv.gz")), 0);
  uint64_t win[L * E];
  int64_t first;
  int n;
  for (int w = 0; w < N; w++) {
    ck_assert_int_eq(moeplace_trace_read_window(t, W, &first, &n, win), 1);
    for (int l = 0; l < L; l++) mp_proportions_from_counts(win + l * E, E, q[w][l]);
  }
  moeplace_trace_close(t);
  ck_assert_int_eq(moeplace_trace_open(&t, test_src_path("data/pycode-L4-E16-top2-4k.csv.gz")), 0);
  mp_trace_stats s;
  ck_assert_int_eq(mp_trace_stats_compute(t, W, K, &s), 0);
  ck_assert_uint_eq(s.n_series, N - K + 1);
  for (size_t i = 0; i < s.n_series; i++)
    for (int l = 0; l < L; l++) {
      double vmax = 0, rmax = 0;
      for (int e = 0; e < E; e++) {
        double mean = 0, lo = INFINITY, hi = -INFINITY, var = 0;
        for (int j = 0; j < K; j++) mean += q[i + j][l][e] / K;
        for (int j = 0; j < K; j++) {
          const double x = q[i + j][l][e];
          var += (x - mean) * (x - mean) / K;
          lo = fmin(lo, x);
          hi = fmax(hi, x);
        }
        vmax = fmax(vmax, var);
        rmax = fmax(rmax, hi - lo);
      }
      ck_assert_double_eq_tol(s.layer[l].window_var_max[i], vmax, 1e-15);
      ck_assert_double_eq_tol(s.layer[l].window_range_max[i], rmax, 1e-15);
    }
  mp_trace_stats_free(&s);
  moeplace_trace_close(t);
}
END_TEST

/* The trace's totals (what validate checks): exact up to their limits, an
 * error naming the row past them. */
START_TEST(totals_refuse_overflow) {
  static const char ok[] = "step,layer,e0,e1\n0,0,9223372036854775806,0\n1,0,0,1\n";
  static const char over[] = "step,layer,e0,e1\n0,0,9223372036854775806,0\n1,0,1,1\n";
  static const char wide[] = "step,layer,e0\n0,0,1\n1,0,18446744073709551615\n";
  const char *text[] = {ok, over, wide};
  const char *want[] = {NULL, "t.csv:3: step 1: layer 0: token totals exceed 2^63 - 1",
                        "t.csv:3: step 1: layer 0 expert e0: counts summed over the trace exceed "
                        "2^64 - 1"};
  for (int i = 0; i < 3; i++) {
    moeplace_trace *t;
    ck_assert_int_eq(moeplace_trace_open_memory(&t, text[i], strlen(text[i]), "t.csv"), 0);
    mp_trace_totals tot;
    ck_assert_int_eq(mp_trace_totals_init(&tot, t), 0);
    uint64_t c[2];
    int64_t step;
    int rc;
    while ((rc = moeplace_trace_read_step(t, &step, c)) > 0)
      if ((rc = mp_trace_totals_add(&tot, step, c, mp_trace_step_lines(t)))) break;
    if (want[i]) {
      ck_assert_int_eq(rc, MOEPLACE_ERR_FORMAT);
      ck_assert_str_eq(moeplace_last_error(), want[i]);
    } else {
      ck_assert_int_eq(rc, 0);
      ck_assert(tot.all == INT64_MAX && tot.layer[0] == INT64_MAX && tot.expert[1] == 1);
    }
    mp_trace_totals_free(&tot);
    moeplace_trace_close(t);
  }
}
END_TEST

/* Run by tests/trace_shared.sh, which skips (exit 77) when the shared
 * traces are absent, as in a release tarball: a missing file is never a pass. */
START_TEST(stats_match_numpy_shared) {
  const char *trace = test_shared_trace("pycode-L4-E16-top2.csv.gz");
  ck_assert_msg(trace != NULL, "../shared/traces/pycode-L4-E16-top2.csv.gz not found");
  check_stats_against(trace, "tests/data/stats-pycode-8k.json");
}
END_TEST

/* configure's version (the library's) and the header's must be one. */
START_TEST(version_matches_header) {
  char want[32];
  snprintf(want, sizeof want, "%d.%d.%d", MOEPLACE_VERSION_MAJOR, MOEPLACE_VERSION_MINOR,
           MOEPLACE_VERSION_PATCH);
  ck_assert_str_eq(moeplace_version(), want);
}
END_TEST

START_TEST(fail_may_quote_last_error) {
  mp_fail(MOEPLACE_ERR_ARG, "inner reason %d", 7);
  int rc = mp_fail(MOEPLACE_ERR_FORMAT, "f.csv:3: %s", moeplace_last_error());
  ck_assert_int_eq(rc, MOEPLACE_ERR_FORMAT);
  ck_assert_str_eq(moeplace_last_error(), "f.csv:3: inner reason 7");
}
END_TEST

/* MP_TEST_SHARED=1 runs only the check against the full shared trace. */
static Suite *trace_suite(void) {
  Suite *s = suite_create("trace");
  if (getenv("MP_TEST_SHARED")) {
    TCase *sh = tcase_create("shared");
    tcase_set_timeout(sh, 60);
    tcase_add_test(sh, stats_match_numpy_shared);
    suite_add_tcase(s, sh);
    return s;
  }
  TCase *tc = tcase_create("io");
  tcase_add_test(tc, fail_may_quote_last_error);
  tcase_add_test(tc, version_matches_header);
  tcase_add_test(tc, reads_valid_trace);
  tcase_add_loop_test(tc, rejects_malformed, 0, (int)(sizeof bad / sizeof bad[0]));
  tcase_add_test(tc, rejects_nul_bytes_and_long_lines);
  tcase_add_test(tc, reports_gaps);
  tcase_add_test(tc, windows_sum_steps);
  tcase_add_test(tc, writer_round_trip_and_atomicity);
  suite_add_tcase(s, tc);
  TCase *st = tcase_create("stats");
  tcase_set_timeout(st, 60);
  tcase_add_test(st, stats_match_numpy_bundled);
  tcase_add_test(st, stats_ring_grows_to_k);
  tcase_add_test(st, totals_refuse_overflow);
  suite_add_tcase(s, st);
  return s;
}

int main(void) { return test_run_suite(trace_suite()); }
