/* Unit tests of the replay engine against hand-computed figures. */
#include <math.h>

#include <moeplace.h>

#include <jansson.h>

#include "common/json_file.h"
#include "common/warmup.h"
#include "replay/eplb.h"
#include "replay/replay.h"
#include "tests/test_util.h"

/* Replays `text` on one node of `ranks` ranks with the sw_avg predictor
 * and the given warm-up (MP_REPLAY_WARMUP_AUTO: the default). */
static int replay_text(const char *text, int ranks, int slots, int interval, int window,
                       int warmup, mp_replay_result *res) {
  moeplace_trace *t;
  moeplace_topology *topo;
  ck_assert_int_eq(moeplace_trace_open_memory(&t, text, strlen(text), "t.csv"), 0);
  ck_assert_int_eq(moeplace_topology_create_shape(&topo, 1, ranks, 1, 1), 0);
  mp_replay_config cfg;
  mp_replay_config_init(&cfg);
  cfg.slots = slots;
  cfg.interval = interval;
  cfg.window = window;
  cfg.predictor = "sw_avg";
  cfg.warmup = warmup;
  memset(res, 0, sizeof *res);
  int rc = mp_replay_run(t, topo, &cfg, res);
  moeplace_trace_close(t);
  moeplace_topology_destroy(topo);
  return rc;
}

/* Two experts, two ranks with one slot each: every placement puts one
 * expert per rank, so every policy's imbalance is max(a,b) / ((a+b)/2) of
 * each step, and nothing ever moves. */
START_TEST(two_by_two_by_hand) {
  static const char text[] = "step,layer,e0,e1\n"
                             "0,0,30,10\n1,0,30,10\n2,0,20,20\n3,0,10,30\n"
                             "4,0,30,10\n5,0,30,10\n6,0,20,20\n7,0,10,30\n";
  mp_replay_result res;
  ck_assert_int_eq(replay_text(text, 2, 1, 4, 2, MP_REPLAY_WARMUP_AUTO, &res), 0);
  ck_assert_int_eq(res.steps, 8);
  const double want = (1.5 + 1.5 + 1.0 + 1.5) * 2 / 8; /* 30/20, 30/20, 20/20, 30/20 */
  for (int p = 0; p < MP_POLICY_COUNT; p++) {
    ck_assert_double_eq_tol(res.policy[p].imbalance, want, 1e-12);
    ck_assert_int_eq(res.policy[p].moves, 0);
    ck_assert(isnan(res.policy[p].gap_to_oracle)); /* static == oracle: undefined */
  }
  ck_assert_int_eq(res.policy[MP_POLICY_ORACLE].decisions, 2);
  ck_assert_int_eq(res.policy[MP_POLICY_MOVING_AVERAGE].decisions, 1);
  ck_assert_int_eq(res.policy[MP_POLICY_STATIC].decisions, 0);
  mp_replay_result_free(&res);
}
END_TEST

/* One hot expert and two ranks with two slots: the oracle replicates it
 * and splits its tokens, reaching perfect balance. Static (the placement for
 * uniform loads) replicates one of the three experts; since the hot expert
 * changes half-way, it is wrong for at least one half whichever it chose. */
START_TEST(oracle_balances_skew) {
  static const char text[] = "step,layer,e0,e1,e2\n"
                             "0,0,60,10,10\n1,0,60,10,10\n2,0,10,10,60\n3,0,10,10,60\n";
  mp_replay_result res;
  ck_assert_int_eq(replay_text(text, 2, 2, 2, 1, MP_REPLAY_WARMUP_AUTO, &res), 0);
  ck_assert_double_eq_tol(res.policy[MP_POLICY_ORACLE].imbalance, 1.0, 1e-9);
  /* at best 40/40 in one half and 65/40 in the other */
  ck_assert(res.policy[MP_POLICY_STATIC].imbalance >= (1.0 + 65.0 / 40) / 2 - 1e-9);
  ck_assert_double_eq_tol(res.policy[MP_POLICY_ORACLE].gap_to_oracle, 0.0, 1e-12);
  mp_replay_result_free(&res);
}
END_TEST

START_TEST(rejects_bad_config) {
  static const char text[] = "step,layer,e0,e1,e2\n0,0,1,1,1\n";
  moeplace_trace *t;
  ck_assert_int_eq(moeplace_trace_open_memory(&t, text, strlen(text), "t.csv"), 0);
  moeplace_topology *topo;
  ck_assert_int_eq(moeplace_topology_create_shape(&topo, 1, 2, 1, 1), 0);
  mp_replay_config cfg;
  mp_replay_config_init(&cfg);
  mp_replay_result res = {0};
  cfg.slots = 1; /* 2 slots for 3 experts */
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, &res), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "cannot hold"));
  cfg.slots = 2;
  cfg.interval = 15; /* not a multiple of the window (10) */
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, &res), MOEPLACE_ERR_ARG);
  /* The library names the config field, never a tool's flag. */
  ck_assert_str_eq(moeplace_last_error(),
                   "replay: interval (15) must be a positive multiple of the window (10)");
  cfg.interval = 20;
  cfg.horizon = 25;
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, &res), MOEPLACE_ERR_ARG);
  cfg.horizon = 0;
  cfg.warmup = 5; /* not a multiple of the window */
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, &res), MOEPLACE_ERR_ARG);
  ck_assert_str_eq(moeplace_last_error(), "replay: warmup (5) must be 0, auto or a multiple of "
                   "the window (10) below the interval (20)");
  cfg.warmup = 20; /* not below the interval */
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, &res), MOEPLACE_ERR_ARG);
  cfg.warmup = 0;
  cfg.step_time_s = -1;
  /* The header says: free the result also after a failure. A result the
   * caller did not zero must be safe to free after a rejected config too. */
  res.policy[0].log = (mp_decision_record *)&res; /* not heap memory */
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, &res), MOEPLACE_ERR_ARG);
  ck_assert_ptr_null(res.policy[0].log);
  mp_replay_result_free(&res);
  ck_assert_int_eq(mp_replay_run(t, topo, &cfg, NULL), MOEPLACE_ERR_ARG);
  moeplace_trace_close(t);
  moeplace_topology_destroy(topo);
}
END_TEST

/* An interval far longer than the trace: the block grows as its steps are
 * read (past its first 1024 steps, twice here), so the replay costs the
 * steps there are, and one block of the whole trace gives the figures of an
 * interval of exactly its length (warm-up off: moeplace's horizon is the
 * interval, so only it would differ). */
START_TEST(interval_longer_than_trace) {
  enum { STEPS = 2500 };
  char *text = malloc(STEPS * 40 + 64), *p = text;
  ck_assert_ptr_nonnull(text);
  p += sprintf(p, "step,layer,e0,e1,e2\n");
  for (int s = 0; s < STEPS; s++)
    p += sprintf(p, "%d,0,%d,%d,%d\n", s, 10 + s % 7, 20 + (s / 100) % 13, 5 + (s * s) % 11);
  mp_replay_result res[2];
  const int interval[2] = {STEPS, 1000000000};
  for (int i = 0; i < 2; i++)
    ck_assert_int_eq(replay_text(text, 2, 2, interval[i], 10, 0, &res[i]), 0);
  ck_assert_int_eq(res[1].steps, STEPS);
  for (int pol = 0; pol < MP_POLICY_COUNT; pol++) {
    const mp_policy_result *a = &res[0].policy[pol], *b = &res[1].policy[pol];
    ck_assert_double_eq(a->imbalance, b->imbalance);
    ck_assert_int_eq(a->decisions, b->decisions);
    ck_assert_int_eq(a->moves, b->moves);
    ck_assert_double_eq(a->migration_s, b->migration_s);
  }
  mp_replay_result_free(&res[0]);
  mp_replay_result_free(&res[1]);
  free(text);
}
END_TEST

/* Warm-up (cfg.warmup): one expert is hot from the first step on; the
 * initial placement (uniform loads) cannot know it. With a warm-up at step
 * 4 the moeplace policy decides there, from the two windows seen, and runs
 * balanced for the rest of the first interval; without, it waits for step
 * 16. Same figures for the other policies, which have no warm-up. */
static void warmup_run_interval(int warmup, int interval, mp_replay_result *res) {
  char text[2048] = "step,layer,e0,e1,e2,e3\n";
  for (int s = 0; s < 32; s++)
    snprintf(text + strlen(text), sizeof text - strlen(text), "%d,0,10,10,10,90\n", s);
  ck_assert_int_eq(replay_text(text, 2, 3, interval, 2, warmup, res), 0);
}

static void warmup_run(int warmup, mp_replay_result *res) { warmup_run_interval(warmup, 16, res); }

/* The automatic warm-up step (the replay's and the runtime's default): two
 * windows, none unless below the interval; a replay with it decides there
 * and each time the steps seen have doubled, below the interval. */
START_TEST(warmup_auto) {
  // mp_warmup_decides(step, warmup, interval): warmup * 2^j < interval
  const int want[] = {50, 100, 200, 400};
  for (int step = 0, n = 0; step <= 1000; step++) {
    const int d = mp_warmup_decides(step, 50, 500);
    ck_assert_int_eq(d, n < 4 && step == want[n]);
    n += d;
  }
  ck_assert_int_eq(mp_warmup_decides(30, 30, 500), 1);
  ck_assert_int_eq(mp_warmup_decides(90, 30, 500), 0); // 3 x 30: not a doubling
  ck_assert_int_eq(mp_warmup_decides(480, 30, 500), 1);
  ck_assert_int_eq(mp_warmup_decides(10, 0, 500), 0);  // off
  ck_assert_int_eq(mp_warmup_decides(0, 0, 500), 0);
  ck_assert_int_eq(mp_warmup_auto(500, 10, 0), 20);
  ck_assert_int_eq(mp_warmup_auto(30, 10, 0), 20);
  ck_assert_int_eq(mp_warmup_auto(16, 2, 0), 4);
  ck_assert_int_eq(mp_warmup_auto(20, 10, 0), 0); // not below the interval
  ck_assert_int_eq(mp_warmup_auto(0, 10, 0), 0);
  ck_assert_int_eq(mp_warmup_auto(500, 0, 0), 0);
  ck_assert_int_eq(mp_warmup_auto(500, 10, 10), 20); // a lag under two windows
  ck_assert_int_eq(mp_warmup_auto(500, 10, 30), 30); // the lag, when longer
  ck_assert_int_eq(mp_warmup_auto(30, 10, 30), 0);
  mp_replay_config cfg;
  mp_replay_config_init(&cfg);
  ck_assert_int_eq(cfg.warmup, MP_REPLAY_WARMUP_AUTO);
  mp_replay_result res;
  warmup_run_interval(MP_REPLAY_WARMUP_AUTO, 40, &res); // 32 steps: warm-up at 4, 8, 16
  const mp_policy_result *m = &res.policy[MP_POLICY_MOEPLACE];
  ck_assert_int_eq(m->decisions, 3);
  ck_assert_int_eq(m->log[0].step, 4);
  ck_assert_int_eq(m->log[1].step, 8);
  ck_assert_int_eq(m->log[2].step, 16);
  mp_replay_result_free(&res);
}
END_TEST

START_TEST(warmup_decides_early) {
  mp_replay_result off, on;
  warmup_run(0, &off);
  warmup_run(4, &on);
  const mp_policy_result *m0 = &off.policy[MP_POLICY_MOEPLACE], *m1 = &on.policy[MP_POLICY_MOEPLACE];
  ck_assert_int_eq(m0->decisions, 1);
  ck_assert_int_eq(m0->log[0].step, 16);
  // warm-up decisions at 4 and 8 (twice 4), then the interval's at 16
  ck_assert_int_eq(m1->decisions, 3);
  ck_assert_int_eq(m1->log[0].step, 4);
  ck_assert_int_eq(m1->log[1].step, 8);
  ck_assert_int_eq(m1->log[2].step, 16);
  ck_assert_int_gt(m1->log[0].moves, 0);
  // balanced from step 4: 28 of 32 steps at the oracle's 1.0 instead of 16
  ck_assert_double_eq_tol(on.policy[MP_POLICY_ORACLE].imbalance, 1.0, 1e-9);
  const double first = off.policy[MP_POLICY_STATIC].imbalance; // the initial placement's
  ck_assert_double_gt(first, 1.1);
  ck_assert_double_eq_tol(m0->imbalance, (16 * first + 16) / 32, 1e-9);
  ck_assert_double_eq_tol(m1->imbalance, (4 * first + 28) / 32, 1e-9);
  for (int p = 0; p < MP_POLICY_COUNT; p++)
    if (p != MP_POLICY_MOEPLACE)
      ck_assert_double_eq_tol(on.policy[p].imbalance, off.policy[p].imbalance, 1e-12);
  mp_replay_result_free(&off);
  mp_replay_result_free(&on);
}
END_TEST

/* replay/eplb.c against scripts/fixtures/make_eplb_fixture.py (the numpy
 * port of EPLB's published algorithm in scripts/eplb_reference.py): the
 * same phy2log, slot for slot, global and hierarchical. */
START_TEST(eplb_matches_numpy_reference) {
  json_t *doc;
  ck_assert_int_eq(mp_json_read_file(test_src_path("tests/data/eplb_fixture.json"), &doc), 0);
  json_t *cases = json_object_get(doc, "cases");
  ck_assert_int_ge(json_array_size(cases), 6);
  for (size_t i = 0; i < json_array_size(cases); i++) {
    json_t *c = json_array_get(cases, i), *loads = json_object_get(c, "loads");
    const int R = (int)json_integer_value(json_object_get(c, "ranks"));
    const int S = (int)json_integer_value(json_object_get(c, "slots"));
    const int N = (int)json_integer_value(json_object_get(c, "nodes"));
    const int G = (int)json_integer_value(json_object_get(c, "groups"));
    for (size_t l = 0; l < json_array_size(loads); l++) {
      json_t *row = json_array_get(loads, l);
      json_t *want = json_array_get(json_object_get(c, "phy2log"), l);
      const int E = (int)json_array_size(row);
      double w[64];
      int got[256];
      for (int e = 0; e < E; e++) w[e] = json_number_value(json_array_get(row, e));
      ck_assert_int_eq(mp_eplb_layer(w, E, R, S, N, G, got), MOEPLACE_OK);
      for (int p = 0; p < R * S; p++)
        ck_assert_msg(got[p] == json_integer_value(json_array_get(want, p)),
                      "%s layer %zu slot %d: %d, numpy %lld",
                      json_string_value(json_object_get(c, "name")), l, p, got[p],
                      (long long)json_integer_value(json_array_get(want, p)));
    }
  }
  json_decref(doc);
  double w[4] = {1, 2, 3, 4};
  int out[4];
  ck_assert_int_eq(mp_eplb_layer(w, 4, 3, 1, 1, 1, out), MOEPLACE_ERR_ARG); // 3 slots < 4 experts
}
END_TEST

int main(void) {
  Suite *s = suite_create("replay");
  TCase *tc = tcase_create("replay");
  tcase_add_test(tc, two_by_two_by_hand);
  tcase_add_test(tc, oracle_balances_skew);
  tcase_add_test(tc, rejects_bad_config);
  tcase_add_test(tc, interval_longer_than_trace);
  tcase_add_test(tc, eplb_matches_numpy_reference);
  tcase_add_test(tc, warmup_decides_early);
  tcase_add_test(tc, warmup_auto);
  suite_add_tcase(s, tc);
  return test_run_suite(s);
}
