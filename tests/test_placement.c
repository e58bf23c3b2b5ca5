/* Placement engine: invariants on randomised instances, exactness on small
 * ones, migration-awareness, the byte budget, topology files, JSON files,
 * the migration plan and input errors. */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <moeplace.h>

#include "tests/exact_place.h"

static uint64_t rs = 12345;
static double urand(void) {
  rs ^= rs << 13;
  rs ^= rs >> 7;
  rs ^= rs << 17;
  return ((double)(rs >> 11) + 0.5) / 9007199254740992.0;
}
static double lognormal(double sigma) {
  return exp(sigma * sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()));
}

/* Independent recomputation of metrics.md's imbalance from the slot arrays. */
static double recompute_imbalance(const moeplace_placement *p, const double *w) {
  int L = moeplace_placement_layers(p), E = moeplace_placement_experts(p);
  int R = moeplace_placement_ranks(p), S = moeplace_placement_slots(p);
  double num = 0, den = 0;
  for (int l = 0; l < L; l++) {
    const int *ph = moeplace_placement_phy2log_const(p, l);
    const double *sh = moeplace_placement_share_const(p, l);
    double mx = 0, tot = 0;
    for (int r = 0; r < R; r++) {
      double s = 0;
      for (int k = 0; k < S; k++)
        if (ph[r * S + k] >= 0) s += sh[r * S + k] * w[l * E + ph[r * S + k]];
      if (s > mx) mx = s;
    }
    for (int e = 0; e < E; e++) tot += w[l * E + e];
    num += mx;
    den += tot / R;
  }
  return den > 0 ? num / den : 1.0;
}

/* Checks every invariant by hand (not through the library's validator). */
static void check_invariants(const moeplace_placement *p) {
  int L = moeplace_placement_layers(p), E = moeplace_placement_experts(p);
  int R = moeplace_placement_ranks(p), S = moeplace_placement_slots(p);
  for (int l = 0; l < L; l++) {
    const int *ph = moeplace_placement_phy2log_const(p, l);
    const double *sh = moeplace_placement_share_const(p, l);
    double *sum = calloc(E, sizeof *sum);
    int *cnt = calloc(E, sizeof *cnt), *lc = calloc(E, sizeof *lc);
    for (int r = 0; r < R; r++)
      for (int k = 0; k < S; k++) {
        int e = ph[r * S + k];
        ck_assert_int_ge(e, -1);
        ck_assert_int_lt(e, E);
        if (e < 0) {
          ck_assert(sh[r * S + k] == 0);
          continue;
        }
        for (int k2 = 0; k2 < k; k2++) ck_assert_int_ne(ph[r * S + k2], e); // no duplicate
        ck_assert(sh[r * S + k] >= 0 && sh[r * S + k] <= 1 + 1e-12);
        sum[e] += sh[r * S + k];
        cnt[e]++;
      }
    moeplace_placement_logcnt(p, l, lc);
    for (int e = 0; e < E; e++) {
      ck_assert_int_ge(cnt[e], 1); // every expert present
      ck_assert_int_eq(cnt[e], lc[e]);
      ck_assert_msg(fabs(sum[e] - 1) < 1e-9, "layer %d expert %d shares sum %g", l, e, sum[e]);
    }
    free(sum);
    free(cnt);
    free(lc);
  }
  ck_assert_int_eq(moeplace_placement_validate(p), MOEPLACE_OK);
}

START_TEST(test_random_invariants) {
  for (int trial = 0; trial < 300; trial++) {
    int R = 1 + (int)(urand() * 12), S = 1 + (int)(urand() * 5), L = 1 + (int)(urand() * 3);
    int E = 1 + (int)(urand() * R * S);
    int nodes = R % 2 == 0 && urand() < 0.5 ? 2 : 1;
    moeplace_topology *t;
    ck_assert_int_eq(moeplace_topology_create_shape(&t, nodes, R / nodes, 1, 1), 0);
    double *w = malloc((size_t)L * E * sizeof *w);
    int kind = trial % 4;
    for (int i = 0; i < L * E; i++)
      w[i] = kind == 0 ? 1000 * lognormal(1.0)
             : kind == 1 ? (urand() < 0.3 ? 0 : 100 * urand())
             : kind == 2 ? 1.0
                         : 1000 * lognormal(2.0);
    moeplace_placement *p;
    moeplace_place_stats st;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, NULL, &p, &st), 0);
    check_invariants(p);
    double imb = recompute_imbalance(p, w);
    ck_assert_msg(fabs(imb - st.imbalance) < 1e-9, "imbalance %g vs reported %g", imb,
                  st.imbalance);
    ck_assert(st.lower_bound >= 1 - 1e-12);
    ck_assert_msg(st.lower_bound <= st.imbalance + 1e-9, "bound %g above imbalance %g",
                  st.lower_bound, st.imbalance);
    // the optimal shares of the final assignment: water-filling must reach them
    if (R <= 12 && E <= 64) {
      for (int l = 0; l < L; l++) {
        const int *ph = moeplace_placement_phy2log_const(p, l);
        double opt = mp_place_assignment_optimum(w + l * E, E, R, S, ph);
        double rl[16], mx = 0;
        moeplace_placement_rank_loads(p, l, w + l * E, rl);
        for (int r = 0; r < R; r++) mx = rl[r] > mx ? rl[r] : mx;
        ck_assert_msg(mx <= opt * (1 + 1e-4) + 1e-9, "shares not optimal: max %g, optimum %g",
                      mx, opt);
      }
    }
    // the same placement as current: nothing to gain, nothing moves
    moeplace_placement *q;
    moeplace_place_stats s2;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, p, NULL, &q, &s2), 0);
    check_invariants(q);
    // a move is made only when it improves the balance
    if (s2.moves > 0) ck_assert(s2.imbalance < st.imbalance);
    else ck_assert_int_eq(s2.kept_current, 1);
    moeplace_placement_destroy(q);
    moeplace_placement_destroy(p);
    moeplace_topology_destroy(t);
    free(w);
  }
}
END_TEST

/* Exactness: the heuristic against branch and bound on small instances. */
START_TEST(test_exact_small) {
  double worst = 0, sum_gap = 0;
  int n = 0;
  for (int trial = 0; trial < 150; trial++) {
    int R = 2 + (int)(urand() * 2), S = 1 + (int)(urand() * 3);
    int E = 1 + (int)(urand() * (R * S < 6 ? R * S : 6));
    double w[8];
    for (int e = 0; e < E; e++) w[e] = 100 * lognormal(1.0);
    double ex = mp_place_exact(w, E, R, S);
    ck_assert(ex > 0);
    moeplace_topology *t;
    moeplace_topology_create_shape(&t, 1, R, 1, 1);
    moeplace_placement *p;
    moeplace_place_stats st;
    ck_assert_int_eq(moeplace_place(t, 1, E, S, w, NULL, NULL, &p, &st), 0);
    double rl[4], mx = 0, tot = 0;
    moeplace_placement_rank_loads(p, 0, w, rl);
    for (int r = 0; r < R; r++) mx = rl[r] > mx ? rl[r] : mx;
    for (int e = 0; e < E; e++) tot += w[e];
    ck_assert_msg(mx >= ex * (1 - 1e-9), "heuristic %g below the exact optimum %g", mx, ex);
    // the reported lower bound is a true bound
    ck_assert_msg(st.lower_bound * tot / R <= ex * (1 + 1e-9), "bound %g above optimum %g",
                  st.lower_bound * tot / R, ex);
    double gap = mx / ex - 1;

    if (gap > worst) worst = gap;
    sum_gap += gap;
    n++;
    moeplace_placement_destroy(p);
    moeplace_topology_destroy(t);
  }
  printf("exact: %d instances, mean gap %.4f%%, worst gap %.4f%%\n", n, 100 * sum_gap / n,
         100 * worst);
  ck_assert_msg(sum_gap / n < 0.01, "mean gap to the exact optimum %.4f", sum_gap / n);
  ck_assert_msg(worst < 0.10, "worst gap to the exact optimum %.4f", worst);
}
END_TEST

/* Migration-awareness: tiny load changes move nothing; large ones move
 * far less than a from-scratch placement at comparable balance. */
START_TEST(test_migration_aware) {
  const int L = 4, E = 32, S = 5;
  moeplace_topology *t;
  moeplace_topology_create_shape(&t, 2, 4, 1, 1);
  double w[L * E], w2[L * E];
  for (int i = 0; i < L * E; i++) w[i] = 1000 * lognormal(1.0);
  moeplace_placement *p0, *p1;
  moeplace_place_stats st;
  ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, NULL, &p0, &st), 0);
  for (int i = 0; i < L * E; i++) w2[i] = w[i] * (1 + 1e-5 * (urand() - 0.5));
  ck_assert_int_eq(moeplace_place(t, L, E, S, w2, p0, NULL, &p1, &st), 0);
  ck_assert_int_eq(st.moves, 0);
  ck_assert_int_eq(st.kept_current, 1);
  ck_assert(st.imbalance < 1.01);
  moeplace_placement_destroy(p1);
  // a 5% drift (the traces drift less between 500-step intervals)
  for (int i = 0; i < L * E; i++) w2[i] = w[i] * (1 + 0.1 * (urand() - 0.5));
  ck_assert_int_eq(moeplace_place(t, L, E, S, w2, p0, NULL, &p1, &st), 0);
  check_invariants(p1);
  moeplace_placement *f;
  moeplace_place_stats sf;
  ck_assert_int_eq(moeplace_place(t, L, E, S, w2, NULL, NULL, &f, &sf), 0);
  moeplace_move_stats d;
  ck_assert_int_eq(moeplace_placement_diff(p0, f, t, 1.0, &d), 0);
  printf("drift 5%%: aware moves %lld imbalance %.5f; from scratch moves %lld imbalance %.5f\n",
         (long long)st.moves, st.imbalance, (long long)d.moves, sf.imbalance);
  ck_assert_int_le(st.moves * 5, d.moves);
  ck_assert(st.imbalance <= sf.imbalance + 0.01);
  // migration plan: one transfer per move, from an old holder to a new one
  moeplace_transfer *tr;
  size_t n;
  ck_assert_int_eq(moeplace_migration_plan(p0, p1, t, 1.0, &tr, &n), 0);
  ck_assert_int_eq((int64_t)n, st.moves);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(moeplace_placement_phy2log_const(p0, tr[i].layer)[tr[i].src_slot],
                     tr[i].expert);
    ck_assert_int_eq(moeplace_placement_phy2log_const(p1, tr[i].layer)[tr[i].dst_slot],
                     tr[i].expert);
    ck_assert_int_eq(tr[i].src_slot / S, tr[i].src_rank);
    ck_assert_int_eq(tr[i].dst_slot / S, tr[i].dst_rank);
    ck_assert_int_ne(tr[i].src_rank, tr[i].dst_rank);
  }
  moeplace_transfers_free(tr);
  moeplace_placement_destroy(f);
  moeplace_placement_destroy(p1);
  moeplace_placement_destroy(p0);
  moeplace_topology_destroy(t);
}
END_TEST

/* The byte budget is a hard cap, whatever the drift. */
START_TEST(test_budget) {
  for (int trial = 0; trial < 60; trial++) {
    int R = 2 + (int)(urand() * 10), S = 1 + (int)(urand() * 4), L = 1 + (int)(urand() * 3);
    int E = 1 + (int)(urand() * R * S);
    moeplace_topology *t;
    moeplace_topology_create_shape(&t, 1, R, 1, 1);
    double *w = malloc((size_t)L * E * sizeof *w), *w2 = malloc((size_t)L * E * sizeof *w);
    for (int i = 0; i < L * E; i++) {
      w[i] = 100 * lognormal(1.5);
      w2[i] = 100 * lognormal(1.5); // unrelated loads: a large rebalance is worth it
    }
    moeplace_placement *p0, *p1;
    moeplace_place_stats st;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, NULL, &p0, &st), 0);
    moeplace_place_options o;
    moeplace_place_options_init(&o);
    o.expert_bytes = 1000;
    o.byte_budget = 1000.0 * (trial % 4); // 0 to 3 replicas
    ck_assert_int_eq(moeplace_place(t, L, E, S, w2, p0, &o, &p1, &st), 0);
    check_invariants(p1);
    ck_assert_msg(st.bytes_moved <= o.byte_budget, "moved %g over budget %g", st.bytes_moved,
                  o.byte_budget);
    moeplace_move_stats d;
    moeplace_placement_diff(p0, p1, t, o.expert_bytes, &d);
    ck_assert(d.bytes_moved <= o.byte_budget);
    ck_assert_int_eq(d.moves, st.moves);
    if (o.byte_budget == 0) ck_assert_int_eq(st.moves, 0);
    moeplace_placement_destroy(p0);
    moeplace_placement_destroy(p1);
    moeplace_topology_destroy(t);
    free(w);
    free(w2);
  }
}
END_TEST

/* A migration weight large enough makes every move unprofitable. */
START_TEST(test_weight_keeps_current) {
  moeplace_topology *t;
  moeplace_topology_create_shape(&t, 2, 4, 1, 1);
  const int L = 2, E = 16, S = 3;
  double w[L * E], w2[L * E];
  for (int i = 0; i < L * E; i++) {
    w[i] = 100 * lognormal(1);
    w2[i] = 100 * lognormal(1);
  }
  moeplace_placement *p0, *p1;
  moeplace_place_stats st;
  ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, NULL, &p0, &st), 0);
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.expert_bytes = 1e6;
  o.migration_weight = 1.0; // one byte costs one token: nothing pays
  ck_assert_int_eq(moeplace_place(t, L, E, S, w2, p0, &o, &p1, &st), 0);
  ck_assert_int_eq(st.moves, 0);
  ck_assert_int_eq(st.kept_current, 1);
  ck_assert(fabs(st.imbalance - st.current_imbalance) < 1e-9);
  moeplace_placement_destroy(p1);
  o.migration_weight = 0;
  ck_assert_int_eq(moeplace_place(t, L, E, S, w2, p0, &o, &p1, &st), 0);
  ck_assert(st.imbalance <= st.current_imbalance + 1e-12);
  moeplace_placement_destroy(p1);
  moeplace_placement_destroy(p0);
  moeplace_topology_destroy(t);
}
END_TEST

START_TEST(test_errors) {
  moeplace_topology *t;
  moeplace_topology_create_shape(&t, 1, 2, 1, 1);
  double w[5] = {1, 2, 3, 4, 5};
  moeplace_placement *p;
  ck_assert_int_eq(moeplace_place(t, 1, 5, 2, w, NULL, NULL, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "more experts"));
  w[2] = -1;
  ck_assert_int_eq(moeplace_place(t, 1, 4, 2, w, NULL, NULL, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "loads must be"));
  w[2] = NAN;
  ck_assert_int_eq(moeplace_place(t, 1, 4, 2, w, NULL, NULL, &p, NULL), MOEPLACE_ERR_ARG);
  w[2] = 3;
  // current of the wrong shape
  moeplace_placement *c;
  ck_assert_int_eq(moeplace_placement_create(&c, 1, 4, 2, 3), 0);
  ck_assert_int_eq(moeplace_place(t, 1, 4, 2, w, c, NULL, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "shape"));
  moeplace_placement_destroy(c);
  // current with a duplicate on one rank
  ck_assert_int_eq(moeplace_placement_create(&c, 1, 3, 2, 2), 0);
  int *ph = moeplace_placement_phy2log(c, 0);
  double *sh = moeplace_placement_share(c, 0);
  int bad[4] = {0, 0, 1, 2};
  double bs[4] = {0.5, 0.5, 1, 1};
  memcpy(ph, bad, sizeof bad);
  memcpy(sh, bs, sizeof bs);
  ck_assert_int_eq(moeplace_place(t, 1, 3, 2, w, c, NULL, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "twice"));
  // a missing expert
  int miss[4] = {0, -1, 1, -1};
  double ms[4] = {1, 0, 1, 0};
  memcpy(ph, miss, sizeof miss);
  memcpy(sh, ms, sizeof ms);
  ck_assert_int_eq(moeplace_placement_validate(c), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "no replica"));
  moeplace_placement_destroy(c);
  moeplace_topology_destroy(t);
}
END_TEST

static char *write_tmp(const char *text) {
  static char path[64];
  strcpy(path, "/tmp/mp_topoXXXXXX");
  int fd = mkstemp(path);
  ck_assert_int_ge(fd, 0);
  ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
  close(fd);
  return path;
}

START_TEST(test_topology_file) {
  moeplace_topology *t;
  char *f = write_tmp("# two nodes\nnodes 2\nranks_per_node 4\npackages_per_node 2\n"
                      "cost other_node 20\n");
  ck_assert_int_eq(moeplace_topology_load(&t, f), 0);
  ck_assert_int_eq(moeplace_topology_ranks(t), 8);
  ck_assert_int_eq(moeplace_topology_nodes(t), 2);
  ck_assert_int_eq(moeplace_topology_class(t, 0, 1), MOEPLACE_LINK_SAME_NUMA);
  ck_assert_int_eq(moeplace_topology_class(t, 0, 2), MOEPLACE_LINK_SAME_NODE);
  ck_assert_int_eq(moeplace_topology_class(t, 0, 4), MOEPLACE_LINK_OTHER_NODE);
  ck_assert(moeplace_topology_cost(t, MOEPLACE_LINK_OTHER_NODE) == 20);
  moeplace_topology_destroy(t);
  unlink(f);
  f = write_tmp("rank 0 0 0 0\nrank 1 0 0 1\nrank 2 5 0 0\n");
  ck_assert_int_eq(moeplace_topology_load(&t, f), 0);
  ck_assert_int_eq(moeplace_topology_nodes(t), 2);
  ck_assert_int_eq(moeplace_topology_class(t, 0, 1), MOEPLACE_LINK_SAME_PACKAGE);
  ck_assert_int_eq(moeplace_topology_class(t, 1, 2), MOEPLACE_LINK_OTHER_NODE);
  moeplace_topology_destroy(t);
  unlink(f);
  f = write_tmp("nodes 2\nranks_per_node x\n");
  ck_assert_int_eq(moeplace_topology_load(&t, f), MOEPLACE_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), ":2:"));
  unlink(f);
  f = write_tmp("rank 0 0 0 0\nrank 2 0 0 0\n");
  ck_assert_int_eq(moeplace_topology_load(&t, f), MOEPLACE_ERR_FORMAT);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), ":2:"));
  unlink(f);
  f = write_tmp("nodes 2\ncost far 3\n");
  ck_assert_int_eq(moeplace_topology_load(&t, f), MOEPLACE_ERR_FORMAT);
  unlink(f);
}
END_TEST

/* A rank outside the topology (or no topology) is an error, not a read out
 * of bounds: MOEPLACE_LINK_INVALID (-1) with the error recorded. */
START_TEST(test_topology_class_bad_rank) {
  moeplace_topology *t;
  ck_assert_int_eq(moeplace_topology_create_shape(&t, 2, 4, 1, 1), 0);
  ck_assert_int_eq(moeplace_topology_class(t, 0, 7), MOEPLACE_LINK_OTHER_NODE);
  const int bad[][2] = {{0, 8}, {8, 0}, {-1, 0}, {3, -1}, {8, 8}, {-1, -1}, {0, 1 << 30}};
  for (size_t k = 0; k < sizeof bad / sizeof bad[0]; k++) {
    moeplace_topology_set_cost(NULL, MOEPLACE_LINK_SAME_NUMA, 1); // another error first
    ck_assert_msg((int)moeplace_topology_class(t, bad[k][0], bad[k][1]) == -1,
                  "class(%d, %d) should be invalid", bad[k][0], bad[k][1]);
    ck_assert_msg(strstr(moeplace_last_error(), "out of range"), "error: '%s'",
                  moeplace_last_error());
  }
  moeplace_topology_rank_node(t, -5); // another error first
  ck_assert((int)moeplace_topology_class(NULL, 0, 0) == -1);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "NULL"));
  moeplace_topology_destroy(t);
}
END_TEST

/* The cluster-file parser keeps no hidden state: a caller half-way through
 * its own strtok() keeps its place across moeplace_topology_load (the
 * library used strtok, which reset it), ... */
START_TEST(test_topology_load_keeps_strtok) {
  char *f = write_tmp("nodes 2\nranks_per_node 4\n");
  char buf[] = "a b c";
  ck_assert_str_eq(strtok(buf, " "), "a");
  moeplace_topology *t;
  ck_assert_int_eq(moeplace_topology_load(&t, f), 0);
  moeplace_topology_destroy(t);
  char *next = strtok(NULL, " ");
  ck_assert_ptr_nonnull(next);
  ck_assert_str_eq(next, "b");
  unlink(f);
}
END_TEST

/* ... and two threads can load cluster files at the same time (with strtok
 * they tokenised each other's lines). */
typedef struct load_job {
  const char *path;
  int ranks, nodes, failures;
} load_job;

static void *load_many(void *arg) {
  load_job *j = arg;
  for (int it = 0; it < 1000; it++) {
    moeplace_topology *t;
    if (moeplace_topology_load(&t, j->path)) {
      j->failures++;
      continue;
    }
    if (moeplace_topology_ranks(t) != j->ranks || moeplace_topology_nodes(t) != j->nodes)
      j->failures++;
    moeplace_topology_destroy(t);
  }
  return NULL;
}

START_TEST(test_topology_load_threads) {
  char table[16384] = "# a rank table\n", shape[16384] = "";
  for (int r = 0; r < 256; r++)
    snprintf(table + strlen(table), sizeof table - strlen(table), "rank %d %d %d %d  # r\n", r,
             r / 16, r / 8 % 2, r % 2);
  for (int k = 0; k < 128; k++)
    snprintf(shape + strlen(shape), sizeof shape - strlen(shape),
             "nodes   3\nranks_per_node\t5 # again\ncost other_node 9\n");
  char pa[64], pb[64];
  strcpy(pa, write_tmp(table));
  strcpy(pb, write_tmp(shape));
  load_job a = {pa, 256, 16, 0}, b = {pb, 15, 3, 0};
  pthread_t ta, tb;
  ck_assert_int_eq(pthread_create(&ta, NULL, load_many, &a), 0);
  ck_assert_int_eq(pthread_create(&tb, NULL, load_many, &b), 0);
  pthread_join(ta, NULL);
  pthread_join(tb, NULL);
  ck_assert_int_eq(a.failures, 0);
  ck_assert_int_eq(b.failures, 0);
  unlink(pa);
  unlink(pb);
}
END_TEST

START_TEST(test_json_roundtrip) {
  moeplace_topology *t;
  moeplace_topology_create_shape(&t, 1, 4, 1, 1);
  double w[2 * 6];
  for (int i = 0; i < 12; i++) w[i] = 10 * lognormal(1);
  moeplace_placement *p, *q;
  moeplace_place_stats st;
  ck_assert_int_eq(moeplace_place(t, 2, 6, 2, w, NULL, NULL, &p, &st), 0);
  char path[] = "/tmp/mp_placeXXXXXX";
  int fd = mkstemp(path);
  close(fd);
  ck_assert_int_eq(moeplace_placement_write_json(p, &st, path), 0);
  ck_assert_int_eq(moeplace_placement_read_json(&q, path), 0);
  for (int l = 0; l < 2; l++)
    for (int i = 0; i < 8; i++) {
      ck_assert_int_eq(moeplace_placement_phy2log_const(p, l)[i],
                       moeplace_placement_phy2log_const(q, l)[i]);
      ck_assert(fabs(moeplace_placement_share_const(p, l)[i] -
                     moeplace_placement_share_const(q, l)[i]) < 1e-12);
    }
  int l2p[6 * 8];
  int mr = moeplace_placement_max_replicas(q);
  ck_assert_int_eq(moeplace_placement_log2phy(q, 0, mr, l2p), 0);
  for (int e = 0; e < 6; e++)
    for (int k = 0; k < mr; k++)
      if (l2p[e * mr + k] >= 0) ck_assert_int_eq(moeplace_placement_phy2log(q, 0)[l2p[e * mr + k]], e);
  moeplace_placement_destroy(q);
  unlink(path);
  moeplace_placement_destroy(p);
  moeplace_topology_destroy(t);
}
END_TEST

/* The plan takes each replica from the closest current holder. */
START_TEST(test_plan_closest_source) {
  moeplace_topology *t;
  ck_assert_int_eq(moeplace_topology_create_shape(&t, 2, 2, 1, 1), 0); // ranks 0,1 | 2,3
  moeplace_placement *a, *b;
  ck_assert_int_eq(moeplace_placement_create(&a, 1, 2, 4, 2), 0);
  ck_assert_int_eq(moeplace_placement_create(&b, 1, 2, 4, 2), 0);
  // old: expert 0 on ranks 0 and 2, expert 1 on rank 1
  int pa[8] = {0, -1, 1, -1, 0, -1, -1, -1};
  double sa[8] = {0.5, 0, 1, 0, 0.5, 0, 0, 0};
  // new: expert 0 also on ranks 1 and 3
  int pb[8] = {0, -1, 1, 0, 0, -1, 0, -1};
  double sb[8] = {0.25, 0, 1, 0.25, 0.25, 0, 0.25, 0};
  memcpy(moeplace_placement_phy2log(a, 0), pa, sizeof pa);
  memcpy(moeplace_placement_share(a, 0), sa, sizeof sa);
  memcpy(moeplace_placement_phy2log(b, 0), pb, sizeof pb);
  memcpy(moeplace_placement_share(b, 0), sb, sizeof sb);
  ck_assert_int_eq(moeplace_placement_validate(a), 0);
  ck_assert_int_eq(moeplace_placement_validate(b), 0);
  moeplace_transfer *tr;
  size_t n;
  ck_assert_int_eq(moeplace_migration_plan(a, b, t, 100, &tr, &n), 0);
  ck_assert_int_eq((int)n, 2);
  for (size_t i = 0; i < n; i++) {
    ck_assert_int_eq(tr[i].expert, 0);
    // rank 1 gets it from rank 0 (same node), rank 3 from rank 2 (same node)
    ck_assert_int_eq(tr[i].src_rank, tr[i].dst_rank == 1 ? 0 : 2);
    ck_assert_int_ne(tr[i].link, MOEPLACE_LINK_OTHER_NODE);
    ck_assert(tr[i].bytes == 100);
  }
  moeplace_transfers_free(tr);
  moeplace_move_stats d;
  ck_assert_int_eq(moeplace_placement_diff(a, b, t, 100, &d), 0);
  ck_assert_int_eq(d.moves, 2);
  ck_assert(d.bytes_moved == 200 && d.cross_node_bytes == 0);
  moeplace_placement_destroy(a);
  moeplace_placement_destroy(b);
  moeplace_topology_destroy(t);
}
END_TEST

/* The plan's rule, by the O(moves x replicas) scan the library used before
 * its index (issue 14, item C): the reference the indexed plan must equal. */
static int ref_class(const int *nd, const int *pk, const int *nu, int a, int b) {
  if (a == b) return MOEPLACE_LINK_SAME_RANK;
  if (!nd || nd[a] != nd[b]) return MOEPLACE_LINK_OTHER_NODE;
  if (pk[a] != pk[b]) return MOEPLACE_LINK_SAME_NODE;
  if (nu[a] != nu[b]) return MOEPLACE_LINK_SAME_PACKAGE;
  return MOEPLACE_LINK_SAME_NUMA;
}

static size_t ref_plan(const int *from, const int *to, int L, int E, int R, int S,
                       const int *nd, const int *pk, const int *nu, moeplace_transfer *out,
                       int *err) {
  int G = R * S;
  int *sent = calloc((size_t)R, sizeof *sent);
  size_t n = 0;
  *err = 0;
  for (int l = 0; l < L && !*err; l++) {
    const int *a = from + (size_t)l * G, *b = to + (size_t)l * G;
    for (int i = 0; i < G; i++) {
      int e = b[i], dr = i / S;
      if (e < 0 || e >= E || a[i] == e) continue;
      int own = -1;
      for (int k = 0; k < S && own < 0; k++)
        if (a[dr * S + k] == e) own = dr * S + k;
      int best = own, bc = MOEPLACE_LINK_SAME_RANK;
      for (int s = 0; own < 0 && s < G; s++) {
        if (a[s] != e) continue;
        int c = ref_class(nd, pk, nu, s / S, dr);
        if (best < 0 || c < bc || (c == bc && sent[s / S] < sent[best / S])) {
          best = s;
          bc = c;
        }
      }
      if (best < 0) {
        *err = 1;
        break;
      }
      if (own < 0) sent[best / S]++;
      out[n++] = (moeplace_transfer){.layer = l, .expert = e, .src_rank = best / S,
                                     .src_slot = best, .dst_rank = dr, .dst_slot = i,
                                     .link = bc, .bytes = 1};
    }
  }
  free(sent);
  return n;
}

/* The indexed plan equals the scan on random placements (replicas of an
 * expert on one rank, empty slots, missing experts) and random topologies. */
START_TEST(test_plan_matches_scan) {
  srand(14);
  for (int trial = 0; trial < 300; trial++) {
    int L = 1 + rand() % 3, E = 1 + rand() % 6, S = 1 + rand() % (E < 3 ? E : 3);
    int R = (E + S - 1) / S + rand() % 24;
    int G = R * S, with_topo = trial % 4 != 0;
    int *nd = malloc((size_t)R * sizeof *nd), *pk = malloc((size_t)R * sizeof *pk),
        *nu = malloc((size_t)R * sizeof *nu);
    for (int r = 0; r < R; r++) {
      nd[r] = rand() % 4;
      pk[r] = rand() % 2;
      nu[r] = rand() % 2;
    }
    moeplace_topology *t = NULL;
    if (with_topo) ck_assert_int_eq(moeplace_topology_create_table(&t, R, nd, pk, nu), 0);
    moeplace_placement *a, *b;
    ck_assert_int_eq(moeplace_placement_create(&a, L, E, R, S), 0);
    ck_assert_int_eq(moeplace_placement_create(&b, L, E, R, S), 0);
    int *pa = malloc((size_t)L * G * sizeof *pa), *pb = malloc((size_t)L * G * sizeof *pb);
    for (int i = 0; i < L * G; i++) {
      pa[i] = rand() % (E + 1) - 1;
      pb[i] = rand() % (E + 1) - 1;
    }
    for (int l = 0; l < L; l++) {
      memcpy(moeplace_placement_phy2log(a, l), pa + (size_t)l * G, (size_t)G * sizeof *pa);
      memcpy(moeplace_placement_phy2log(b, l), pb + (size_t)l * G, (size_t)G * sizeof *pb);
    }
    moeplace_transfer *ref = malloc(((size_t)L * G + 1) * sizeof *ref), *tr = NULL;
    int err;
    size_t nref = ref_plan(pa, pb, L, E, R, S, with_topo ? nd : NULL, pk, nu, ref, &err);
    size_t n = 0;
    int rc = moeplace_migration_plan(a, b, t, 1, &tr, &n);
    ck_assert_msg((rc != 0) == err, "trial %d: rc %d, reference error %d", trial, rc, err);
    if (!err) {
      ck_assert_msg(n == nref, "trial %d: %zu transfers, reference %zu", trial, n, nref);
      for (size_t i = 0; i < n; i++)
        ck_assert_msg(tr[i].layer == ref[i].layer && tr[i].expert == ref[i].expert &&
                          tr[i].src_slot == ref[i].src_slot && tr[i].src_rank == ref[i].src_rank &&
                          tr[i].dst_slot == ref[i].dst_slot && tr[i].link == ref[i].link,
                      "trial %d transfer %zu: source slot %d, reference %d", trial, i,
                      tr[i].src_slot, ref[i].src_slot);
    }
    moeplace_transfers_free(tr);
    free(ref);
    free(pa);
    free(pb);
    free(nd);
    free(pk);
    free(nu);
    moeplace_placement_destroy(a);
    moeplace_placement_destroy(b);
    moeplace_topology_destroy(t);
  }
}
END_TEST

/* Malformed placement files: each rejected with a message naming the problem. */
START_TEST(test_json_errors) {
  static const struct {
    const char *text, *msg;
  } cases[] = {
      {"[1, 2]", "expected a JSON object"},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1}", "\"experts\""},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1, \"experts\": 3, \"placement\": []}",
       "more experts"},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1, \"experts\": 2, \"placement\": []}",
       "array of 1 layers"},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1, \"experts\": 2, \"placement\": "
       "[{\"layer\": 0, \"phy2log\": [0], \"share\": [1]}]}",
       "ranks x slots = 2"},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1, \"experts\": 2, \"placement\": "
       "[{\"layer\": 0, \"phy2log\": [0, 5], \"share\": [1, 1]}]}",
       "phy2log[1]"},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1, \"experts\": 2, \"placement\": "
       "[{\"layer\": 0, \"phy2log\": [0, 0], \"share\": [0.5, 0.5]}]}",
       "expert 1 has no replica"},
      {"{\"ranks\": 2, \"slots\": 1, \"layers\": 1, \"experts\": 2, \"placement\": "
       "[{\"layer\": 0, \"phy2log\": [0, 1], \"share\": [0.5, 1]}]}",
       "sum to"},
      {"{not json", "placement"},
  };
  for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
    char path[] = "/tmp/mp_badplXXXXXX";
    int fd = mkstemp(path);
    ck_assert_int_eq(write(fd, cases[k].text, strlen(cases[k].text)),
                     (ssize_t)strlen(cases[k].text));
    close(fd);
    moeplace_placement *p = NULL;
    int rc = moeplace_placement_read_json(&p, path);
    ck_assert_msg(rc == MOEPLACE_ERR_FORMAT, "case %zu: status %d", k, rc);
    ck_assert_ptr_null(p);
    if (k + 1 < sizeof cases / sizeof cases[0])
      ck_assert_msg(strstr(moeplace_last_error(), cases[k].msg), "case %zu: '%s' lacks '%s'", k,
                    moeplace_last_error(), cases[k].msg);
    unlink(path);
  }
}
END_TEST


/* Even shares: exactly 1 / count, the figures recomputed, the bound below
 * the result, fresh and against a current placement (budget respected). */
START_TEST(test_even_invariants) {
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.shares = MOEPLACE_SHARES_EVEN;
  for (int trial = 0; trial < 200; trial++) {
    int R = 1 + (int)(urand() * 12), S = 1 + (int)(urand() * 5), L = 1 + (int)(urand() * 3);
    int E = 1 + (int)(urand() * R * S);
    moeplace_topology *t;
    ck_assert_int_eq(moeplace_topology_create_shape(&t, 1, R, 1, 1), 0);
    double *w = malloc((size_t)L * E * sizeof *w), *w2 = malloc((size_t)L * E * sizeof *w);
    for (int i = 0; i < L * E; i++) {
      w[i] = trial % 3 == 0 ? (urand() < 0.3 ? 0 : 100 * urand()) : 1000 * lognormal(1.0);
      w2[i] = w[i] * (0.5 + urand());
    }
    moeplace_placement *p, *q;
    moeplace_place_stats st, s2;
    o.byte_budget = MOEPLACE_NO_LIMIT;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, &o, &p, &st), 0);
    o.byte_budget = trial % 2 ? 2.0 : MOEPLACE_NO_LIMIT;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w2, p, &o, &q, &s2), 0);
    ck_assert_int_eq(st.shares, MOEPLACE_SHARES_EVEN);
    if (trial % 2) ck_assert(s2.bytes_moved <= 2.0);
    for (int k = 0; k < 2; k++) {
      const moeplace_placement *x = k ? q : p;
      const moeplace_place_stats *xs = k ? &s2 : &st;
      const double *xw = k ? w2 : w;
      check_invariants(x);
      for (int l = 0; l < L; l++) {
        int lc[64];
        moeplace_placement_logcnt(x, l, lc);
        const int *ph = moeplace_placement_phy2log_const(x, l);
        const double *sh = moeplace_placement_share_const(x, l);
        for (int i = 0; i < R * S; i++)
          if (ph[i] >= 0) ck_assert(sh[i] == 1.0 / lc[ph[i]]); // exactly, not within a tolerance
      }
      ck_assert(fabs(recompute_imbalance(x, xw) - xs->imbalance) < 1e-9);
      ck_assert(xs->lower_bound <= xs->imbalance + 1e-9);
    }
    // the current placement is scored with equal shares too
    moeplace_placement *pe;
    ck_assert_int_eq(moeplace_placement_clone(&pe, p), 0);
    ck_assert_int_eq(moeplace_placement_equal_shares(pe), 0);
    ck_assert(fabs(recompute_imbalance(pe, w2) - s2.current_imbalance) < 1e-9);
    ck_assert(s2.imbalance <= s2.current_imbalance + 1e-9); // a change only if it gains
    moeplace_placement_destroy(pe);
    moeplace_placement_destroy(p);
    moeplace_placement_destroy(q);
    moeplace_topology_destroy(t);
    free(w);
    free(w2);
  }
}
END_TEST

/* Even shares against branch and bound: the heuristic is never below the
 * exact optimum of equal splits and the reported bound never above it. */
START_TEST(test_even_exact_small) {
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.shares = MOEPLACE_SHARES_EVEN;
  double worst = 0, sum_gap = 0;
  int n = 0, optimal = 0;
  for (int trial = 0; trial < 150; trial++) {
    int R = 2 + (int)(urand() * 3), S = 1 + (int)(urand() * 3);
    int E = 1 + (int)(urand() * (R * S < 6 ? R * S : 6));
    double w[8];
    for (int e = 0; e < E; e++) w[e] = 100 * lognormal(1.0);
    const double ex = mp_place_exact_even(w, E, R, S);
    ck_assert(ex > 0);
    moeplace_topology *t;
    moeplace_topology_create_shape(&t, 1, R, 1, 1);
    moeplace_placement *p;
    moeplace_place_stats st;
    ck_assert_int_eq(moeplace_place(t, 1, E, S, w, NULL, &o, &p, &st), 0);
    double rl[4], mx = 0, tot = 0;
    moeplace_placement_rank_loads(p, 0, w, rl);
    for (int r = 0; r < R; r++) mx = rl[r] > mx ? rl[r] : mx;
    for (int e = 0; e < E; e++) tot += w[e];
    ck_assert_msg(mx >= ex * (1 - 1e-9), "heuristic %g below the exact optimum %g", mx, ex);
    ck_assert_msg(st.lower_bound * tot / R <= ex * (1 + 1e-9), "bound %g above optimum %g",
                  st.lower_bound * tot / R, ex);
    const double gap = mx / ex - 1;
    worst = gap > worst ? gap : worst;
    sum_gap += gap;
    optimal += gap < 1e-9;
    n++;
    moeplace_placement_destroy(p);
    moeplace_topology_destroy(t);
  }
  printf("exact even: %d instances, %d optimal, mean gap %.4f%%, worst gap %.4f%%\n", n, optimal,
         100 * sum_gap / n, 100 * worst);
  ck_assert_msg(sum_gap / n < 0.02, "mean gap to the exact even optimum %.4f", sum_gap / n);
}
END_TEST

/* A fresh placement: no replica with a zero share (the slot stays empty)
 * and min_gain changes nothing (it prices moves; nothing moves). */
START_TEST(test_fresh_no_idle_replica) {
  for (int trial = 0; trial < 200; trial++) {
    int R = 2 + (int)(urand() * 10), S = 1 + (int)(urand() * 5), L = 1 + (int)(urand() * 2);
    int E = 1 + (int)(urand() * R * S);
    moeplace_topology *t;
    moeplace_topology_create_shape(&t, 1, R, 1, 1);
    double *w = malloc((size_t)L * E * sizeof *w);
    for (int i = 0; i < L * E; i++)
      w[i] = trial % 2 ? 1000 * lognormal(1.5) : (urand() < 0.3 ? 0 : 100 * urand());
    moeplace_place_options o;
    moeplace_place_options_init(&o);
    moeplace_placement *p, *p0;
    moeplace_place_stats st, st0;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, &o, &p, &st), 0);
    o.min_gain = 0;
    ck_assert_int_eq(moeplace_place(t, L, E, S, w, NULL, &o, &p0, &st0), 0);
    ck_assert_msg(st.imbalance == st0.imbalance, "min_gain changed a fresh placement: %g vs %g",
                  st.imbalance, st0.imbalance);
    for (int l = 0; l < L; l++) {
      int lc[64];
      moeplace_placement_logcnt(p, l, lc);
      const int *ph = moeplace_placement_phy2log_const(p, l);
      const double *sh = moeplace_placement_share_const(p, l);
      for (int i = 0; i < R * S; i++) {
        const int e = ph[i];
        if (e < 0) continue;
        if (w[l * E + e] > 0)
          ck_assert_msg(sh[i] > 0, "layer %d slot %d: expert %d has a zero share", l, i, e);
        else
          ck_assert_int_eq(lc[e], 1); // an idle expert keeps one replica
      }
    }
    moeplace_placement_destroy(p);
    moeplace_placement_destroy(p0);
    moeplace_topology_destroy(t);
    free(w);
  }
  moeplace_share_policy pol;
  ck_assert_int_eq(moeplace_share_policy_parse("even", &pol), 0);
  ck_assert_int_eq(pol, MOEPLACE_SHARES_EVEN);
  ck_assert_str_eq(moeplace_share_policy_name(MOEPLACE_SHARES_WEIGHTED), "weighted");
  ck_assert_int_eq(moeplace_share_policy_parse("equal", &pol), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "'equal'"));
  moeplace_topology *t;
  moeplace_topology_create_shape(&t, 1, 2, 1, 1);
  double w[2] = {1, 2};
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.shares = (moeplace_share_policy)7;
  moeplace_placement *p;
  ck_assert_int_eq(moeplace_place(t, 1, 2, 1, w, NULL, &o, &p, NULL), MOEPLACE_ERR_ARG);
  ck_assert_ptr_nonnull(strstr(moeplace_last_error(), "shares"));
  moeplace_topology_destroy(t);
}
END_TEST

int main(void) {
  Suite *s = suite_create("placement");
  TCase *tc = tcase_create("core");
  tcase_set_timeout(tc, 60);
  tcase_add_test(tc, test_random_invariants);
  tcase_add_test(tc, test_exact_small);
  tcase_add_test(tc, test_even_invariants);
  tcase_add_test(tc, test_even_exact_small);
  tcase_add_test(tc, test_fresh_no_idle_replica);
  tcase_add_test(tc, test_migration_aware);
  tcase_add_test(tc, test_budget);
  tcase_add_test(tc, test_weight_keeps_current);
  tcase_add_test(tc, test_errors);
  tcase_add_test(tc, test_topology_file);
  tcase_add_test(tc, test_topology_class_bad_rank);
  tcase_add_test(tc, test_topology_load_keeps_strtok);
  tcase_add_test(tc, test_topology_load_threads);
  tcase_add_test(tc, test_json_roundtrip);
  tcase_add_test(tc, test_plan_closest_source);
  tcase_add_test(tc, test_plan_matches_scan);
  tcase_add_test(tc, test_json_errors);
  suite_add_tcase(s, tc);
  SRunner *sr = srunner_create(s);
  srunner_run_all(sr, CK_NORMAL);
  int failed = srunner_ntests_failed(sr);
  srunner_free(sr);
  return failed ? 1 : 0;
}
