/* moeplace-demo: the main job. Replays an expert-load trace as a training
 * run with real expert weights and real expert computation, twice: once
 * with the static initial placement, once with moeplace rebalancing, and
 * compares step time, imbalance and the final weights. The two runs are
 * interleaved block by block (see main).
 *
 * Per rank and per local slot: an expert FFN W1 [d][f], W2 [f][d] (float)
 * and a momentum buffer of the same size, both allocated by the runtime.
 * Per step and per layer, every rank multiplies the tokens the trace routes
 * to its replicas (Y = relu(X W1) W2 with OpenBLAS), then waits for the
 * others (an MoE layer is a synchronisation point). After the step every
 * expert's weights get an update that depends only on the logical expert
 * and the step, so replicas stay identical and the static and dynamic runs
 * must end bit-identical: any byte lost or damaged by migration shows. */
#include "config.h"

#include <cblas.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <moeplace/runtime.h>
#include <xxhash.h>

#include "common/json_file.h"
#include "common/load_samples.h"
#include "common/metrics.h"
#include "common/timer.h"
#include "tools/cli.h"

#ifndef MOEPLACE_DATADIR
#define MOEPLACE_DATADIR "data"
#endif

static const char *prog = "moeplace-demo";

typedef struct opts {
  const char *trace, *json, *predictor, *cluster_file, *commit_log;
  long long ranks_per_node;
  long long groups;
  long long steps, d, f, slots, window, interval, max_tokens, samples;
  double token_scale;
  double timeout_s; /* collective_timeout_s of the runtime (< 0: none) */
  moeplace_share_policy shares;
} opts;

static void usage(FILE *out) {
  fprintf(out,
          "Usage: mpirun -np N moeplace-demo [OPTIONS]\n"
          "\n"
          "Runs a trace as MoE training with real expert weights and GEMMs twice, with the\n"
          "static placement and with moeplace rebalancing (interleaved every --interval\n"
          "steps so both see the same machine load), and compares step time, imbalance\n"
          "and the final weights (which must be bit-identical). Exit 1 if they differ.\n"
          "\n"
          "Options:\n"
          "  --trace FILE        load trace (default %s/pycode-L4-E16-top2-4k.csv.gz)\n"
          "  --steps N           steps to run, 0 = the whole trace (default 0)\n"
          "  --d-model N         expert input/output width d (default 64)\n"
          "  --d-ff N            expert hidden width f (default 128); an expert's state\n"
          "                      is 2*d*f floats of weights + as many of momentum\n"
          "  --slots N           expert slots per rank per layer (default ceil(E/ranks) + 1:\n"
          "                      one spare slot per rank for replicas)\n"
          "  --window N          aggregation window in steps (default 10)\n"
          "  --interval N        rebalance interval in steps (default 100)\n"
          "  --token-scale X     multiply the trace's token counts by X (default 1)\n"
          "  --predictor NAME    forecasting method: sw_avg, auto, arima, last, lstm (default sw_avg)\n"
          "  --ranks-per-node N  emulate nodes of N consecutive ranks (default: the real nodes)\n"
          "  --cluster-file FILE cluster-shape file (docs/PLACEMENT.md) replacing the topology\n"
          "  --timeout S         a rank waiting more than S s for the others (aggregation,\n"
          "                      decision, migration) fails with an error naming them\n"
          "                      (collective_timeout_s; default: wait for ever)\n"
          "  --groups G          G expert groups; on several nodes each group's replicas\n"
          "                      stay on one node (docs/PLACEMENT.md, default none)\n"
          "  --shares POLICY     weighted (default) or even: the routing of the moeplace run\n"
          "                      (even: every replica 1/n of its expert's tokens)\n"
          "  --samples N         the last N windows are the decisions' load samples\n"
          "                      (load_samples; default 50, 0: none; docs/PLACEMENT.md)\n"
          "  --json OUT          write the figures as JSON to OUT\n"
          "  --commit-log PREFIX every rank appends each placement it commits in the moeplace\n"
          "                      run (step, hash of the whole placement) to PREFIX.RANK,\n"
          "                      flushed at once: shows after a crash what each rank committed\n"
          "  --help              this text\n",
          MOEPLACE_DATADIR);
}

static int parse(int argc, char **argv, opts *o) {
  cli_set_prog(prog, argv);
  static const struct option lo[] = {
      {"trace", required_argument, NULL, 't'},   {"steps", required_argument, NULL, 'n'},
      {"d-model", required_argument, NULL, 'd'}, {"d-ff", required_argument, NULL, 'f'},
      {"slots", required_argument, NULL, 's'},   {"window", required_argument, NULL, 'w'},
      {"interval", required_argument, NULL, 'i'}, {"token-scale", required_argument, NULL, 'x'},
      {"json", required_argument, NULL, 'j'},    {"help", no_argument, NULL, 'h'},
      {"predictor", required_argument, NULL, 'p'},
      {"ranks-per-node", required_argument, NULL, 'N'},
      {"cluster-file", required_argument, NULL, 'C'},
      {"commit-log", required_argument, NULL, 'c'},
      {"groups", required_argument, NULL, 'G'},
      {"shares", required_argument, NULL, 'S'},
      {"samples", required_argument, NULL, 'L'},
      {"timeout", required_argument, NULL, 'T'},
      {NULL, 0, NULL, 0}};
  *o = (opts){.trace = MOEPLACE_DATADIR "/pycode-L4-E16-top2-4k.csv.gz", .steps = 0, .d = 64,
              .f = 128, .slots = 0, .window = 10, .interval = 100, .token_scale = 1.0,
              .predictor = "sw_avg", .timeout_s = MOEPLACE_NO_LIMIT,
              .samples = MP_LOAD_SAMPLES_DEFAULT}; // the runtime's default
  int c;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 't': o->trace = optarg; break;
    case 'n': if (cli_parse_int(prog, "--steps", optarg, 0, 100000000, &o->steps) < 0) return CLI_EXIT_USAGE; break;
    case 'd': if (cli_parse_int(prog, "--d-model", optarg, 1, 65536, &o->d) < 0) return CLI_EXIT_USAGE; break;
    case 'f': if (cli_parse_int(prog, "--d-ff", optarg, 1, 65536, &o->f) < 0) return CLI_EXIT_USAGE; break;
    case 's': if (cli_parse_int(prog, "--slots", optarg, 1, 65536, &o->slots) < 0) return CLI_EXIT_USAGE; break;
    case 'w': if (cli_parse_int(prog, "--window", optarg, 1, 1000000, &o->window) < 0) return CLI_EXIT_USAGE; break;
    case 'i': if (cli_parse_int(prog, "--interval", optarg, 1, 100000000, &o->interval) < 0) return CLI_EXIT_USAGE; break;
    case 'x': if (cli_parse_double(prog, "--token-scale", optarg, 1e-6, 1e6, &o->token_scale) < 0) return CLI_EXIT_USAGE; break;
    case 'j': o->json = optarg; break;
    case 'p': o->predictor = optarg; break;
    case 'N': if (cli_parse_int(prog, "--ranks-per-node", optarg, 1, 1000000, &o->ranks_per_node) < 0) return CLI_EXIT_USAGE; break;
    case 'C': o->cluster_file = optarg; break;
    case 'G': if (cli_parse_int(prog, "--groups", optarg, 1, 1000000, &o->groups) < 0) return CLI_EXIT_USAGE; break;
    case 'c': o->commit_log = optarg; break;
    case 'S': if (cli_parse_shares(prog, optarg, &o->shares) < 0) return CLI_EXIT_USAGE; break;
    case 'L': if (cli_parse_int(prog, "--samples", optarg, 0, 1000000, &o->samples) < 0) return CLI_EXIT_USAGE; break;
    case 'T': if (cli_parse_double(prog, "--timeout", optarg, 1e-3, 1e6, &o->timeout_s) < 0) return CLI_EXIT_USAGE; break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return CLI_EXIT_USAGE;
    }
  }
  if (cli_no_operands(prog, argc, argv, optind)) return CLI_EXIT_USAGE;
  if (o->interval % o->window) {
    fprintf(stderr, "%s: --interval: %lld is not a multiple of --window %lld\n", prog, o->interval, o->window);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

/* The per-rank model: L x S slots of weights and momentum. */
typedef struct model {
  int L, S, d, f;
  size_t n; /* floats per buffer: 2*d*f (W1 then W2) */
  float **w, **m; /* [L][S] */
} model;

static float init_value(int l, int e, size_t i) {
  uint64_t x = XXH3_64bits_withSeed(&i, sizeof i, (uint64_t)l * 1000003u + (uint64_t)e);
  return (float)((double)(x >> 11) / 9007199254740992.0 - 0.5) * 0.1f;
}

/* The training update of expert e at step t: deterministic, the same on
 * every replica, touching every byte of weights and momentum. */
static void update(float *w, float *m, size_t n, int e, int64_t t) {
  float g = (float)((e * 31 + t * 17) % 23 - 11) * 1e-4f;
  for (size_t i = 0; i < n; i++) {
    m[i] = 0.9f * m[i] + g * (float)((int)(i % 7) - 3);
    w[i] = w[i] * 0.9999f - 0.01f * m[i];
  }
}

typedef struct phase_result {
  double step_ms, imbalance, migration_s, decision_s;
  double decider_cpu_s, stall_ms_max, stall_ms_mean, floor_ms_max, floor_ms_mean, step_ms_median, decision_ms, decision_ms_max;
  int decisions;
  int64_t deferred; /* window boundaries a due decision was not finished at */
  double compute_ms_sum, compute_ms_max; /* per step: GEMM time summed / max over ranks */
  int rebalances, skipped, failed;
  int64_t moves, steps;
  uint64_t bytes_moved;
  uint64_t cross_node_bytes; /* of bytes_moved: transfers between two nodes */
  uint64_t *hash; /* rank 0: [L][E] final state hash of every expert */
  int replicas_consistent;
} phase_result;

/* One of the two runs. The two are interleaved block by block (see main),
 * so that both see the same background load on a shared machine. */
typedef struct phase {
  int dynamic, rank, R, L, E, S, done;
  moeplace_trace *tr;
  moeplace_runtime *rt;
  model md;
  size_t cap;
  uint64_t *counts, *tok;
  long long *rank_tok;
  moeplace_replica *reps;
  float *x, *h, *y;
  double busy_s, imb_sum;
  double compute_s; /* this rank's time in expert GEMMs */
  long long nsteps;
  int *node;        /* [R] node of each rank, as the runtime discovered it */
  int *place;       /* [L][R][S] the placement in force (dynamic run) */
  size_t expert_bytes;
  uint64_t cross_node_bytes;
  double decision_max; /* coordinator: longest decision (info.decision_s) */
  int decisions;       /* decisions applied */
  FILE *commits;    /* --commit-log: this rank's committed placements */
  /* Dynamic run, per step: this rank's time inside moeplace_runtime_step(),
   * the whole step's wall time, and whether the step took part in a
   * rebalance (1: request boundary, 2: applied a decision or migrated). */
  double *t_in, *t_wall;
  unsigned char *reb;
  size_t tcap;
} phase;

static void log_commit(phase *ph, long long step) {
  if (!ph->commits) return;
  uint64_t h = XXH3_64bits(ph->place, (size_t)ph->L * ph->R * ph->S * sizeof *ph->place);
  fprintf(ph->commits, "step %lld placement %016llx\n", step, (unsigned long long)h);
  fflush(ph->commits);
}

static int phase_open(const opts *o, int dynamic, phase *ph) {
  memset(ph, 0, sizeof *ph);
  ph->dynamic = dynamic;
  MPI_Comm_rank(MPI_COMM_WORLD, &ph->rank);
  MPI_Comm_size(MPI_COMM_WORLD, &ph->R);
  int st = moeplace_trace_open(&ph->tr, o->trace);
  if (st != MOEPLACE_OK) return st;
  int L = ph->L = moeplace_trace_layers(ph->tr), E = ph->E = moeplace_trace_experts(ph->tr);
  int R = ph->R;
  int S = o->slots ? (int)o->slots : (E + R - 1) / R + 1;
  if (S > E) S = E;
  ph->S = S;
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = L;
  cfg.experts = E;
  cfg.slots_per_rank = S;
  cfg.window = (int)o->window;
  cfg.rebalance_interval = dynamic ? (int)o->interval : 0;
  cfg.migration_tradeoff = 0.02;
  cfg.min_gain = 0.01;
  cfg.predictor = o->predictor;
  cfg.ranks_per_node = (int)o->ranks_per_node;
  cfg.cluster_file = o->cluster_file;
  cfg.collective_timeout_s = o->timeout_s;
  cfg.groups = dynamic ? (int)o->groups : 0;
  cfg.shares = o->shares;
  cfg.load_samples = (int)o->samples;
  // Every rebalance at an interval boundary, where the stall statistics
  // look for them: the demo measures the steady state (phases alternate in
  // blocks of an interval), not a job's first interval.
  cfg.warmup_steps = 0;
  st = moeplace_runtime_create(&ph->rt, MPI_COMM_WORLD, &cfg);
  if (st != MOEPLACE_OK) return st;
  model *md = &ph->md;
  *md = (model){L, S, (int)o->d, (int)o->f, (size_t)(2 * o->d * o->f), NULL, NULL};
  ph->node = malloc((size_t)R * sizeof *ph->node);
  ph->place = malloc((size_t)L * R * S * sizeof *ph->place);
  if (!ph->node || !ph->place) {
    fprintf(stderr, "%s: out of memory\n", prog);
    MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
  }
  for (int r = 0; r < R; r++) moeplace_runtime_topology(ph->rt, r, &ph->node[r], NULL, NULL);
  moeplace_runtime_get_placement(ph->rt, ph->place, NULL);
  if (dynamic && o->commit_log) {
    char path[4096];
    snprintf(path, sizeof path, "%s.%d", o->commit_log, ph->rank);
    ph->commits = fopen(path, "w");
    if (!ph->commits) {
      fprintf(stderr, "%s: --commit-log: cannot write %s\n", prog, path);
      MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
    }
    log_commit(ph, 0);
  }
  ph->expert_bytes = 2 * (size_t)(2 * o->d * o->f) * sizeof(float);
  md->w = calloc((size_t)L * S, sizeof *md->w);
  md->m = calloc((size_t)L * S, sizeof *md->m);
  ph->counts = malloc((size_t)L * E * sizeof *ph->counts); // counts: [L][E]
  ph->tok = malloc((size_t)S * sizeof *ph->tok);
  ph->rank_tok = malloc((size_t)R * sizeof *ph->rank_tok);
  ph->reps = malloc((size_t)R * sizeof *ph->reps);
  if (!md->w || !md->m || !ph->counts || !ph->tok || !ph->rank_tok || !ph->reps) {
    fprintf(stderr, "%s: out of memory\n", prog);
    MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
  }
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S; s++) {
      int e;
      moeplace_runtime_local_expert(ph->rt, l, s, &e, NULL);
      // The runtime owns the state (zeroed), so that migration commits by
      // swapping buffers; the addresses are refreshed after a rebalance.
      void *w = NULL, *m = NULL;
      st = moeplace_runtime_alloc_buffer(ph->rt, l, s, md->n * sizeof(float), &w);
      if (st == MOEPLACE_OK) st = moeplace_runtime_alloc_buffer(ph->rt, l, s, md->n * sizeof(float), &m);
      if (st != MOEPLACE_OK) return st;
      md->w[l * S + s] = w;
      md->m[l * S + s] = m;
      for (size_t i = 0; i < md->n; i++) md->w[l * S + s][i] = init_value(l, e, i);
    }
  return MOEPLACE_OK;
}

/* Bytes of the migration from placement `old` to `cur` that crossed nodes:
 * an expert arriving in a slot of a node where no rank held it before. The
 * runtime takes every transfer from the closest holder (moeplace_migration_plan), so
 * a node that already held the expert copies it within the node. */
static uint64_t cross_node_bytes(const phase *ph, const int *old, const int *cur) {
  int L = ph->L, R = ph->R, S = ph->S;
  uint64_t bytes = 0;
  for (int l = 0; l < L; l++)
    for (int r = 0; r < R; r++)
      for (int s = 0; s < S; s++) {
        int e = cur[((size_t)l * R + r) * S + s];
        if (e < 0 || old[((size_t)l * R + r) * S + s] == e) continue;
        int on_node = 0;
        for (int q = 0; q < R && !on_node; q++) {
          if (ph->node[q] != ph->node[r]) continue;
          for (int t = 0; t < S && !on_node; t++) on_node = old[((size_t)l * R + q) * S + t] == e;
        }
        if (!on_node) bytes += ph->expert_bytes;
      }
  return bytes;
}

/* The demo computes every token: an expert's count x --token-scale must fit
 * a GEMM dimension (an int), which also keeps the per-rank sums exact. */
#define DEMO_MAX_TOKENS 2147483647.0
static int counts_reported; /* a bad count was reported: exit 2, no other message */

/* Refuses a step whose scaled counts exceed DEMO_MAX_TOKENS (every rank reads
 * the same trace, so every rank refuses the same step; rank 0 says why). */
static int check_counts(const opts *o, const phase *ph, int64_t step_id) {
  for (int l = 0; l < ph->L; l++)
    for (int e = 0; e < ph->E; e++) {
      uint64_t c = ph->counts[(size_t)l * ph->E + e];
      if ((double)c * o->token_scale <= DEMO_MAX_TOKENS) continue;
      if (ph->rank == 0)
        fprintf(stderr,
                "%s: %s: step %lld layer %d expert e%d: %llu tokens x --token-scale %g exceed "
                "the demo's limit of %.0f tokens per expert and step (it computes every token)\n",
                prog, o->trace, (long long)step_id, l, e, (unsigned long long)c, o->token_scale,
                DEMO_MAX_TOKENS);
      counts_reported = 1;
      return MOEPLACE_ERR_FORMAT;
    }
  return MOEPLACE_OK;
}

/* Runs up to `block` steps (fewer at the end of the trace or of --steps). */
static int phase_run(const opts *o, phase *ph, long long block) {
  int L = ph->L, E = ph->E, S = ph->S, R = ph->R, rank = ph->rank;
  model *md = &ph->md;
  int st = MOEPLACE_OK;
  int64_t step_id;
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = mp_now_s();
  for (long long b = 0; b < block && st == MOEPLACE_OK; b++) {
    double w0 = mp_now_s();
    if (o->steps && ph->nsteps >= o->steps) {
      ph->done = 1;
      break;
    }
    int got = moeplace_trace_read_step(ph->tr, &step_id, ph->counts);
    if (got < 0) st = got;
    if (got <= 0) {
      ph->done = 1;
      break;
    }
    if ((st = check_counts(o, ph, step_id)) != MOEPLACE_OK) break;
    double sum_max = 0.0, sum_mean = 0.0;
    for (int l = 0; l < L; l++) {
      memset(ph->rank_tok, 0, (size_t)R * sizeof *ph->rank_tok);
      for (int e = 0; e < E; e++) {
        // Split the expert's tokens over its replicas by cumulative share,
        // so the parts sum exactly to the count.
        uint64_t c = (uint64_t)llround((double)ph->counts[(size_t)l * E + e] * o->token_scale);
        int n = 0;
        moeplace_runtime_routing(ph->rt, l, e, ph->reps, R, &n);
        double cum = 0.0;
        long long prev = 0;
        for (int i = 0; i < n; i++) {
          cum += ph->reps[i].share;
          long long upto = i == n - 1 ? (long long)c : llround((double)c * cum);
          long long part = upto - prev > 0 ? upto - prev : 0;
          prev = upto > prev ? upto : prev;
          ph->rank_tok[ph->reps[i].rank] += part;
          if (ph->reps[i].rank == rank) ph->tok[ph->reps[i].slot] = (uint64_t)part;
        }
      }
      long long mx = 0, sum = 0;
      for (int r = 0; r < R; r++) {
        mx = ph->rank_tok[r] > mx ? ph->rank_tok[r] : mx;
        sum += ph->rank_tok[r];
      }
      sum_max += (double)mx;
      sum_mean += (double)sum / R;
      // The expert computation for this rank's replicas.
      double c0 = mp_now_s();
      for (int s = 0; s < S; s++) {
        int e;
        moeplace_runtime_local_expert(ph->rt, l, s, &e, NULL);
        if (e < 0) ph->tok[s] = 0;
        size_t T = ph->tok[s];
        if (!T) continue;
        if (T > ph->cap) {
          ph->cap = T;
          ph->x = realloc(ph->x, T * md->d * sizeof *ph->x);
          ph->h = realloc(ph->h, T * md->f * sizeof *ph->h);
          ph->y = realloc(ph->y, T * md->d * sizeof *ph->y);
          if (!ph->x || !ph->h || !ph->y) {
            fprintf(stderr, "%s: out of memory for activations\n", prog);
            MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
          }
          for (size_t i = 0; i < T * md->d; i++) ph->x[i] = (float)((i * 2654435761u) % 1000) * 1e-3f;
        }
        const float *w1 = md->w[l * S + s], *w2 = w1 + (size_t)md->d * md->f;
        // h: [T][f] = x [T][d] @ W1 [d][f]; relu; y: [T][d] = h @ W2 [f][d]
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, md->f, md->d, 1.0f, ph->x,
                    md->d, w1, md->f, 0.0f, ph->h, md->f);
        for (size_t i = 0; i < T * md->f; i++) ph->h[i] = ph->h[i] > 0.0f ? ph->h[i] : 0.0f;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)T, md->d, md->f, 1.0f, ph->h,
                    md->f, w2, md->d, 0.0f, ph->y, md->d);
      }
      ph->compute_s += mp_now_s() - c0;
      moeplace_runtime_record(ph->rt, l, ph->tok);
      MPI_Barrier(MPI_COMM_WORLD); // the layer's all-to-all: everyone waits for the slowest
    }
    ph->imb_sum += mp_imbalance_ratio(sum_max, sum_mean); // metrics.md, per step
    for (int l = 0; l < L; l++)
      for (int s = 0; s < S; s++) {
        int e;
        moeplace_runtime_local_expert(ph->rt, l, s, &e, NULL);
        if (e >= 0) update(md->w[l * S + s], md->m[l * S + s], md->n, e, ph->nsteps);
      }
    moeplace_step_info info;
    double s0 = mp_now_s();
    st = moeplace_runtime_step(ph->rt, &info);
    double in_step = mp_now_s() - s0;
    if (st == MOEPLACE_ERR_VERIFY) st = MOEPLACE_OK; // rolled back: training goes on, counted
    if (ph->dynamic && info.decision_s > 0 && info.decision_s > ph->decision_max)
      ph->decision_max = info.decision_s;
    ph->decisions += info.rebalance_checked;
    if (info.rebalanced) { // count what crossed nodes, then take the new placement
      int *cur = malloc((size_t)L * R * S * sizeof *cur);
      if (!cur) {
        fprintf(stderr, "%s: out of memory\n", prog);
        MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
      }
      moeplace_runtime_get_placement(ph->rt, cur, NULL);
      ph->cross_node_bytes += cross_node_bytes(ph, ph->place, cur);
      free(ph->place);
      ph->place = cur;
    }
    if (info.rebalanced) log_commit(ph, ph->nsteps + 1); // numbered as in the messages below
    if (info.rebalanced) // migrated slots hold their new expert in new memory
      for (int l = 0; l < L; l++)
        for (int s = 0; s < S; s++) {
          void *p;
          moeplace_runtime_buffer(ph->rt, l, s, 0, &p, NULL);
          md->w[l * S + s] = p;
          moeplace_runtime_buffer(ph->rt, l, s, 1, &p, NULL);
          md->m[l * S + s] = p;
        }
    if (ph->dynamic) {
      if ((size_t)ph->nsteps >= ph->tcap) {
        ph->tcap = ph->tcap ? 2 * ph->tcap : 1024;
        ph->t_in = realloc(ph->t_in, ph->tcap * sizeof *ph->t_in);
        ph->t_wall = realloc(ph->t_wall, ph->tcap * sizeof *ph->t_wall);
        ph->reb = realloc(ph->reb, ph->tcap);
        if (!ph->t_in || !ph->t_wall || !ph->reb) {
          fprintf(stderr, "%s: out of memory\n", prog);
          MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
        }
      }
      ph->t_in[ph->nsteps] = in_step;
      ph->t_wall[ph->nsteps] = mp_now_s() - w0;
      ph->reb[ph->nsteps] = info.rebalance_checked || info.rebalanced ? 2
                            : (ph->nsteps + 1) % o->interval == 0 ? 1 : 0;
    }
    ph->nsteps++;
    if (rank == 0 && info.rebalanced)
      fprintf(stderr,
              "%s: step %lld: rebalanced, %d moves, %.1f KiB, %.2f ms, predicted imbalance %.3f -> %.3f\n",
              prog, ph->nsteps, info.moves, info.bytes_moved / 1024.0, info.migration_s * 1e3,
              info.predicted_imbalance_old, info.predicted_imbalance_new);
  }
  // a rank or a link is gone (collective_timeout_s, --timeout): the caller
  // reports it at once; a barrier would wait for the lost ranks for ever
  if (st == MOEPLACE_ERR_MPI || st == MOEPLACE_ERR_STATE) return st;
  MPI_Barrier(MPI_COMM_WORLD);
  ph->busy_s += mp_now_s() - t0;
  return st;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

static double median(const double *v, size_t n) {
  if (!n) return 0.0;
  double *c = malloc(n * sizeof *c);
  if (!c) return 0.0;
  memcpy(c, v, n * sizeof *c);
  qsort(c, n, sizeof *c, cmp_double);
  double m = n % 2 ? c[n / 2] : 0.5 * (c[n / 2 - 1] + c[n / 2]);
  free(c);
  return m;
}

/* The rank's median time inside step() over the steps around rebalance k
 * (steps (k-1) * interval + 1 .. (k+1) * interval) that did not rebalance
 * and are of the same kind as step s (closing a window or not): what step s
 * would have cost without the rebalance. Local, not the whole run's median:
 * a step closing a window waits in the window's gather for the slowest
 * rank, and that wait changes with the placement in force and with the
 * machine's other load over seconds (measured: one rank's optimizer update
 * 0.4 ms slower for 2 s on this 2-core machine), which is not the
 * rebalance's cost. */
static double local_base(const opts *o, const phase *ph, long long k, long long s) {
  const long long lo = (k - 1) * o->interval, hi = (k + 1) * o->interval;
  const int closes = s % o->window == 0;
  double *v = malloc((size_t)(hi - lo) * sizeof *v);
  size_t m = 0;
  for (long long i = lo > 0 ? lo : 0; v && i < hi && i < ph->nsteps; i++)
    if (!ph->reb[i] && ((i + 1) % o->window == 0) == closes) v[m++] = ph->t_in[i];
  double med = median(v, m);
  free(v);
  return med;
}

/* The steps of rebalance k, shifted by `shift` steps, and each one's time
 * inside moeplace_runtime_step() beyond local_base(), summed per k into
 * extra[K]. shift = 0: the rebalance's own steps (its request boundary, step
 * k * interval, and the steps that applied its decision or migrated, in
 * (k * interval, (k+1) * interval]). shift > 0: the same kind of steps half
 * an interval later, which did not rebalance: the noise floor. */
static void stall_sums(const opts *o, const phase *ph, long long shift, double *extra, int *used) {
  for (long long i = 0; i < ph->nsteps; i++) {
    if (!ph->reb[i]) continue;
    long long j = i + shift, s = i + 1, k = ph->reb[i] == 1 ? s / o->interval : (s - 1) / o->interval;
    if (j >= ph->nsteps || (shift && ph->reb[j])) continue;
    const double base = local_base(o, ph, k, j + 1);
    extra[k] += ph->t_in[j] > base ? ph->t_in[j] - base : 0.0;
    used[k] = 1;
  }
}

/* Max and mean over rebalances of the slowest rank's stall_sums()
 * (collective; figures on rank 0, in ms). */
static void stall_stats(const opts *o, const phase *ph, long long shift, double *mx_ms,
                        double *mean_ms) {
  long long K = ph->nsteps / o->interval + 1;
  double *extra = calloc((size_t)K, sizeof *extra), *worst = calloc((size_t)K, sizeof *worst);
  int *used = calloc((size_t)K, sizeof *used);
  if (!extra || !worst || !used) {
    fprintf(stderr, "%s: out of memory\n", prog);
    MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
  }
  stall_sums(o, ph, shift, extra, used);
  MPI_Reduce(extra, worst, (int)K, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  double mx = 0, sum = 0;
  int cnt = 0;
  for (long long k = 0; k < K; k++) {
    if (!used[k]) continue;
    mx = worst[k] > mx ? worst[k] : mx;
    sum += worst[k];
    cnt++;
  }
  *mx_ms = mx * 1e3;
  *mean_ms = cnt ? sum / cnt * 1e3 : 0.0;
  free(extra);
  free(worst);
  free(used);
}

/* The stall of every rebalance, and the same figure for steps that did not
 * rebalance (the machine's own noise: on a shared 2-core machine a rank
 * descheduled for 0.5 ms makes the other wait that long in any collective;
 * a stall near the floor is noise, not the rebalance's cost). The shift
 * keeps the kind of step (window multiple) and stays inside the interval. */
static void stall_figures(const opts *o, const phase *ph, phase_result *res) {
  stall_stats(o, ph, 0, &res->stall_ms_max, &res->stall_ms_mean);
  const long long shift = o->interval / 2 / o->window * o->window;
  res->floor_ms_max = res->floor_ms_mean = 0.0;
  if (shift > 0) stall_stats(o, ph, shift, &res->floor_ms_max, &res->floor_ms_mean);
  res->step_ms_median = median(ph->t_wall, (size_t)ph->nsteps) * 1e3;
}

/* Final figures and a hash of every expert's state, gathered on rank 0. */
static void phase_free(phase *ph);

static void phase_close(const opts *o, phase *ph, phase_result *res) {
  int L = ph->L, E = ph->E, S = ph->S, R = ph->R, rank = ph->rank;
  memset(res, 0, sizeof *res);
  res->steps = ph->nsteps;
  res->step_ms = ph->nsteps ? ph->busy_s / ph->nsteps * 1e3 : 0.0;
  res->imbalance = ph->nsteps ? ph->imb_sum / ph->nsteps : 0.0;
  moeplace_runtime_stats stats;
  moeplace_runtime_get_stats(ph->rt, &stats);
  res->rebalances = stats.rebalances;
  res->skipped = stats.rebalances_skipped;
  res->failed = stats.migrations_failed;
  res->moves = stats.moves;
  res->bytes_moved = stats.bytes_moved;
  res->migration_s = stats.migration_s;
  res->decision_s = stats.decision_s;
  res->cross_node_bytes = ph->cross_node_bytes;
  if (ph->dynamic) {
    stall_figures(o, ph, res);
    res->decisions = ph->decisions;
    res->decision_ms = ph->decisions ? stats.decision_s / ph->decisions * 1e3 : 0.0;
    res->decision_ms_max = ph->decision_max * 1e3;
    res->deferred = stats.decisions_deferred;
    res->decider_cpu_s = stats.decider_cpu_s; // the coordinator's: rank 0 reports it
  }
  double c_sum = 0, c_max = 0;
  MPI_Reduce(&ph->compute_s, &c_sum, 1, MPI_DOUBLE, MPI_SUM, 0, MPI_COMM_WORLD);
  MPI_Reduce(&ph->compute_s, &c_max, 1, MPI_DOUBLE, MPI_MAX, 0, MPI_COMM_WORLD);
  res->compute_ms_sum = ph->nsteps ? c_sum / ph->nsteps * 1e3 : 0.0;
  res->compute_ms_max = ph->nsteps ? c_max / ph->nsteps * 1e3 : 0.0;
  uint64_t *mine = malloc((size_t)L * S * 2 * sizeof *mine);
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S; s++) {
      int e;
      moeplace_runtime_local_expert(ph->rt, l, s, &e, NULL);
      XXH3_state_t *hs = XXH3_createState();
      XXH3_64bits_reset(hs);
      XXH3_64bits_update(hs, ph->md.w[l * S + s], ph->md.n * sizeof(float));
      XXH3_64bits_update(hs, ph->md.m[l * S + s], ph->md.n * sizeof(float));
      mine[(l * S + s) * 2] = (uint64_t)(int64_t)e;
      mine[(l * S + s) * 2 + 1] = XXH3_64bits_digest(hs);
      XXH3_freeState(hs);
    }
  uint64_t *all = rank == 0 ? malloc((size_t)R * L * S * 2 * sizeof *all) : NULL;
  MPI_Gather(mine, L * S * 2, MPI_UINT64_T, all, L * S * 2, MPI_UINT64_T, 0, MPI_COMM_WORLD);
  if (rank == 0) {
    res->hash = calloc((size_t)L * E, sizeof *res->hash);
    res->replicas_consistent = 1;
    for (int r = 0; r < R; r++)
      for (int l = 0; l < L; l++)
        for (int s = 0; s < S; s++) {
          const uint64_t *p = all + (((size_t)r * L + l) * S + s) * 2;
          int e = (int)(int64_t)p[0];
          if (e < 0) continue;
          uint64_t *slot = &res->hash[(size_t)l * E + e];
          if (*slot && *slot != p[1]) res->replicas_consistent = 0;
          *slot = p[1];
        }
  }
  free(all);
  free(mine);
  phase_free(ph);
}

/* Releases a phase (collective: destroys its runtime). */
static void phase_free(phase *ph) {
  free(ph->md.w);
  free(ph->md.m);
  free(ph->x);
  free(ph->h);
  free(ph->y);
  free(ph->counts);
  free(ph->tok);
  free(ph->rank_tok);
  free(ph->reps);
  free(ph->node);
  free(ph->place);
  free(ph->t_in);
  free(ph->t_wall);
  free(ph->reb);
  if (ph->commits) fclose(ph->commits);
  moeplace_runtime_destroy(ph->rt);
  moeplace_trace_close(ph->tr);
  memset(ph, 0, sizeof *ph);
}

static json_t *phase_json(const phase_result *p, int dynamic) {
  json_t *o = json_object();
  json_object_set_new(o, "steps", json_integer(p->steps));
  json_object_set_new(o, "step_ms", json_real(p->step_ms));
  json_object_set_new(o, "imbalance", json_real(p->imbalance));
  json_object_set_new(o, "compute_ms_sum", json_real(p->compute_ms_sum));
  json_object_set_new(o, "compute_ms_max", json_real(p->compute_ms_max));
  if (dynamic) {
    json_object_set_new(o, "rebalances", json_integer(p->rebalances));
    json_object_set_new(o, "rebalances_skipped", json_integer(p->skipped));
    json_object_set_new(o, "migrations_failed", json_integer(p->failed));
    json_object_set_new(o, "moves", json_integer(p->moves));
    json_object_set_new(o, "bytes_moved", json_integer((json_int_t)p->bytes_moved));
    json_object_set_new(o, "cross_node_bytes", json_integer((json_int_t)p->cross_node_bytes));
    json_object_set_new(o, "migration_s", json_real(p->migration_s));
    json_object_set_new(o, "migration_gbps",
                        json_real(p->migration_s > 0 ? p->bytes_moved / p->migration_s / 1e9 : 0.0));
    json_object_set_new(o, "decision_s", json_real(p->decision_s));
    json_object_set_new(o, "decisions", json_integer(p->decisions));
    json_object_set_new(o, "decision_ms", json_real(p->decision_ms));
    json_object_set_new(o, "decision_ms_max", json_real(p->decision_ms_max));
    json_object_set_new(o, "decider_cpu_s", json_real(p->decider_cpu_s));
    json_object_set_new(o, "decisions_deferred", json_integer((json_int_t)p->deferred));
    json_object_set_new(o, "stall_ms_max", json_real(p->stall_ms_max));
    json_object_set_new(o, "stall_ms_mean", json_real(p->stall_ms_mean));
    json_object_set_new(o, "stall_floor_ms_max", json_real(p->floor_ms_max));
    json_object_set_new(o, "stall_floor_ms_mean", json_real(p->floor_ms_mean));
    json_object_set_new(o, "step_ms_median", json_real(p->step_ms_median));
  }
  return o;
}

int main(int argc, char **argv) {
  // The runtime's decision thread never calls MPI: MPI_THREAD_FUNNELED is
  // enough (moeplace_runtime_create checks what MPI provided).
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  openblas_set_num_threads(1); // one rank per core: no BLAS threads on top
  int rank, R;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc != 0) {
    MPI_Finalize();
    return rc < 0 ? CLI_EXIT_OK : rc;
  }
  // Both runs advance block by block in turn (one rebalance interval each),
  // so that a change in the machine's background load hits both alike. The
  // moeplace run's blocks are offset by half an interval, so that each of
  // its rebalance boundaries falls mid-block: the decision thread's work
  // after a boundary (on rank 0's core) then slows its own run, not the
  // static run's next block (blocks ending at the boundary measured `auto`,
  // the most costly predictor, 1.15-1.19x faster, mostly from a static run
  // slowed to 4.6 ms/step against 3.8 ms/step with `sw_avg`).
  phase runs[2];
  phase_result ph[2];
  for (int dyn = 0; dyn < 2; dyn++) {
    int st = phase_open(&o, dyn, &runs[dyn]);
    if (st != MOEPLACE_OK) {
      rc = cli_report(prog, st);
      MPI_Finalize();
      return rc;
    }
  }
  if (rank == 0)
    fprintf(stderr, "%s: %s, %d ranks: static and moeplace runs interleaved every %lld steps\n",
            prog, o.trace, R, o.interval);
  while (!runs[0].done || !runs[1].done) {
    for (int dyn = 0; dyn < 2; dyn++) {
      if (runs[dyn].done) continue;
      long long block = dyn && runs[dyn].nsteps == 0 ? (o.interval + 1) / 2 : o.interval;
      int st = phase_run(&o, &runs[dyn], block);
      if (st != MOEPLACE_OK) {
        rc = counts_reported ? CLI_EXIT_USAGE : cli_report(prog, st);
        if (counts_reported) // every rank refused the same step: the collective destroys match
          for (int k = 0; k < 2; k++) phase_free(&runs[k]);
        MPI_Finalize();
        return rc;
      }
    }
    if (rank == 0 && runs[0].nsteps % (5 * o.interval) == 0 && runs[0].nsteps)
      fprintf(stderr, "%s: step %lld: static %.2f ms/step, moeplace %.2f ms/step\n", prog,
              runs[0].nsteps, runs[0].busy_s / runs[0].nsteps * 1e3,
              runs[1].nsteps ? runs[1].busy_s / runs[1].nsteps * 1e3 : 0.0);
  }
  int nodes = 0; // distinct nodes of the topology the runtime discovered
  for (int r = 0; r < R; r++) {
    int seen = 0;
    for (int q = 0; q < r && !seen; q++) seen = runs[0].node[q] == runs[0].node[r];
    nodes += !seen;
  }
  for (int dyn = 0; dyn < 2; dyn++) phase_close(&o, &runs[dyn], &ph[dyn]);
  rc = CLI_EXIT_OK;
  if (rank == 0) {
    moeplace_trace *tr = NULL;
    moeplace_trace_open(&tr, o.trace);
    int L = moeplace_trace_layers(tr), E = moeplace_trace_experts(tr);
    moeplace_trace_close(tr);
    int differ = 0;
    for (int i = 0; i < L * E; i++) differ += ph[0].hash[i] != ph[1].hash[i];
    int identical = !differ && ph[0].replicas_consistent && ph[1].replicas_consistent;
    double speedup = ph[1].step_ms > 0 ? ph[0].step_ms / ph[1].step_ms : 0.0;
    printf("moeplace-demo: %s, %lld steps, %d ranks on %d node%s, %d layers x %d experts\n",
           o.trace, (long long)ph[0].steps, R, nodes, nodes == 1 ? "" : "s", L, E);
    printf("%-10s %10s %10s %16s %16s\n", "phase", "step_ms", "imbalance", "gemm_ms_all_ranks",
           "gemm_ms_max_rank");
    for (int i = 0; i < 2; i++)
      printf("%-10s %10.3f %10.3f %16.3f %16.3f\n", i ? "dynamic" : "static", ph[i].step_ms,
             ph[i].imbalance, ph[i].compute_ms_sum, ph[i].compute_ms_max);
    printf("speedup (static/dynamic step time): %.3f\n", speedup);
    printf("rebalances %d (skipped %d, failed %d), moves %lld, bytes moved %llu, migration %.3f s",
           ph[1].rebalances, ph[1].skipped, ph[1].failed, (long long)ph[1].moves,
           (unsigned long long)ph[1].bytes_moved, ph[1].migration_s);
    if (ph[1].migration_s > 0) printf(" (%.2f GB/s)", ph[1].bytes_moved / ph[1].migration_s / 1e9);
    if (nodes > 1) printf(", %llu bytes between nodes", (unsigned long long)ph[1].cross_node_bytes);
    printf("\ndecisions %d on the coordinator's thread: %.3f ms mean, %.3f ms max (predictor %s), "
           "%lld times not finished when due (applied a window later, nobody waiting)\n"
           "stall per rebalance (slowest rank, time in step() beyond its median): %.3f ms max, "
           "%.3f ms mean; median step %.3f ms (max stall = %.1f%% of it)",
           ph[1].decisions, ph[1].decision_ms, ph[1].decision_ms_max, o.predictor,
           (long long)ph[1].deferred, ph[1].stall_ms_max, ph[1].stall_ms_mean, ph[1].step_ms_median,
           ph[1].step_ms_median > 0 ? 100.0 * ph[1].stall_ms_max / ph[1].step_ms_median : 0.0);
    printf("\ndecision thread CPU %.3f s, %.1f%% of the moeplace run's time (taken from rank 0's "
           "core when no core is spare)", ph[1].decider_cpu_s,
           ph[1].step_ms > 0 ? 100.0 * ph[1].decider_cpu_s / (ph[1].step_ms * 1e-3 * ph[1].steps) : 0.0);
    printf("\nnoise floor (the same figure on steps half an interval later that did not "
           "rebalance): %.3f ms max, %.3f ms mean", ph[1].floor_ms_max, ph[1].floor_ms_mean);
    printf("\nfinal weights: %d of %d experts differ between static and dynamic runs -> %s\n",
           differ, L * E, identical ? "bit-identical" : "MISMATCH");
    json_t *root = json_object();
    json_object_set_new(root, "trace", json_string(o.trace));
    json_object_set_new(root, "ranks", json_integer(R));
    json_object_set_new(root, "nodes", json_integer(nodes));
    json_object_set_new(root, "static", phase_json(&ph[0], 0));
    json_object_set_new(root, "dynamic", phase_json(&ph[1], 1));
    json_object_set_new(root, "speedup", json_real(speedup));
    json_object_set_new(root, "weights_identical", json_boolean(identical));
    json_object_set_new(root, "experts_differing", json_integer(differ));
    json_object_set_new(root, "expert_bytes", json_integer((json_int_t)(4 * o.d * o.f * sizeof(float))));
    if (o.json) {
      int st = mp_json_write_file(root, o.json);
      if (st != MOEPLACE_OK) rc = cli_report(prog, st);
    }
    json_decref(root);
    if (!identical) rc = CLI_EXIT_FAILURE;
    free(ph[0].hash);
    free(ph[1].hash);
  }
  MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
  MPI_Finalize();
  return rc;
}
