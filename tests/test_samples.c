/* Load samples (moeplace_place_options.samples, common/load_samples.h):
 * the samples' formula by hand, the refinement against an independent
 * recomputation of the mean over samples of the max rank load, validity,
 * the budget and the errors. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/load_samples.h"

static uint64_t rs = 777;
static void reseed(void) { rs = 777; }
static double urand(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return ((double)(rs >> 11) + 0.5) / 9007199254740992.0;
}

/* Mean over n samples x [n][L][E] of sum over layers of the max rank
 * load, recomputed from the result's slots and shares. */
static double sample_max(const moeplace_placement *p, const double *x, int n) {
  const int L = moeplace_placement_layers(p), E = moeplace_placement_experts(p);
  const int R = moeplace_placement_ranks(p), S = moeplace_placement_slots(p);
  double tot = 0;
  for (int t = 0; t < n; t++)
    for (int l = 0; l < L; l++) {
      const int *ph = moeplace_placement_phy2log_const(p, l);
      const double *sh = moeplace_placement_share_const(p, l);
      const double *w = x + ((size_t)t * L + l) * E;
      double mx = 0;
      for (int r = 0; r < R; r++) {
        double s = 0;
        for (int k = 0; k < S; k++)
          if (ph[r * S + k] >= 0) s += sh[r * S + k] * w[ph[r * S + k]];
        if (s > mx) mx = s;
      }
      tot += mx;
    }
  return tot / n;
}

START_TEST(test_formula_by_hand) {
  mp_window_ring ring;
  ck_assert_int_eq(mp_window_ring_init(&ring, 2, 1, 2), MOEPLACE_OK);
  const uint64_t w0[2] = {3, 1}, w1[2] = {1, 1}, w2[2] = {0, 0};
  const double forecast[2] = {60, 40}; // shares 0.6, 0.4 of a volume of 100
  double out[4];
  mp_window_ring_push(&ring, w0);
  mp_window_ring_push(&ring, w1);
  ck_assert_int_eq(mp_window_ring_samples(&ring, 2, forecast, out), MOEPLACE_OK);
  // window shares (0.75, 0.25) and (0.5, 0.5), mean (0.625, 0.375)
  const double want[4] = {72.5, 27.5, 47.5, 52.5};
  for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(out[i], want[i], 1e-12);
  ck_assert_int_eq(mp_window_ring_get(&ring, 0)[0], 1); // w1, then w0
  ck_assert_int_eq(mp_window_ring_get(&ring, 1)[0], 3);
  ck_assert_int_eq(mp_window_ring_samples(&ring, 1, forecast, out), MOEPLACE_OK);
  for (int i = 0; i < 2; i++) ck_assert_double_eq_tol(out[i], forecast[i], 1e-12); // k = 1: w1 alone
  mp_window_ring_push(&ring, w2); // over w0; a window without tokens gives the forecast
  ck_assert_int_eq(ring.n, 2);
  ck_assert_int_eq(mp_window_ring_samples(&ring, 2, forecast, out), MOEPLACE_OK);
  const double want2[4] = {60, 40, 60, 40}; // w1 is the only window with tokens: no deviation
  for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(out[i], want2[i], 1e-12);
  const uint64_t a[2] = {1, 0}, b[2] = {0, 1};
  mp_window_ring_push(&ring, a);
  mp_window_ring_push(&ring, b); // over w2, into the ring's first place; a is the second
  const double f2[2] = {10, 90};  // shares (0, 1) and (1, 0), mean (0.5, 0.5)
  ck_assert_int_eq(mp_window_ring_samples(&ring, 2, f2, out), MOEPLACE_OK);
  const double want3[4] = {0, 140, 60, 40}; // 10 - 50 is clipped at 0
  for (int i = 0; i < 4; i++) ck_assert_double_eq_tol(out[i], want3[i], 1e-12);
  mp_window_ring_free(&ring);
}
END_TEST

/* Experts 0 and 1 burst together, 2 and 3 too: equal mean loads, so only
 * the samples tell that the current pairing {0,1} | {2,3} doubles every
 * step's max. With samples the placement moves to a crossed pairing (two
 * moves pay for a max of 2 instead of 4); without them it keeps the
 * current one. Both share policies. */
START_TEST(test_bursting_experts_split) {
  moeplace_topology *t;
  ck_assert_int_eq(moeplace_topology_create_shape(&t, 1, 2, 1, 1), 0);
  const double w[4] = {1, 1, 1, 1}, x[8] = {2, 2, 0, 0, 0, 0, 2, 2};
  const int cur_slots[4] = {0, 1, 2, 3};
  moeplace_placement *cur;
  ck_assert_int_eq(moeplace_placement_create(&cur, 1, 4, 2, 2), 0);
  memcpy(moeplace_placement_phy2log(cur, 0), cur_slots, sizeof cur_slots);
  ck_assert_int_eq(moeplace_placement_equal_shares(cur), 0);
  for (int even = 0; even < 2; even++) {
    moeplace_place_options o;
    moeplace_place_options_init(&o);
    o.shares = even ? MOEPLACE_SHARES_EVEN : MOEPLACE_SHARES_WEIGHTED;
    o.step_time_s = 1e-3;
    o.horizon_steps = 1e6; // moves are cheap against what the steps save
    moeplace_placement *p;
    moeplace_place_stats st;
    ck_assert_int_eq(moeplace_place(t, 1, 4, 2, w, cur, &o, &p, &st), 0);
    ck_assert_int_eq(st.moves, 0); // the means are balanced already
    ck_assert_double_eq_tol(sample_max(p, x, 2), 4, 1e-12);
    moeplace_placement_destroy(p);
    o.n_samples = 2;
    o.samples = x;
    ck_assert_int_eq(moeplace_place(t, 1, 4, 2, w, cur, &o, &p, &st), 0);
    ck_assert_int_eq(moeplace_placement_validate(p), 0);
    ck_assert_int_eq(st.moves, 2);
    ck_assert_double_eq_tol(sample_max(p, x, 2), 2, 1e-12);
    moeplace_placement_destroy(p);
    o.byte_budget = 0; // nothing may move: the current pairing stays
    ck_assert_int_eq(moeplace_place(t, 1, 4, 2, w, cur, &o, &p, &st), 0);
    ck_assert_int_eq(st.moves, 0);
    moeplace_placement_destroy(p);
  }
  moeplace_placement_destroy(cur);
  moeplace_topology_destroy(t);
}
END_TEST

/* Fresh placements of random layers: the refinement starts from the
 * placement made without samples and only takes swaps that lower the
 * samples' mean max, so the result is never worse by it, and is valid
 * (every expert present, shares summing to 1, no rank holding an expert
 * twice: moeplace_placement_validate, recomputed below too). */
START_TEST(test_fresh_never_worse) {
  for (int trial = 0; trial < 60; trial++) {
    const int R = 2 + (int)(urand() * 7), S = 1 + (int)(urand() * 3), L = 1 + (int)(urand() * 2);
    const int E = 1 + (int)(urand() * R * S), n = 2 + (int)(urand() * 20);
    moeplace_topology *t;
    moeplace_topology_create_shape(&t, 1, R, 1, 1);
    double *w = malloc((size_t)L * E * sizeof *w), *x = malloc((size_t)n * L * E * sizeof *x);
    for (int i = 0; i < L * E; i++) w[i] = 1 + 100 * urand() * urand();
    for (int k = 0; k < n; k++)
      for (int i = 0; i < L * E; i++) x[(size_t)k * L * E + i] = w[i] * 2 * urand();
    moeplace_place_options o;
    moeplace_place_options_init(&o);
    o.shares = trial % 2 ? MOEPLACE_SHARES_EVEN : MOEPLACE_SHARES_WEIGHTED;
    moeplace_placement *plain, *p;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, &o, &plain, NULL), 0);
    o.n_samples = n;
    o.samples = x;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, &o, &p, NULL), 0);
    ck_assert_int_eq(moeplace_placement_validate(p), 0);
    for (int l = 0; l < L; l++) {
      const int *ph = moeplace_placement_phy2log_const(p, l);
      const double *sh = moeplace_placement_share_const(p, l);
      double *sum = calloc((size_t)E, sizeof *sum);
      for (int i = 0; i < R * S; i++) {
        if (ph[i] < 0) continue;
        sum[ph[i]] += sh[i];
        for (int k = i - i % S; k < i; k++) ck_assert_int_ne(ph[k], ph[i]);
      }
      for (int e = 0; e < E; e++) ck_assert_double_eq_tol(sum[e], 1, 1e-9);
      free(sum);
    }
    const double a = sample_max(plain, x, n), b = sample_max(p, x, n);
    ck_assert_msg(b <= a * (1 + 1e-12), "trial %d: %g with samples, %g without", trial, b, a);
    moeplace_placement_destroy(plain);
    moeplace_placement_destroy(p);
    moeplace_topology_destroy(t);
    free(w);
    free(x);
  }
}
END_TEST

START_TEST(test_errors) {
  moeplace_topology *t;
  moeplace_topology_create_shape(&t, 1, 2, 1, 1);
  const double w[2] = {1, 2};
  double x[4] = {1, 2, 3, NAN};
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  ck_assert_int_eq(o.n_samples, 0);
  ck_assert_ptr_null(o.samples);
  moeplace_placement *p = NULL;
  o.n_samples = -1;
  ck_assert_int_eq(moeplace_place(t, 1, 2, 2, w, NULL, &o, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "n_samples"));
  o.n_samples = 2; // samples NULL
  ck_assert_int_eq(moeplace_place(t, 1, 2, 2, w, NULL, &o, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "NULL"));
  o.samples = x;
  ck_assert_int_eq(moeplace_place(t, 1, 2, 2, w, NULL, &o, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "sample 1: load of layer 0 expert 1"));
  x[3] = -1;
  ck_assert_int_eq(moeplace_place(t, 1, 2, 2, w, NULL, &o, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_null(p);
  x[3] = 4;
  ck_assert_int_eq(moeplace_place(t, 1, 2, 2, w, NULL, &o, &p, NULL), MOEPLACE_OK);
  moeplace_placement_destroy(p);
  moeplace_topology_destroy(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("samples");
  TCase *tc = tcase_create("core");
  tcase_add_checked_fixture(tc, reseed, NULL);
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_formula_by_hand);
  tcase_add_test(tc, test_bursting_experts_split);
  tcase_add_test(tc, test_fresh_never_worse);
  tcase_add_test(tc, test_errors);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
