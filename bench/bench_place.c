/* bench_place: decision time, balance and migration of moeplace_place on
 * the DeepSeek-V3-sized shapes, a 1024-rank scale test, a greedy
 * replicate-then-LPT baseline measured in the same run, and a drift test on
 * real trace intervals (moves per rebalance vs from-scratch placement), and
 * node-limited expert groups on the DeepSeek shapes (4 and 8 nodes, 4 and 8
 * groups) against the same loads without groups, and a rebalance with 50
 * load samples against the same rebalance without them.
 *
 *   bench_place [--loads-out FILE] [--trace FILE] [--interval N] [--repeat N]
 *               [--skip-shapes] [--skip-groups] [--skip-samples]
 *
 * --loads-out writes the lognormal loads used for the DeepSeek shapes so
 * that scripts/eplb_reference.py can time EPLB on exactly the same input
 * (bench/run_place_bench.sh does both). Figures only: nothing here is a
 * pass/fail test. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <moeplace.h>

#include "common/timer.h"

/* ---- deterministic lognormal loads ------------------------------------ */

static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static double urand(void) { // splitmix64 -> (0, 1)
  uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  z ^= z >> 31;
  return ((double)(z >> 11) + 0.5) / 9007199254740992.0;
}
static double nrand(void) { return sqrt(-2 * log(urand())) * cos(2 * M_PI * urand()); }

/* ---- greedy replicate-then-LPT baseline (equal shares) ----------------- */

/* Reference: replicas by largest load per replica, then each replica (in
 * decreasing size) to the least loaded rank with a free slot that does not
 * hold the expert. Equal shares. Returns the sum over layers of max load. */
static double greedy_baseline(const double *loads, int L, int E, int R, int S) {
  int *cnt = malloc(E * sizeof *cnt), *nfree = malloc(R * sizeof *nfree);
  int *held = malloc((size_t)R * E * sizeof *held);
  double *load = malloc(R * sizeof *load);
  int *order = malloc((size_t)R * S * sizeof *order);
  double *key = malloc((size_t)R * S * sizeof *key);
  int *rep = malloc((size_t)R * S * sizeof *rep);
  double sum_max = 0;
  for (int l = 0; l < L; l++) {
    const double *w = loads + (size_t)l * E;
    for (int e = 0; e < E; e++) cnt[e] = 1;
    for (int extra = R * S - E; extra > 0; extra--) {
      int b = -1;
      for (int e = 0; e < E; e++)
        if (cnt[e] < R && (b < 0 || w[e] / cnt[e] > w[b] / cnt[b])) b = e;
      if (b < 0) break;
      cnt[b]++;
    }
    int n = 0;
    for (int e = 0; e < E; e++)
      for (int c = 0; c < cnt[e]; c++) {
        rep[n] = e;
        key[n] = w[e] / cnt[e];
        order[n] = n;
        n++;
      }
    // insertion-free sort: simple selection by qsort on keys
    for (int i = 1; i < n; i++) { // insertion sort (n is a few hundred)
      int v = order[i], j = i;
      while (j > 0 && key[order[j - 1]] < key[v]) {
        order[j] = order[j - 1];
        j--;
      }
      order[j] = v;
    }
    memset(held, 0, (size_t)R * E * sizeof *held);
    for (int r = 0; r < R; r++) {
      load[r] = 0;
      nfree[r] = S;
    }
    for (int t = 0; t < n; t++) {
      int e = rep[order[t]], b = -1;
      for (int r = 0; r < R; r++)
        if (nfree[r] && !held[(size_t)r * E + e] && (b < 0 || load[r] < load[b])) b = r;
      if (b < 0) continue;
      held[(size_t)b * E + e] = 1;
      nfree[b]--;
      load[b] += key[order[t]];
    }
    double mx = 0;
    for (int r = 0; r < R; r++)
      if (load[r] > mx) mx = load[r];
    sum_max += mx;
  }
  free(cnt);
  free(nfree);
  free(held);
  free(load);
  free(order);
  free(key);
  free(rep);
  return sum_max;
}

static double mean_rank_sum(const double *loads, int L, int E, int R) {
  double s = 0;
  for (size_t i = 0; i < (size_t)L * E; i++) s += loads[i];
  return s / R;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Places `loads` fresh `repeat` times: the last result (the caller destroys
 * it), its stats, and the solve times in ms[repeat], sorted. Exits on an
 * error (a benchmark has no other way out). */
static moeplace_placement *solve_timed(const moeplace_topology *topo, int L, int E, int S,
                                       const double *loads, const moeplace_place_options *o,
                                       int repeat, double *ms, moeplace_place_stats *st) {
  moeplace_placement *p = NULL;
  for (int k = 0; k < repeat; k++) {
    moeplace_placement_destroy(p);
    double t0 = mp_now_s();
    if (moeplace_place(topo, L, E, S, loads, NULL, o, &p, st)) {
      fprintf(stderr, "place: %s\n", moeplace_last_error());
      exit(1);
    }
    ms[k] = (mp_now_s() - t0) * 1e3;
  }
  qsort(ms, repeat, sizeof *ms, cmp_double);
  return p;
}

/* The even share policy on the same loads: median solve time and the
 * equal-split imbalance (what EPLB-style routers run). */
static void bench_even(const char *name, const moeplace_topology *topo, const double *loads,
                       int L, int E, int S, int repeat) {
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.shares = MOEPLACE_SHARES_EVEN;
  double *ms = malloc(repeat * sizeof *ms);
  moeplace_place_stats st;
  moeplace_placement *p = solve_timed(topo, L, E, S, loads, &o, repeat, ms, &st);
  printf("%-22s shares even: solve_ms median %.3f (min %.3f, max %.3f)  imbalance %.5f  "
         "lower_bound %.5f gap %.3f%%  valid=%s\n",
         name, ms[repeat / 2], ms[0], ms[repeat - 1], st.imbalance, st.lower_bound, 100 * st.gap,
         moeplace_placement_validate(p) == MOEPLACE_OK ? "yes" : "NO");
  printf("RESULT-EVEN %s moeplace ms %.3f imbalance %.5f lower_bound %.5f\n", name,
         ms[repeat / 2], st.imbalance, st.lower_bound);
  fflush(stdout);
  free(ms);
  moeplace_placement_destroy(p);
}

/* Solves `repeat` times, prints the median solve time and the figures. */
static void bench_shape(const char *name, const double *loads, int L, int E, int nodes, int R,
                        int S, int repeat) {
  moeplace_topology *topo;
  if (moeplace_topology_create_shape(&topo, nodes, R / nodes, 2, 1)) {
    fprintf(stderr, "topology: %s\n", moeplace_last_error());
    exit(1);
  }
  double *ms = malloc(repeat * sizeof *ms);
  moeplace_place_stats st;
  moeplace_placement *p = solve_timed(topo, L, E, S, loads, NULL, repeat, ms, &st);
  double check;
  moeplace_placement_imbalance(p, loads, &check);
  int valid = moeplace_placement_validate(p) == MOEPLACE_OK;
  double t0 = mp_now_s();
  double g = greedy_baseline(loads, L, E, R, S) / mean_rank_sum(loads, L, E, R);
  double gms = (mp_now_s() - t0) * 1e3;
  printf("%-22s L=%-3d E=%-4d R=%-5d S=%-2d nodes=%-2d solve_ms median %.3f (min %.3f, max %.3f)"
         "  imbalance %.5f (recomputed %.5f) lower_bound %.5f gap %.3f%%  greedy-LPT %.5f "
         "(%.2f ms)  valid=%s\n",
         name, L, E, R, S, nodes, ms[repeat / 2], ms[0], ms[repeat - 1], st.imbalance, check,
         st.lower_bound, 100 * st.gap, g, gms, valid ? "yes" : "NO");
  // a rebalance after a 5% load drift, from this placement
  {
    size_t n = (size_t)L * E;
    double *w2 = malloc(n * sizeof *w2);
    for (size_t i = 0; i < n; i++) w2[i] = loads[i] * (1 + 0.05 * nrand());
    for (size_t i = 0; i < n; i++) w2[i] = w2[i] < 0 ? 0 : w2[i];
    moeplace_placement *q, *f;
    moeplace_place_stats sq, sf;
    if (moeplace_place(topo, L, E, S, w2, p, NULL, &q, &sq) == 0 &&
        moeplace_place(topo, L, E, S, w2, NULL, NULL, &f, &sf) == 0) {
      moeplace_move_stats d;
      moeplace_placement_diff(p, f, topo, 1.0, &d);
      printf("%-22s rebalance after 5%% drift: solve_ms %.3f  moves %" PRId64
             " (from scratch %" PRId64 ")  imbalance %.5f (from scratch %.5f, kept %.5f)\n",
             name, sq.solve_ms, sq.moves, d.moves, sq.imbalance, sf.imbalance,
             sq.current_imbalance);
      moeplace_placement_destroy(q);
      moeplace_placement_destroy(f);
    }
    free(w2);
  }
  printf("RESULT %s moeplace ms %.3f imbalance %.5f greedy %.5f lower_bound %.5f\n", name,
         ms[repeat / 2], st.imbalance, g, st.lower_bound);
  bench_even(name, topo, loads, L, E, S, repeat);
  fflush(stdout);
  free(ms);
  moeplace_placement_destroy(p);
  moeplace_topology_destroy(topo);
}

/* ---- expert groups, node-limited (EPLB's hierarchical setting) --------- */

/* Imbalance of p on loads with every replica's share 1 / its replica count
 * (how EPLB's routers split tokens). */
/* A rebalance against a current placement on big nodes (the relabelling
 * of placement/solver_relabel.c prices each bin per NUMA domain, not per
 * rank: R^2 on a node of R ranks before): 4 layers of `loads` [4][E] placed
 * fresh with even shares on N nodes of Rn ranks (2 packages x 2 NUMA
 * domains each), then again from the loads drifted by lognormal(0, 0.2)
 * against that placement. Prints the median times of both (the fresh solve
 * is the baseline of the same run) and the moves. */
static void bench_big_nodes(const double *loads, int E, int repeat) {
  static const struct { int N, Rn; } shapes[] = {{1, 2048}, {4, 1024}, {16, 128}, {128, 8}};
  const int L = 4, S = 2;
  double *drift = malloc((size_t)L * E * sizeof *drift), *ms = malloc(repeat * sizeof *ms);
  for (int i = 0; i < L * E; i++) drift[i] = loads[i] * exp(0.2 * nrand());
  for (size_t k = 0; k < sizeof shapes / sizeof shapes[0]; k++) {
    const int N = shapes[k].N, Rn = shapes[k].Rn;
    moeplace_topology *topo;
    moeplace_place_options o;
    moeplace_place_options_init(&o);
    o.shares = MOEPLACE_SHARES_EVEN;
    o.expert_bytes = 64.0 * 1024 * 1024;
    moeplace_place_stats st;
    if (moeplace_topology_create_shape(&topo, N, Rn, 2, 2)) {
      fprintf(stderr, "topology: %s\n", moeplace_last_error());
      exit(1);
    }
    moeplace_placement *cur = solve_timed(topo, L, E, S, loads, &o, repeat, ms, &st), *p = NULL;
    const double fresh_ms = ms[repeat / 2];
    for (int r = 0; r < repeat; r++) {
      moeplace_placement_destroy(p);
      double t0 = mp_now_s();
      if (moeplace_place(topo, L, E, S, drift, cur, &o, &p, &st)) {
        fprintf(stderr, "place: %s\n", moeplace_last_error());
        exit(1);
      }
      ms[r] = (mp_now_s() - t0) * 1e3;
    }
    qsort(ms, repeat, sizeof *ms, cmp_double);
    printf("big-nodes %3d x %4d ranks, %d layers x %d experts x %d slots: fresh %.2f ms, "
           "with current %.2f ms (%.1fx), moves %lld\n", N, Rn, L, E, S, fresh_ms,
           ms[repeat / 2], ms[repeat / 2] / fresh_ms, (long long)st.moves);
    fflush(stdout);
    moeplace_placement_destroy(p);
    moeplace_placement_destroy(cur);
    moeplace_topology_destroy(topo);
  }
  free(drift);
  free(ms);
}

static double equal_share_imbalance(const moeplace_placement *p, const double *loads) {
  moeplace_placement *q;
  double imb = -1;
  if (moeplace_placement_clone(&q, p) == 0) {
    moeplace_placement_equal_shares(q);
    moeplace_placement_imbalance(q, loads, &imb);
    moeplace_placement_destroy(q);
  }
  return imb;
}

/* moeplace with groups = G on N nodes against the same call without groups:
 * solve time (median of `repeat`), imbalance scored with moeplace's shares
 * and with equal shares, groups spanning two nodes (summed over layers). */
static void bench_groups(const char *name, const double *loads, int L, int E, int N, int R,
                         int S, int G, int repeat) {
  moeplace_topology *topo;
  if (moeplace_topology_create_shape(&topo, N, R / N, 1, 1)) exit(1);
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.groups = G;
  double *ms = malloc(repeat * sizeof *ms);
  moeplace_placement *f = NULL;
  moeplace_place_stats st, sf;
  moeplace_placement *p = solve_timed(topo, L, E, S, loads, &o, repeat, ms, &st);
  if (moeplace_place(topo, L, E, S, loads, NULL, NULL, &f, &sf)) exit(1);
  int *split = malloc(L * sizeof *split), nsplit = 0, fsplit = 0;
  moeplace_placement_split_groups(p, topo, G, split);
  for (int l = 0; l < L; l++) nsplit += split[l];
  moeplace_placement_split_groups(f, topo, G, split);
  for (int l = 0; l < L; l++) fsplit += split[l];
  const double gw = st.imbalance, ge = equal_share_imbalance(p, loads);
  const double fw = sf.imbalance, fe = equal_share_imbalance(f, loads);
  printf("%-16s R=%-3d S=%d nodes=%d groups=%d  solve_ms %.2f (min %.2f, max %.2f)  "
         "imbalance weighted %.5f equal %.5f  split_groups %d/%d (valid=%s)  "
         "without groups: weighted %.5f equal %.5f split %d  cost of groups: weighted %+.2f%% "
         "equal %+.2f%%\n",
         name, R, S, N, G, ms[repeat / 2], ms[0], ms[repeat - 1], gw, ge, nsplit, L * G,
         moeplace_placement_validate(p) == 0 ? "yes" : "NO", fw, fe, fsplit,
         100 * (gw / fw - 1), 100 * (ge / fe - 1));
  printf("RESULTG %s ms %.3f weighted %.5f equal %.5f split %d nogroups_weighted %.5f "
         "nogroups_equal %.5f nogroups_ms %.3f\n",
         name, ms[repeat / 2], gw, ge, nsplit, fw, fe, sf.solve_ms);
  // groups with even shares (what an EPLB router routes): its imbalance is
  // already that of equal splits
  // (median of `repeat` solves, as the other figures)
  moeplace_place_stats sv;
  o.shares = MOEPLACE_SHARES_EVEN;
  moeplace_placement *v = solve_timed(topo, L, E, S, loads, &o, repeat, ms, &sv);
  moeplace_placement_split_groups(v, topo, G, split);
  int vsplit = 0;
  for (int l = 0; l < L; l++) vsplit += split[l];
  printf("RESULTG-EVEN %s ms %.3f equal %.5f split %d valid %s min_ms %.3f max_ms %.3f\n", name,
         ms[repeat / 2], equal_share_imbalance(v, loads), vsplit,
         moeplace_placement_validate(v) == 0 ? "yes" : "NO", ms[0], ms[repeat - 1]);
  moeplace_placement_destroy(v);
  fflush(stdout);
  free(split);
  free(ms);
  moeplace_placement_destroy(p);
  moeplace_placement_destroy(f);
  moeplace_topology_destroy(topo);
}

/* ---- load samples (moeplace_place_options.samples) --------------------- */

/* Mean over the n samples x [n][L][E] of metrics.md's imbalance of p. */
static double samples_imbalance(const moeplace_placement *p, const double *x, int n, int L,
                                int E) {
  double tot = 0;
  for (int t = 0; t < n; t++) {
    double imb;
    moeplace_placement_imbalance(p, x + (size_t)t * L * E, &imb);
    tot += imb;
  }
  return tot / n;
}

/* A rebalance from the placement of `loads` to drifted loads (x lognormal
 * 0.2), with and without 50 samples around them (x lognormal 0.3 per
 * expert and sample), even shares, the seconds model: the solve time the
 * samples cost and the samples' mean imbalance they gain. */
static void bench_samples(const char *name, const double *loads, int L, int E, int nodes, int R,
                          int S, int repeat) {
  const int n = 50;
  const size_t LE = (size_t)L * E;
  double *w = malloc(LE * sizeof *w), *x = malloc(n * LE * sizeof *x);
  double *ms = malloc(2 * (size_t)repeat * sizeof *ms);
  for (size_t i = 0; i < LE; i++) w[i] = loads[i] * exp(0.2 * nrand());
  for (int t = 0; t < n; t++)
    for (size_t i = 0; i < LE; i++) x[t * LE + i] = w[i] * exp(0.3 * nrand());
  moeplace_topology *topo;
  moeplace_topology_create_shape(&topo, nodes, R / nodes, 1, 1);
  moeplace_place_options o;
  moeplace_place_options_init(&o);
  o.shares = MOEPLACE_SHARES_EVEN;
  o.step_time_s = 1e-3;
  moeplace_placement *cur, *p[2] = {NULL, NULL};
  moeplace_place_stats st[2];
  if (moeplace_place(topo, L, E, S, loads, NULL, &o, &cur, NULL)) exit(1);
  for (int k = 0; k < repeat; k++)
    for (int with = 0; with < 2; with++) { // interleaved: the same load on the machine
      o.n_samples = with ? n : 0;
      o.samples = with ? x : NULL;
      moeplace_placement_destroy(p[with]);
      double t0 = mp_now_s();
      if (moeplace_place(topo, L, E, S, w, cur, &o, &p[with], &st[with])) {
        fprintf(stderr, "place: %s\n", moeplace_last_error());
        exit(1);
      }
      ms[with * repeat + k] = (mp_now_s() - t0) * 1e3;
    }
  qsort(ms, repeat, sizeof *ms, cmp_double);
  qsort(ms + repeat, repeat, sizeof *ms, cmp_double);
  printf("%-22s samples %d: solve_ms median %.1f (without %.1f, x%.1f)  moves %lld (without %lld)"
         "  samples' mean imbalance %.4f (without %.4f)  valid=%s\n",
         name, n, ms[repeat + repeat / 2], ms[repeat / 2], ms[repeat + repeat / 2] / ms[repeat / 2],
         (long long)st[1].moves, (long long)st[0].moves, samples_imbalance(p[1], x, n, L, E),
         samples_imbalance(p[0], x, n, L, E),
         moeplace_placement_validate(p[1]) == MOEPLACE_OK ? "yes" : "NO");
  fflush(stdout);
  for (int k = 0; k < 2; k++) moeplace_placement_destroy(p[k]);
  moeplace_placement_destroy(cur);
  moeplace_topology_destroy(topo);
  free(w);
  free(x);
  free(ms);
}

/* ---- drift on real trace intervals -------------------------------------- */

static double drift_min_gain = -1;

static void bench_drift(const char *path, int interval, int R, int S, int nodes) {
  moeplace_trace *t;
  if (moeplace_trace_open(&t, path)) {
    fprintf(stderr, "drift: %s\n", moeplace_last_error());
    return;
  }
  const int L = moeplace_trace_layers(t), E = moeplace_trace_experts(t);
  if (R * S < E) {
    moeplace_trace_close(t);
    return;
  }
  uint64_t *tot = malloc((size_t)L * E * sizeof *tot);
  double *w = malloc((size_t)L * E * sizeof *w), *prev_w = malloc((size_t)L * E * sizeof *w);
  moeplace_topology *topo;
  moeplace_topology_create_shape(&topo, nodes, R / nodes, 1, 1);
  moeplace_placement *aware = NULL, *fresh = NULL;
  int64_t first;
  int got, k = 0;
  double mv_aware = 0, mv_fresh = 0, imb_aware = 0, imb_fresh = 0, real_aware = 0,
         real_fresh = 0, ms_aware = 0;
  int n_reb = 0, n_real = 0, kept = 0;
  moeplace_place_options opt;
  moeplace_place_options_init(&opt);
  if (drift_min_gain >= 0) opt.min_gain = drift_min_gain;
  while (moeplace_trace_read_window(t, interval, &first, &got, tot) == 1) {
    if (got < interval) break;
    for (size_t i = 0; i < (size_t)L * E; i++) w[i] = (double)tot[i];
    if (k > 0) { // realised balance: previous interval's placement on this interval
      double a, f;
      moeplace_placement_imbalance(aware, w, &a);
      moeplace_placement_imbalance(fresh, w, &f);
      real_aware += a;
      real_fresh += f;
      n_real++;
    }
    moeplace_place_stats sa, sf;
    moeplace_placement *na, *nf;
    if (moeplace_place(topo, L, E, S, w, aware, &opt, &na, &sa) ||
        moeplace_place(topo, L, E, S, w, NULL, &opt, &nf, &sf)) {
      fprintf(stderr, "drift: %s\n", moeplace_last_error());
      break;
    }
    if (k > 0) {
      moeplace_move_stats d;
      moeplace_placement_diff(fresh, nf, topo, 1.0, &d);
      mv_aware += sa.moves;
      mv_fresh += d.moves;
      imb_aware += sa.imbalance;
      imb_fresh += sf.imbalance;
      ms_aware += sa.solve_ms;
      kept += sa.kept_current;
      n_reb++;
    }
    moeplace_placement_destroy(aware);
    moeplace_placement_destroy(fresh);
    aware = na;
    fresh = nf;
    memcpy(prev_w, w, (size_t)L * E * sizeof *w);
    k++;
  }
  if (n_reb > 0)
    printf("drift %s interval=%d R=%d S=%d: %d rebalances  moves/rebalance aware %.2f vs "
           "from-scratch %.2f (ratio %.3f)  predicted imbalance aware %.5f vs from-scratch %.5f"
           "  realised (next interval) aware %.5f vs from-scratch %.5f  kept_current %d/%d  "
           "solve_ms aware %.3f\n",
           path, interval, R, S, n_reb, mv_aware / n_reb, mv_fresh / n_reb,
           mv_fresh > 0 ? mv_aware / mv_fresh : 0, imb_aware / n_reb, imb_fresh / n_reb,
           n_real ? real_aware / n_real : 0, n_real ? real_fresh / n_real : 0, kept, n_reb,
           ms_aware / n_reb);
  moeplace_placement_destroy(aware);
  moeplace_placement_destroy(fresh);
  moeplace_topology_destroy(topo);
  moeplace_trace_close(t);
  free(tot);
  free(w);
  free(prev_w);
}

static void write_loads(const char *path, const double *loads, int L, int E) {
  FILE *f = fopen(path, "w");
  if (!f) {
    perror(path);
    exit(1);
  }
  fprintf(f, "%d %d\n", L, E);
  for (int l = 0; l < L; l++)
    for (int e = 0; e < E; e++) fprintf(f, "%.17g%c", loads[(size_t)l * E + e], e + 1 < E ? ' ' : '\n');
  fclose(f);
}

int main(int argc, char **argv) {
  const char *loads_out = NULL, *traces[8];
  int ntraces = 0, interval = 500, repeat = 21, skip_shapes = 0, skip_groups = 0, skip_samples = 0;
  static const struct option opts[] = {{"loads-out", required_argument, NULL, 'o'},
                                       {"trace", required_argument, NULL, 't'},
                                       {"interval", required_argument, NULL, 'i'},
                                       {"repeat", required_argument, NULL, 'r'},
                                       {"min-gain", required_argument, NULL, 'g'},
                                       {"skip-shapes", no_argument, NULL, 's'},
                                       {"skip-groups", no_argument, NULL, 'G'},
                                       {"skip-samples", no_argument, NULL, 'S'},
                                       {"help", no_argument, NULL, 'h'},
                                       {NULL, 0, NULL, 0}};
  int c;
  while ((c = getopt_long(argc, argv, "o:t:i:r:g:sGSh", opts, NULL)) != -1) {
    if (c == 'o') loads_out = optarg;
    else if (c == 't' && ntraces < 8) traces[ntraces++] = optarg;
    else if (c == 'i') interval = atoi(optarg);
    else if (c == 'r') repeat = atoi(optarg);
    else if (c == 'g') drift_min_gain = atof(optarg);
    else if (c == 's') skip_shapes = 1;
    else if (c == 'G') skip_groups = 1;
    else if (c == 'S') skip_samples = 1;
    else {
      printf("Usage: bench_place [--loads-out FILE] [--trace FILE]... [--interval N] "
             "[--repeat N] [--min-gain G] [--skip-shapes] [--skip-groups] [--skip-samples]\n");
      return c == 'h' ? 0 : 2;
    }
  }
  if (interval < 1 || repeat < 1) return 2;
  // DeepSeek-V3: 58 MoE layers x 256 experts, lognormal(0, 1) loads
  const int L = 58, E = 256;
  double *loads = malloc((size_t)L * E * sizeof *loads);
  for (int i = 0; i < L * E; i++) loads[i] = 1000.0 * exp(nrand());
  if (loads_out) write_loads(loads_out, loads, L, E);
  // scale: 1024 ranks x 256 experts x 64 layers
  const int L2 = 64;
  double *big = malloc((size_t)L2 * E * sizeof *big);
  for (int i = 0; i < L2 * E; i++) big[i] = 1000.0 * exp(nrand());
  if (!skip_shapes) {
    bench_shape("deepseek-32x9", loads, L, E, 4, 32, 9, repeat);
    bench_shape("deepseek-32x9-8nodes", loads, L, E, 8, 32, 9, repeat);
    bench_shape("deepseek-64x5", loads, L, E, 8, 64, 5, repeat);
    bench_shape("deepseek-64x5-4nodes", loads, L, E, 4, 64, 5, repeat);
    bench_shape("deepseek-64x5-2nodes", loads, L, E, 2, 64, 5, repeat);
    bench_shape("scale-1024x1", big, L2, E, 128, 1024, 1, repeat < 5 ? repeat : 5);
    bench_shape("scale-1024x2", big, L2, E, 128, 1024, 2, repeat < 5 ? repeat : 5);
    bench_big_nodes(big, E, repeat < 5 ? repeat : 5);
  }
  if (!skip_samples) {
    bench_samples("deepseek-32x9", loads, L, E, 4, 32, 9, repeat < 3 ? repeat : 3);
    bench_samples("deepseek-64x5", loads, L, E, 8, 64, 5, repeat < 3 ? repeat : 3);
  }
  if (!skip_groups) {
    static const struct { const char *name; int R, S, N, G; } gs[] = {
        {"ds32x9-n4-g4", 32, 9, 4, 4}, {"ds32x9-n4-g8", 32, 9, 4, 8},
        {"ds32x9-n8-g8", 32, 9, 8, 8}, {"ds64x5-n4-g4", 64, 5, 4, 4},
        {"ds64x5-n4-g8", 64, 5, 4, 8}, {"ds64x5-n8-g8", 64, 5, 8, 8}};
    for (size_t k = 0; k < sizeof gs / sizeof gs[0]; k++)
      bench_groups(gs[k].name, loads, L, E, gs[k].N, gs[k].R, gs[k].S, gs[k].G,
                   repeat < 11 ? repeat : 11);
  }
  for (int i = 0; i < ntraces; i++) {
    bench_drift(traces[i], interval, 8, 3, 2);
    bench_drift(traces[i], interval, 4, 5, 2);
  }
  free(loads);
  free(big);
  return 0;
}
