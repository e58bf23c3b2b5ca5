/* moeplace-bench: the runtime's costs, each next to its baseline measured in
 * the same run.
 *   - migration: every rank moves `--experts` experts of each size to the
 *     next rank through moeplace (chunked, checksummed, agreed, committed)
 *     and, alternately, the same bytes between the same ranks with plain
 *     MPI_Isend/MPI_Irecv; best of --reps for both.
 *   - aggregation: a step that closes a window (one MPI_Gather) with the
 *     given layers x slots.
 *   - record: one moeplace_runtime_record() call for one layer.
 * Bandwidths are in GB/s (1e9 bytes per second) of bytes moved between
 * ranks, summed over all ranks, over the slowest rank's wall time. */
#include "config.h"

#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <moeplace/runtime.h>
#include <unistd.h>
#include <xxhash.h>
/* The same XXH3 the runtime's migration engine uses (runtime/migrate.c). */
#if defined(__x86_64__) && defined(__has_include)
#if __has_include(<xxh_x86dispatch.h>)
#include <xxh_x86dispatch.h>
#define BENCH_XXH_DISPATCH 1
#endif
#endif

#include "common/json_file.h"
#include "common/timer.h"
#include "tools/cli.h"

static const char *prog = "moeplace-bench";

static void usage(FILE *out) {
  fprintf(out,
          "Usage: mpirun -np N moeplace-bench [OPTIONS]\n"
          "\n"
          "Measures moeplace's migration bandwidth against plain MPI point-to-point\n"
          "transfers of the same bytes between the same ranks, the latency of window\n"
          "aggregation and the cost of recording a layer's loads. Needs >= 2 ranks.\n"
          "\n"
          "Options:\n"
          "  --sizes LIST        expert sizes in KiB, comma separated\n"
          "                      (default 64,256,1024,4096,16384)\n"
          "  --experts N         experts each rank sends per size (default 4)\n"
          "  --reps N            repetitions, best kept (default 9)\n"
          "  --chunk KIB         migration chunk size in KiB (default 1024)\n"
          "  --layers N          layers for aggregation/record (default 4)\n"
          "  --slots N           slots per rank for aggregation/record (default 16)\n"
          "  --iters N           aggregation and record iterations (default 2000)\n"
          "  --json OUT          write the figures as JSON to OUT\n"
          "  --help              this text\n");
}

typedef struct opts {
  long long sizes_kib[32];
  int nsizes;
  long long experts, reps, chunk_kib, layers, slots, iters;
  const char *json;
} opts;

static int parse(int argc, char **argv, opts *o) {
  cli_set_prog(prog, argv);
  static const struct option lo[] = {
      {"sizes", required_argument, NULL, 's'}, {"experts", required_argument, NULL, 'e'},
      {"reps", required_argument, NULL, 'r'},  {"chunk", required_argument, NULL, 'c'},
      {"layers", required_argument, NULL, 'l'}, {"slots", required_argument, NULL, 'S'},
      {"iters", required_argument, NULL, 'i'}, {"json", required_argument, NULL, 'j'},
      {"help", no_argument, NULL, 'h'},        {NULL, 0, NULL, 0}};
  *o = (opts){.nsizes = 5, .experts = 4, .reps = 9, .chunk_kib = 1024, .layers = 4,
              .slots = 16, .iters = 2000};
  long long def[] = {64, 256, 1024, 4096, 16384};
  memcpy(o->sizes_kib, def, sizeof def);
  int c;
  while ((c = getopt_long(argc, argv, "h", lo, NULL)) != -1) {
    switch (c) {
    case 's': {
      o->nsizes = 0;
      char *copy = strdup(optarg), *save = NULL;
      for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (o->nsizes == 32 ||
            cli_parse_int(prog, "--sizes", tok, 1, 1 << 20, &o->sizes_kib[o->nsizes]) < 0) {
          free(copy);
          return CLI_EXIT_USAGE;
        }
        o->nsizes++;
      }
      free(copy);
      if (!o->nsizes) {
        fprintf(stderr, "%s: --sizes: empty list\n", prog);
        return CLI_EXIT_USAGE;
      }
      break;
    }
    case 'e': if (cli_parse_int(prog, "--experts", optarg, 1, 1024, &o->experts) < 0) return CLI_EXIT_USAGE; break;
    case 'r': if (cli_parse_int(prog, "--reps", optarg, 1, 1000, &o->reps) < 0) return CLI_EXIT_USAGE; break;
    case 'c': if (cli_parse_int(prog, "--chunk", optarg, 1, 1 << 20, &o->chunk_kib) < 0) return CLI_EXIT_USAGE; break;
    case 'l': if (cli_parse_int(prog, "--layers", optarg, 1, 4096, &o->layers) < 0) return CLI_EXIT_USAGE; break;
    case 'S': if (cli_parse_int(prog, "--slots", optarg, 1, 4096, &o->slots) < 0) return CLI_EXIT_USAGE; break;
    case 'i': if (cli_parse_int(prog, "--iters", optarg, 1, 100000000, &o->iters) < 0) return CLI_EXIT_USAGE; break;
    case 'j': o->json = optarg; break;
    case 'h': usage(stdout); return -1;
    default: usage(stderr); return CLI_EXIT_USAGE;
    }
  }
  if (cli_no_operands(prog, argc, argv, optind)) return CLI_EXIT_USAGE;
  return 0;
}

static double max_over_ranks(double v) {
  double m;
  MPI_Allreduce(&v, &m, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
  return m;
}

/* Plain MPI: n messages of `bytes` to the next rank, n from the previous. */
static double raw_transfer(int rank, int R, int n, size_t bytes, char **src, char **dst) {
  MPI_Request *req = malloc((size_t)2 * n * sizeof *req);
  int to = (rank + R - 1) % R, from = (rank + 1) % R; // same direction as the rotation below
  MPI_Barrier(MPI_COMM_WORLD);
  double t0 = mp_now_s();
  for (int i = 0; i < n; i++) MPI_Irecv(dst[i], (int)bytes, MPI_BYTE, from, 7, MPI_COMM_WORLD, &req[i]);
  for (int i = 0; i < n; i++) MPI_Isend(src[i], (int)bytes, MPI_BYTE, to, 7, MPI_COMM_WORLD, &req[n + i]);
  MPI_Waitall(2 * n, req, MPI_STATUSES_IGNORE);
  double dt = mp_now_s() - t0;
  free(req);
  return max_over_ranks(dt);
}

/* A runtime with n slots of `bytes` per rank, buffers owned by the runtime
 * (commit by pointer swap) or registered user buffers (commit by copy),
 * with the shared-memory path between ranks of a node on or off. */
typedef struct mp_setup {
  moeplace_runtime *rt;
  char **user;
  int *cur, *next;
  double best;
} mp_setup;

/* Fraction of the bytes a setup received (all ranks) that came through the
 * shared-memory windows: 0 when MPI could not create them (a small /dev/shm
 * or session directory) and the moeplace column silently measured messages. */
static double shm_fraction(const mp_setup *m) {
  moeplace_runtime_stats st;
  moeplace_runtime_get_stats(m->rt, &st);
  double v[2] = {(double)st.shm_bytes_received, (double)st.bytes_moved}, sum[2];
  MPI_Allreduce(v, sum, 2, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
  int R;
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  double moved = sum[1] / R; // bytes_moved is the same global figure on every rank
  return moved > 0 ? sum[0] / moved : 0.0;
}

/* Single-core memcpy and XXH3 bandwidth over `bytes` (GB/s, best of 5), on
 * rank 0 while the others wait: what a copy+checksum pass can reach here. */
static void core_speeds(size_t bytes, double *copy_gbps, double *hash_gbps) {
  char *a = malloc(bytes), *b = malloc(bytes);
  *copy_gbps = *hash_gbps = 0;
  if (!a || !b) {
    free(a);
    free(b);
    return;
  }
  memset(a, 1, bytes);
  memset(b, 2, bytes);
  double bc = 1e30, bh = 1e30;
  volatile uint64_t sink = 0;
  for (int r = 0; r < 5; r++) {
    double t0 = mp_now_s();
    memcpy(b, a, bytes);
    double t1 = mp_now_s();
    sink ^= XXH3_64bits(b, bytes);
    double t2 = mp_now_s();
    bc = fmin(bc, t1 - t0);
    bh = fmin(bh, t2 - t1);
  }
  (void)sink;
  *copy_gbps = (double)bytes / bc / 1e9;
  *hash_gbps = (double)bytes / bh / 1e9;
  free(a);
  free(b);
}

/* What the figures depend on, printed before them (docs/BENCHMARKS.md). */
static void print_conditions(const opts *o, int R, json_t *root) {
  char lib[MPI_MAX_LIBRARY_VERSION_STRING] = "";
  int len = 0;
  MPI_Get_library_version(lib, &len);
  char *nl = strchr(lib, '\n');
  if (nl) *nl = '\0';
  long l3 = sysconf(_SC_LEVEL3_CACHE_SIZE);
  double load[3] = {-1, -1, -1};
  getloadavg(load, 3);
  long cores = sysconf(_SC_NPROCESSORS_ONLN);
#ifdef BENCH_XXH_DISPATCH
  const char *hash = "XXH3 with x86 runtime dispatch (AVX2/AVX-512 when the CPU has them)";
#else
  const char *hash = "XXH3 default build (SSE2 on x86: about half the dispatch speed; install xxhash's xxh_x86dispatch.h)";
#endif
  printf("conditions (the figures depend on them):\n"
         "  MPI: %s\n  cores online: %ld, ranks: %d%s\n  load average at start: %.2f\n"
         "  L3 cache: %ld KiB (working set per size below: src + dst of every rank; raw MPI\n"
         "    reuses one pair of buffers, moeplace adds the landing spares: above L3 both\n"
         "    run at DRAM speed, below it raw MPI's warm buffers favour the baseline)\n"
         "  checksum: %s\n  chunk: %lld KiB, experts per rank: %lld, best of %lld after one warm-up\n",
         lib, cores, R, R > cores ? " (oversubscribed: ranks share cores)" : "", load[0],
         l3 > 0 ? l3 >> 10 : -1L, hash, o->chunk_kib, o->experts, o->reps);
  json_t *c = json_object();
  json_object_set_new(c, "mpi_library", json_string(lib));
  json_object_set_new(c, "cores", json_integer(cores));
  json_object_set_new(c, "load_average_start", json_real(load[0]));
  json_object_set_new(c, "l3_bytes", json_integer(l3));
#ifdef BENCH_XXH_DISPATCH
  json_object_set_new(c, "xxh3_dispatch", json_true());
#else
  json_object_set_new(c, "xxh3_dispatch", json_false());
#endif
  json_object_set_new(root, "conditions", c);
}

static int setup_open(mp_setup *m, const opts *o, int R, size_t bytes, int owned, int shm) {
  int n = (int)o->experts, st;
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = 1;
  cfg.experts = R * n;
  cfg.slots_per_rank = n;
  cfg.rebalance_interval = 0;
  cfg.chunk_bytes = (size_t)o->chunk_kib << 10;
  cfg.shm_transfers = shm;
  memset(m, 0, sizeof *m);
  m->best = 1e30;
  st = moeplace_runtime_create(&m->rt, MPI_COMM_WORLD, &cfg);
  if (st != MOEPLACE_OK) return st;
  m->user = calloc((size_t)n, sizeof *m->user);
  m->cur = malloc((size_t)R * n * sizeof *m->cur);
  m->next = malloc((size_t)R * n * sizeof *m->next);
  for (int s = 0; s < n && st == MOEPLACE_OK; s++) {
    void *p = NULL;
    if (owned) {
      st = moeplace_runtime_alloc_buffer(m->rt, 0, s, bytes, &p);
    } else {
      p = m->user[s] = malloc(bytes);
      st = p ? moeplace_runtime_register_buffer(m->rt, 0, s, p, bytes) : MOEPLACE_ERR_NOMEM;
    }
    if (p) memset(p, s + 1, bytes);
  }
  return st;
}

/* One migration: every expert moves to the previous rank's same slot. */
static int setup_rotate(mp_setup *m, int R, int n, int measure) {
  int G = R * n;
  moeplace_runtime_get_placement(m->rt, m->cur, NULL);
  for (int g = 0; g < G; g++) m->next[g] = m->cur[(g + n) % G];
  moeplace_step_info info;
  MPI_Barrier(MPI_COMM_WORLD);
  int st = moeplace_runtime_apply_placement(m->rt, m->next, NULL, &info);
  if (st == MOEPLACE_OK && measure) m->best = fmin(m->best, max_over_ranks(info.migration_s));
  return st;
}

static void setup_close(mp_setup *m, int n) {
  for (int s = 0; m->user && s < n; s++) free(m->user[s]);
  free(m->user);
  free(m->cur);
  free(m->next);
  moeplace_runtime_destroy(m->rt);
}

/* One size: raw MPI, then moeplace with owned buffers, with owned buffers
 * and messages only, and with registered buffers, in turn in every
 * repetition, so that all see the same background load; best of reps for
 * each, after one unmeasured round (page faults, pools). */
static int bench_size(const opts *o, int rank, int R, size_t bytes, double *raw, double *mp,
                      double *mp_p2p, double *mp_reg, double *shm_frac) {
  int n = (int)o->experts;
  char **src = calloc((size_t)n, sizeof *src), **dst = calloc((size_t)n, sizeof *dst);
  for (int s = 0; s < n; s++) {
    src[s] = malloc(bytes);
    dst[s] = malloc(bytes);
    if (!src[s] || !dst[s]) {
      fprintf(stderr, "%s: out of memory for %d experts of %zu bytes\n", prog, n, bytes);
      MPI_Abort(MPI_COMM_WORLD, CLI_EXIT_FAILURE);
    }
    memset(src[s], rank + s, bytes);
    memset(dst[s], 0, bytes);
  }
  mp_setup own, p2p, reg;
  memset(&p2p, 0, sizeof p2p);
  memset(&reg, 0, sizeof reg);
  int st = setup_open(&own, o, R, bytes, 1, 1);
  if (st == MOEPLACE_OK) st = setup_open(&p2p, o, R, bytes, 1, 0);
  if (st == MOEPLACE_OK) st = setup_open(&reg, o, R, bytes, 0, 1);
  double best_raw = 1e30;
  for (int rep = -1; rep < o->reps && st == MOEPLACE_OK; rep++) {
    double t = raw_transfer(rank, R, n, bytes, src, dst);
    if (rep >= 0) best_raw = fmin(best_raw, t);
    st = setup_rotate(&own, R, n, rep >= 0);
    if (st == MOEPLACE_OK) st = setup_rotate(&p2p, R, n, rep >= 0);
    if (st == MOEPLACE_OK) st = setup_rotate(&reg, R, n, rep >= 0);
  }
  *shm_frac = st == MOEPLACE_OK ? shm_fraction(&own) : 0.0;
  double total = (double)bytes * n * R;
  *raw = total / best_raw / 1e9;
  *mp = total / own.best / 1e9;
  *mp_p2p = total / p2p.best / 1e9;
  *mp_reg = total / reg.best / 1e9;
  setup_close(&own, n);
  setup_close(&p2p, n);
  setup_close(&reg, n);
  for (int s = 0; s < n; s++) {
    free(src[s]);
    free(dst[s]);
  }
  free(src);
  free(dst);
  return st;
}

/* Aggregation latency (a step that closes a window) and record cost. */
static int bench_loop(const opts *o, double *aggregate_us, double *record_ns,
                      double *step_ns) {
  int R;
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = (int)o->layers;
  cfg.slots_per_rank = (int)o->slots;
  cfg.experts = (int)o->slots * R;
  cfg.window = 1; // every step closes a window
  cfg.rebalance_interval = 0;
  // the messages and bookkeeping of a window: with rebalancing off the
  // forecaster is fed inline, and auto's per-window work (ARIMA and LSTM
  // updates, ~5 ms here) would swamp them; when rebalancing it runs on the
  // coordinator's decision thread (moeplace-demo reports decision_ms)
  cfg.predictor = "sw_avg";
  moeplace_runtime *rt = NULL;
  int st = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  if (st != MOEPLACE_OK) return st;
  uint64_t *tok = malloc((size_t)o->slots * sizeof *tok);
  for (int s = 0; s < o->slots; s++) tok[s] = (uint64_t)(s * 7 + 3);
  // record: time many calls, cycling over the layers
  double t0 = mp_now_s();
  for (long long i = 0; i < o->iters * 100; i++)
    moeplace_runtime_record(rt, (int)(i % o->layers), tok);
  *record_ns = (mp_now_s() - t0) / (double)(o->iters * 100) * 1e9;
  // aggregation: steps that each close a window
  MPI_Barrier(MPI_COMM_WORLD);
  t0 = mp_now_s();
  for (long long i = 0; i < o->iters && st == MOEPLACE_OK; i++) st = moeplace_runtime_step(rt, NULL);
  *aggregate_us = max_over_ranks((mp_now_s() - t0) / (double)o->iters * 1e6);
  moeplace_runtime_destroy(rt);
  // a step that closes no window (window larger than the run)
  cfg.window = (int)o->iters + 1;
  st = st == MOEPLACE_OK ? moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) : st;
  if (st == MOEPLACE_OK) {
    moeplace_runtime_step(rt, NULL); // first step checks the registration
    t0 = mp_now_s();
    for (long long i = 1; i < o->iters && st == MOEPLACE_OK; i++) st = moeplace_runtime_step(rt, NULL);
    *step_ns = max_over_ranks((mp_now_s() - t0) / (double)(o->iters - 1 > 0 ? o->iters - 1 : 1) * 1e9);
    moeplace_runtime_destroy(rt);
  }
  free(tok);
  return st;
}

int main(int argc, char **argv) {
  // The runtime's decision thread never calls MPI: MPI_THREAD_FUNNELED is
  // enough (moeplace_runtime_create checks what MPI provided).
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int rank, R;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  opts o;
  int rc = parse(argc, argv, &o);
  if (rc != 0) {
    MPI_Finalize();
    return rc < 0 ? CLI_EXIT_OK : rc;
  }
  if (R < 2) {
    if (rank == 0) fprintf(stderr, "%s: needs at least 2 ranks (mpirun -np 2 %s)\n", prog, prog);
    MPI_Finalize();
    return CLI_EXIT_USAGE;
  }
  json_t *root = json_object(), *mig = json_array();
  json_object_set_new(root, "ranks", json_integer(R));
  json_object_set_new(root, "experts_per_rank", json_integer(o.experts));
  json_object_set_new(root, "chunk_bytes", json_integer(o.chunk_kib << 10));
  if (rank == 0) print_conditions(&o, R, root);
  if (rank == 0)
    printf("migration: %d ranks, each sends %lld experts to its neighbour (best of %lld)\n"
           "(moeplace: buffers owned by the runtime, commit by pointer swap, shared memory\n"
           " between ranks of a node; p2p: the same with messages only; registered:\n"
           " caller's buffers, commit by copy)\n"
           "%12s %14s %14s %8s %10s %8s %16s %6s %9s %8s %8s\n",
           R, o.experts, o.reps, "expert_bytes", "moeplace_GB/s", "raw_mpi_GB/s", "ratio",
           "p2p_GB/s", "ratio", "registered_GB/s", "shm%", "set_MiB", "copy1c", "xxh3_1c");
  int status = MOEPLACE_OK;
  for (int i = 0; i < o.nsizes && status == MOEPLACE_OK; i++) {
    size_t bytes = (size_t)o.sizes_kib[i] << 10;
    double raw = 0, mp = 0, mp_p2p = 0, mp_reg = 0, shm = 0, cp = 0, hs = 0;
    status = bench_size(&o, rank, R, bytes, &raw, &mp, &mp_p2p, &mp_reg, &shm);
    if (status != MOEPLACE_OK) break;
    if (rank == 0) core_speeds(bytes, &cp, &hs);
    double set_mib = 2.0 * (double)bytes * (double)o.experts * R / (1 << 20);
    if (rank == 0)
      printf("%12zu %14.3f %14.3f %7.1f%% %10.3f %7.1f%% %16.3f %5.0f%% %9.0f %8.1f %8.1f\n",
             bytes, mp, raw, 100.0 * mp / raw, mp_p2p, 100.0 * mp_p2p / raw, mp_reg,
             100.0 * shm, set_mib, cp, hs);
    MPI_Barrier(MPI_COMM_WORLD);
    json_t *e = json_object();
    json_object_set_new(e, "expert_bytes", json_integer((json_int_t)bytes));
    json_object_set_new(e, "moeplace_gbps", json_real(mp));
    json_object_set_new(e, "raw_mpi_gbps", json_real(raw));
    json_object_set_new(e, "moeplace_p2p_gbps", json_real(mp_p2p));
    json_object_set_new(e, "moeplace_registered_gbps", json_real(mp_reg));
    json_object_set_new(e, "ratio", json_real(mp / raw));
    json_object_set_new(e, "shm_fraction", json_real(shm));
    json_object_set_new(e, "working_set_bytes", json_integer((json_int_t)(set_mib * (1 << 20))));
    json_object_set_new(e, "memcpy_1core_gbps", json_real(cp));
    json_object_set_new(e, "xxh3_1core_gbps", json_real(hs));
    json_array_append_new(mig, e);
  }
  json_object_set_new(root, "migration", mig);
  double agg_us = 0, rec_ns = 0, step_ns = 0;
  if (status == MOEPLACE_OK) status = bench_loop(&o, &agg_us, &rec_ns, &step_ns);
  if (status != MOEPLACE_OK) {
    rc = cli_report(prog, status);
    json_decref(root);
    MPI_Finalize();
    return rc;
  }
  double load_end[3] = {-1, -1, -1};
  getloadavg(load_end, 3);
  if (rank == 0)
    printf("(shm%%: share of the moeplace column's bytes that went through shared memory;\n"
           " set_MiB: working set of all ranks; copy1c/xxh3_1c: one core's memcpy and XXH3 GB/s\n"
           " at that size, measured now)\nload average at end: %.2f\n", load_end[0]);
  if (rank == 0)
    printf("record: %.1f ns per call (%lld slots)\n"
           "step without a window boundary: %.1f ns\n"
           "aggregate: %.2f us per window (%lld layers x %lld slots x %d ranks, one MPI_Gather, "
           "forecaster sw_avg)\n",
           rec_ns, o.slots, step_ns, agg_us, o.layers, o.slots, R);
  json_object_set_new(root, "record_ns", json_real(rec_ns));
  json_object_set_new(root, "step_ns", json_real(step_ns));
  json_object_set_new(root, "aggregate_us", json_real(agg_us));
  json_object_set_new(root, "layers", json_integer(o.layers));
  json_object_set_new(root, "slots_per_rank", json_integer(o.slots));
  rc = CLI_EXIT_OK;
  if (rank == 0 && o.json) {
    int st = mp_json_write_file(root, o.json);
    if (st != MOEPLACE_OK) rc = cli_report(prog, st);
  }
  json_decref(root);
  MPI_Finalize();
  return rc;
}
