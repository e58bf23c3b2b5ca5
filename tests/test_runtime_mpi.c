/* MPI tests of the runtime, run under mpirun by tests/runtime_mpi.sh with 2
 * and 4 ranks: `test_runtime_mpi CASE`. Every rank checks its own outcome;
 * the failures are summed over ranks and the program exits 1 if any.
 *
 * Cases: config (mismatched and invalid configs are reported on every rank,
 * no deadlock), args (bad arguments return errors, invalid placements
 * are refused on every rank), topology (emulated nodes
 * and a synthetic hwloc machine; topology_env: the same through
 * $HWLOC_SYNTHETIC), migrate (random placements: weights arrive
 * intact, placements agree everywhere, slots that are both source and
 * destination; _owned: with buffers the runtime allocates, committed by
 * pointer swap), corrupt (an injected corruption is detected and rolled back
 * with nothing lost), registration (mismatched buffer sizes are reported),
 * loop (the closed loop rebalances a skewed load and keeps the weights;
 * loop_nostate: the same with no state registered, routing only),
 * shm_reuse (the shared-memory landing windows are reused, not grown, by
 * migrations back and forth), shm_full (with no room for another window,
 * transfers fall back to messages), migrate_nodes (emulated nodes: shared
 * memory within them, messages between them), step_extra (rank R-1 calls
 * step once more than the others: MOEPLACE_ERR_MISMATCH on every rank at that
 * window, then MOEPLACE_ERR_STATE), step_missing (rank R-1 skips a step:
 * the others time out at the window within collective_timeout_s, without
 * burning a core, then R-1 times out too), step_stopped (rank R-1 is
 * SIGSTOPped for 5 s at the window: the same), decider_cpus (the decision
 * thread runs on the host's CPUs no rank is bound to, if any), decider_horizon
 * (a decision is priced over the horizon its request gives), decider_static
 * (rebalancing off feeds no forecaster). A case name ending in _p2p runs
 * the case with the shared-memory path off (every transfer by messages). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_OR */
#include "config.h"

#include <dirent.h>
#include <math.h>
#include <sched.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <string.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <moeplace/runtime.h>

#include "runtime/internal.h"
#include "tests/mpi_check.h"

static int shm_transfers = 1; /* config.shm_transfers of the runtimes made */
static int decision_wait = 1; /* config.decision_wait of the runtimes made: tests that
                                 check the step a decision takes effect at (under
                                 valgrind too) need it reproducible */
static int ranks_per_node;    /* config.ranks_per_node of the runtimes made */

/* Expected byte i of buffer b of expert e of layer l. */
static uint8_t pattern(int l, int e, int b, size_t i) {
  uint64_t x = (uint64_t)i * 0x9E3779B97F4A7C15ull + (uint64_t)l * 1315423911u +
               (uint64_t)e * 2654435761u + (uint64_t)b * 97;
  x ^= x >> 29;
  return (uint8_t)(x * 0xBF58476D1CE4E5B9ull >> 56);
}

typedef struct state {
  int L, S, nbuf, owned_mask; /* bit b: buffer b allocated by the runtime */
  size_t sizes[2];
  uint8_t **bufs; /* [L][S][nbuf] */
} state;

static void state_init(state *st, moeplace_runtime *rt, int L, int S, size_t s0, size_t s1,
                       int owned_mask) {
  st->owned_mask = owned_mask;
  st->L = L;
  st->S = S;
  st->nbuf = 2;
  st->sizes[0] = s0;
  st->sizes[1] = s1;
  st->bufs = calloc((size_t)L * S * 2, sizeof *st->bufs);
  for (int l = 0; l < L; l++)
    for (int s = 0; s < S; s++) {
      int e;
      moeplace_runtime_local_expert(rt, l, s, &e, NULL);
      for (int b = 0; b < 2; b++) {
        uint8_t *p = NULL;
        int rc;
        if (owned_mask >> b & 1) {
          void *v = NULL;
          rc = moeplace_runtime_alloc_buffer(rt, l, s, st->sizes[b], &v);
          p = v;
        } else {
          p = malloc(st->sizes[b]);
          rc = moeplace_runtime_register_buffer(rt, l, s, p, st->sizes[b]);
          st->bufs[((size_t)l * S + s) * 2 + b] = p;
        }
        CHECK(rc == MOEPLACE_OK && p, "register/alloc buffer");
        for (size_t i = 0; p && i < st->sizes[b]; i++) p[i] = e >= 0 ? pattern(l, e, b, i) : 0;
      }
    }
}

static void state_free(state *st) {
  for (int i = 0; i < st->L * st->S * 2; i++) free(st->bufs[i]);
  free(st->bufs);
}

/* Number of local slots whose content is not their expert's pattern. */
static int state_bad_slots(const state *st, moeplace_runtime *rt) {
  int bad = 0;
  for (int l = 0; l < st->L; l++)
    for (int s = 0; s < st->S; s++) {
      int e;
      moeplace_runtime_local_expert(rt, l, s, &e, NULL);
      if (e < 0) continue;
      for (int b = 0; b < 2; b++) {
        void *v = NULL;
        size_t bytes = 0;
        moeplace_runtime_buffer(rt, l, s, b, &v, &bytes);
        const uint8_t *p = v;
        if (bytes != st->sizes[b] || (!(st->owned_mask >> b & 1) && p != st->bufs[((size_t)l * st->S + s) * 2 + b])) {
          bad++; // a registered buffer never moves; sizes never change
          break;
        }
        size_t i = 0;
        while (i < st->sizes[b] && p[i] == pattern(l, e, b, i)) i++;
        if (i < st->sizes[b]) {
          bad++;
          break;
        }
      }
    }
  return bad;
}

/* 1 on every rank iff every rank holds the same placement. */
static int placements_agree(moeplace_runtime *rt, int L, int G) {
  int *se = malloc((size_t)L * G * sizeof *se);
  double *sh = malloc((size_t)L * G * sizeof *sh);
  moeplace_runtime_get_placement(rt, se, sh);
  int64_t v[2] = {mp_rt_hash62(se, (size_t)L * G * sizeof *se, 0),
                  mp_rt_hash62(sh, (size_t)L * G * sizeof *sh, 0)};
  int same = 0;
  mp_rt_agree_i64(MPI_COMM_WORLD, v, 2, &same, NULL, NULL);
  free(se);
  free(sh);
  return same;
}

static uint64_t rng_state = 88172645463325252ull;
static uint64_t rng(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 7;
  rng_state ^= rng_state << 17;
  return rng_state;
}

/* A random valid placement (same on every rank: same seed). se: [L][G]. */
/* to [L][G]: every expert of from [L][G] moved to the previous rank's slot
 * (so every rank sends and receives). */
static void rotate_to_previous_rank(int L, int G, int S, const int *from, int *to) {
  for (int l = 0; l < L; l++)
    for (int g = 0; g < G; g++) to[(size_t)l * G + g] = from[(size_t)l * G + (g + S) % G];
}

static void random_placement(int L, int E, int R, int S, int *se) {
  int G = R * S;
  int *perm = malloc((size_t)G * sizeof *perm);
  for (int l = 0; l < L; l++) {
    int *row = se + (size_t)l * G;
    for (int g = 0; g < G; g++) {
      perm[g] = g;
      row[g] = -1;
    }
    for (int g = G - 1; g > 0; g--) {
      int j = (int)(rng() % (uint64_t)(g + 1)), t = perm[g];
      perm[g] = perm[j];
      perm[j] = t;
    }
    for (int i = 0; i < G; i++) {
      int g = perm[i], r = g / S;
      if (i < E) {
        row[g] = i;
        continue;
      }
      int e = (int)(rng() % (uint64_t)E), dup = 0;
      for (int s = 0; s < S; s++) dup |= row[r * S + s] == e;
      row[g] = dup ? -1 : e;
    }
  }
  free(perm);
}

static moeplace_runtime *make_rt(int L, int E, int S, size_t chunk, int maxout) {
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = L;
  cfg.experts = E;
  cfg.slots_per_rank = S;
  cfg.chunk_bytes = chunk;
  cfg.max_outstanding = maxout;
  cfg.shm_transfers = shm_transfers;
  cfg.ranks_per_node = ranks_per_node;
  moeplace_runtime *rt = NULL;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK && rt, "create rc=%d", rc);
  return rt;
}


/* Creates a runtime from cfg, which must fail on every rank with `want`
 * and a message naming `field`. */
static void create_refused(const moeplace_runtime_config *cfg, int want, const char *field,
                           const char *what) {
  moeplace_runtime *rt = NULL;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, cfg);
  CHECK(rc == want && !rt && strstr(moeplace_last_error(), field), "%s: rc=%d", what, rc);
}
static void case_config(int R) {
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = 2;
  cfg.experts = 2 * R;
  cfg.slots_per_rank = 3;
  moeplace_runtime *rt = NULL;
  // A differing expert count on the last rank.
  if (my_rank == R - 1) cfg.experts += 1;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_MISMATCH && !rt, "mismatched experts: rc=%d", rc);
  CHECK(strstr(moeplace_last_error(), "experts") != NULL, "message names the field");
  cfg.experts = 2 * R;
  // A differing string (predictor) on rank 0.
  cfg.predictor = my_rank == 0 ? "last" : "sw_avg";
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_MISMATCH && !rt, "mismatched predictor: rc=%d", rc);
  cfg.predictor = "auto";
  // chunk_bytes and the budget differing in their lowest bit (once compared
  // after a shift by one, so the mismatch slipped through create).
  cfg.chunk_bytes = ((size_t)1 << 20) + (my_rank == R - 1);
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_MISMATCH && !rt, "chunk_bytes off by one: rc=%d", rc);
  CHECK(strstr(moeplace_last_error(), "chunk_bytes") != NULL, "message names chunk_bytes");
  cfg.chunk_bytes = (size_t)1 << 20;
  cfg.migration_budget_bytes = 4096 + (my_rank == 0);
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_MISMATCH && !rt, "budget off by one: rc=%d", rc);
  cfg.migration_budget_bytes = MOEPLACE_NO_LIMIT;
  // collective_timeout_s: no limit by default, 0 refused, must agree.
  CHECK(cfg.collective_timeout_s < 0, "no deadline by default: %g", cfg.collective_timeout_s);
  cfg.collective_timeout_s = 0;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "collective_timeout_s", "zero deadline refused");
  cfg.collective_timeout_s = my_rank == 0 ? 30.0 : 60.0;
  create_refused(&cfg, MOEPLACE_ERR_MISMATCH, "collective_timeout_s", "differing deadlines");
  cfg.collective_timeout_s = MOEPLACE_NO_LIMIT;
  // groups: none by default, must divide the experts, must agree.
  CHECK(cfg.groups == 0, "no groups by default: %d", cfg.groups);
  cfg.groups = cfg.experts + 1;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "groups", "groups not dividing the experts refused");
  cfg.groups = my_rank == 0 ? 1 : 0;
  create_refused(&cfg, MOEPLACE_ERR_MISMATCH, "groups", "differing groups");
  cfg.groups = 0;
  // shares: weighted by default, an unknown policy refused, must agree.
  CHECK(cfg.shares == MOEPLACE_SHARES_WEIGHTED, "weighted by default: %d", (int)cfg.shares);
  cfg.shares = (moeplace_share_policy)5;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "shares", "unknown share policy refused");
  cfg.shares = my_rank == 0 ? MOEPLACE_SHARES_EVEN : MOEPLACE_SHARES_WEIGHTED;
  create_refused(&cfg, MOEPLACE_ERR_MISMATCH, "shares", "differing share policies");
  cfg.shares = MOEPLACE_SHARES_WEIGHTED;
  // spread and decision_wait: validated and agreed like the others.
  CHECK(cfg.spread == 0.0 && cfg.decision_wait == 0, "spread %g decision_wait %d by default",
        cfg.spread, cfg.decision_wait);
  cfg.spread = -1.0;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "spread", "negative spread refused");
  cfg.spread = my_rank == 0 ? 1.0 : 0.0;
  create_refused(&cfg, MOEPLACE_ERR_MISMATCH, "spread", "differing spread");
  cfg.spread = 0.0;
  CHECK(cfg.load_samples == 50, "load_samples %d by default", cfg.load_samples);
  cfg.load_samples = -1;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "load_samples", "negative load_samples");
  cfg.load_samples = my_rank == 0 ? 10 : 20;
  create_refused(&cfg, MOEPLACE_ERR_MISMATCH, "load_samples", "differing load_samples");
  cfg.load_samples = 50;
  cfg.migration_tradeoff = INFINITY; // accepted once; every decision then failed
  create_refused(&cfg, MOEPLACE_ERR_ARG, "migration_tradeoff", "infinite tradeoff refused");
  cfg.migration_tradeoff = 0.05;
  cfg.min_gain = INFINITY;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "min_gain", "infinite min_gain refused");
  cfg.min_gain = 0.02;
  cfg.decision_wait = 2;
  create_refused(&cfg, MOEPLACE_ERR_ARG, "decision_wait", "decision_wait 2 refused");
  cfg.decision_wait = 0;
  // An invalid config on rank 1 only: every rank fails with ERR_ARG.
  if (my_rank == 1) cfg.window = 0;
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG && !rt, "invalid on one rank: rc=%d", rc);
  cfg.window = 10;
  // NULL out on one rank: the others are told, nobody hangs.
  rc = moeplace_runtime_create(my_rank == 0 ? NULL : &rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG, "NULL out on rank 0: rc=%d", rc);
  // Globally invalid shapes.
  cfg.slots_per_rank = 1;
  cfg.experts = R + 1;
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG, "too few slots: rc=%d", rc);
  cfg.experts = 2 * R;
  cfg.slots_per_rank = 2;
  cfg.rebalance_interval = 15; // not a multiple of window
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG, "interval not a multiple of window: rc=%d", rc);
  cfg.rebalance_interval = 20;
  cfg.coordinator = R;
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG, "coordinator out of range: rc=%d", rc);
  cfg.coordinator = R - 1;
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK, "valid config with the last rank coordinating: rc=%d", rc);
  moeplace_runtime_destroy(rt);
}

/* An empty slot must carry share 0: a placement whose empty slot routes
 * half an expert's tokens is refused on every rank, nothing changes; the
 * same placement with share 0 there is applied. */
static void args_empty_slot_share(int R) {
  const int L = 1, E = 2 * R, S = 3, G = R * S; // slots 2R..3R-1: second replicas
  moeplace_runtime *rt = make_rt(L, E, S, 4096, 8);
  if (!rt) return;
  int *se = malloc((size_t)G * sizeof *se), *before = malloc((size_t)G * sizeof *before);
  double *sh = malloc((size_t)G * sizeof *sh), *sh_before = malloc((size_t)G * sizeof *sh_before);
  moeplace_runtime_get_placement(rt, before, sh_before);
  memcpy(se, before, (size_t)G * sizeof *se);
  memcpy(sh, sh_before, (size_t)G * sizeof *sh);
  for (int g = E; g < G; g++) { // drop the second replica, keep its share on the empty slot
    sh[se[g]] = 1.0;
    se[g] = -1;
    sh[g] = 0.5;
  }
  int rc = moeplace_runtime_apply_placement(rt, se, sh, NULL);
  CHECK(rc == MOEPLACE_ERR_ARG, "empty slot with share 0.5: rc=%d", rc);
  int *now = malloc((size_t)G * sizeof *now);
  double *sh_now = malloc((size_t)G * sizeof *sh_now);
  moeplace_runtime_get_placement(rt, now, sh_now);
  CHECK(memcmp(now, before, (size_t)G * sizeof *now) == 0 &&
            memcmp(sh_now, sh_before, (size_t)G * sizeof *sh_now) == 0,
        "the placement in force is unchanged");
  for (int g = E; g < G; g++) sh[g] = 0.0;
  rc = moeplace_runtime_apply_placement(rt, se, sh, NULL);
  CHECK(rc == MOEPLACE_OK, "the same placement with share 0 in the empty slots: rc=%d", rc);
  moeplace_runtime_get_placement(rt, now, NULL);
  CHECK(memcmp(now, se, (size_t)G * sizeof *now) == 0, "applied");
  free(se);
  free(before);
  free(sh);
  free(sh_before);
  free(now);
  free(sh_now);
  moeplace_runtime_destroy(rt);
}

static void case_args(int R) {
  moeplace_runtime *rt = make_rt(2, 2 * R, 2, 4096, 8);
  if (!rt) return;
  uint64_t tok[2] = {1, 2};
  char buf[16];
  moeplace_replica reps[8];
  int n, e, node;
  CHECK(moeplace_runtime_record(rt, 2, tok) == MOEPLACE_ERR_ARG, "record layer out of range");
  CHECK(moeplace_runtime_record(rt, -1, tok) == MOEPLACE_ERR_ARG, "record negative layer");
  CHECK(moeplace_runtime_record(rt, 0, NULL) == MOEPLACE_ERR_ARG, "record NULL tokens");
  CHECK(moeplace_runtime_record(NULL, 0, tok) == MOEPLACE_ERR_ARG, "record NULL runtime");
  uint64_t huge[2] = {UINT64_MAX - 1, 0}, two[2] = {2, 1}; // a window's sum may not wrap
  CHECK(moeplace_runtime_record(rt, 1, huge) == MOEPLACE_OK, "record a huge count");
  CHECK(moeplace_runtime_record(rt, 1, two) == MOEPLACE_ERR_ARG &&
        strstr(moeplace_last_error(), "slot 0: tokens summed over the window exceed"),
        "record past 2^64 - 1 refused: %s", moeplace_last_error());
  huge[0] = 1;
  CHECK(moeplace_runtime_record(rt, 1, huge) == MOEPLACE_OK, "nothing was added: 1 more still fits");
  CHECK(moeplace_runtime_register_buffer(rt, 0, 2, buf, 16) == MOEPLACE_ERR_ARG, "slot out of range");
  CHECK(moeplace_runtime_register_buffer(rt, 0, 0, NULL, 16) == MOEPLACE_ERR_ARG, "NULL buffer");
  CHECK(moeplace_runtime_register_buffer(rt, 0, 0, buf, 0) == MOEPLACE_ERR_ARG, "empty buffer");
  CHECK(moeplace_runtime_routing(rt, 0, 2 * R, reps, 8, &n) == MOEPLACE_ERR_ARG, "routing expert out of range");
  CHECK(moeplace_runtime_routing(rt, 0, 0, reps, 0, &n) == MOEPLACE_ERR_ARG && n == 1,
        "routing with no room reports the count");
  CHECK(moeplace_runtime_routing(rt, 0, 0, reps, 8, &n) == MOEPLACE_OK && n == 1 &&
            reps[0].rank == 0 && reps[0].slot == 0 && reps[0].share == 1.0,
        "initial routing of expert 0");
  CHECK(moeplace_runtime_local_expert(rt, 0, 5, &e, NULL) == MOEPLACE_ERR_ARG, "local slot out of range");
  CHECK(moeplace_runtime_topology(rt, R, &node, NULL, NULL) == MOEPLACE_ERR_ARG, "topology rank out of range");
  CHECK(moeplace_runtime_step(NULL, NULL) == MOEPLACE_ERR_ARG, "step NULL");
  void *vp;
  CHECK(moeplace_runtime_alloc_buffer(rt, 0, 0, 0, &vp) == MOEPLACE_ERR_ARG, "alloc 0 bytes");
  CHECK(moeplace_runtime_alloc_buffer(rt, 5, 0, 8, &vp) == MOEPLACE_ERR_ARG, "alloc bad layer");
  CHECK(moeplace_runtime_buffer(rt, 0, 0, 0, &vp, NULL) == MOEPLACE_ERR_ARG, "no buffer 0 yet");
  CHECK(moeplace_runtime_get_stats(rt, NULL) == MOEPLACE_ERR_ARG, "stats NULL");
  // An invalid placement (expert 0 missing) is refused on every rank.
  int G = R * 2;
  int *se = malloc((size_t)2 * G * sizeof *se);
  moeplace_runtime_get_placement(rt, se, NULL);
  se[0] = 1; // rank 0 now holds expert 1 twice, expert 0 nowhere
  CHECK(moeplace_runtime_apply_placement(rt, se, NULL, NULL) == MOEPLACE_ERR_ARG, "invalid placement");
  moeplace_runtime_get_placement(rt, se, NULL);
  if (my_rank == 0) { // a valid placement that differs between ranks
    int t = se[0];
    se[0] = se[2];
    se[2] = t;
  }
  CHECK(moeplace_runtime_apply_placement(rt, se, NULL, NULL) == MOEPLACE_ERR_MISMATCH,
        "different placements on different ranks");
  free(se);
  CHECK(placements_agree(rt, 2, G), "placements still agree");
  moeplace_runtime_destroy(rt);
  moeplace_runtime_destroy(NULL);
  args_empty_slot_share(R);
}

/* Several real hosts (scripts/multihost.sh, or a cluster): the discovered
 * nodes must be exactly the hosts, as MPI names them: two ranks share a
 * node if and only if they run on the same host, node indices are
 * 0..hosts-1 and the job spans at least two hosts. */
static void case_topology_hosts(int R) {
  moeplace_runtime *rt = make_rt(1, R, 1, (size_t)1 << 20, 64); // 1 layer, 1 slot per rank
  char me[MPI_MAX_PROCESSOR_NAME] = "";
  int len;
  MPI_Get_processor_name(me, &len);
  char *names = malloc((size_t)R * MPI_MAX_PROCESSOR_NAME);
  MPI_Allgather(me, MPI_MAX_PROCESSOR_NAME, MPI_CHAR, names, MPI_MAX_PROCESSOR_NAME, MPI_CHAR,
                MPI_COMM_WORLD);
  int hosts = 0, max_node = -1;
  for (int r = 0; rt && r < R; r++) {
    int nr;
    moeplace_runtime_topology(rt, r, &nr, NULL, NULL);
    max_node = nr > max_node ? nr : max_node;
    int seen = 0;
    for (int q = 0; q < R; q++) {
      int nq;
      moeplace_runtime_topology(rt, q, &nq, NULL, NULL);
      int same_host = !strcmp(names + (size_t)r * MPI_MAX_PROCESSOR_NAME,
                              names + (size_t)q * MPI_MAX_PROCESSOR_NAME);
      CHECK((nr == nq) == same_host, "ranks %d (%s, node %d) and %d (%s, node %d)", r,
            names + (size_t)r * MPI_MAX_PROCESSOR_NAME, nr, q,
            names + (size_t)q * MPI_MAX_PROCESSOR_NAME, nq);
      if (q < r && same_host) seen = 1;
    }
    hosts += !seen;
  }
  CHECK(hosts >= 2, "the job runs on %d host(s): this case needs several", hosts);
  CHECK(max_node == hosts - 1, "node indices up to %d for %d hosts", max_node, hosts);
  if (my_rank == 0) printf("topology_hosts: %d ranks on %d hosts, %d nodes discovered\n", R, hosts, max_node + 1);
  free(names);
  moeplace_runtime_destroy(rt);
}

static void case_topology(int R) {
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = 1;
  cfg.experts = R;
  cfg.slots_per_rank = 1;
  moeplace_runtime *rt = NULL;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK, "create on the real machine");
  int node;
  for (int r = 0; rt && r < R; r++) {
    moeplace_runtime_topology(rt, r, &node, NULL, NULL);
    CHECK(node == 0, "one host: rank %d on node %d", r, node);
  }
  moeplace_runtime_destroy(rt);
  // Two emulated nodes of R/2 ranks on a synthetic 2-package machine: the
  // ranks of a node spread over its PUs, so they land on both packages.
  cfg.ranks_per_node = R / 2;
  cfg.hwloc_synthetic = "pack:2 numa:1 core:2 pu:1";
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK, "create with emulated nodes");
  for (int r = 0; rt && r < R; r++) {
    int pkg, numa;
    moeplace_runtime_topology(rt, r, &node, &pkg, &numa);
    int local = r % (R / 2), lsize = R / 2;
    int expect_pkg = local * 4 / lsize / 2;
    CHECK(node == r / (R / 2), "rank %d: node %d", r, node);
    CHECK(pkg == expect_pkg && numa == expect_pkg, "rank %d: package %d numa %d, expected %d", r,
          pkg, numa, expect_pkg);
  }
  moeplace_runtime_destroy(rt);
  // A cluster-shape file (placement engine's format) replaces the discovery.
  cfg.ranks_per_node = 0;
  cfg.hwloc_synthetic = NULL;
  int pid = (int)getpid();
  MPI_Bcast(&pid, 1, MPI_INT, 0, MPI_COMM_WORLD);
  char path[2][128];
  for (int i = 0; i < 2; i++) {
    snprintf(path[i], sizeof path[i], "/tmp/moeplace-rt-shape-%d-%d.txt", pid, i);
    if (my_rank == 0) {
      FILE *f = fopen(path[i], "w");
      // i = 0: R/2 nodes of 2 ranks; i = 1: one rank too many
      fprintf(f, "# test shape\nnodes %d\nranks_per_node %d\n", i ? 1 : R / 2, i ? R + 1 : 2);
      fclose(f);
    }
  }
  MPI_Barrier(MPI_COMM_WORLD);
  cfg.cluster_file = path[0];
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK, "create with a cluster-shape file: rc=%d", rc);
  for (int r = 0; rt && r < R; r++) {
    moeplace_runtime_topology(rt, r, &node, NULL, NULL);
    CHECK(node == r / 2, "shape file: rank %d on node %d, expected %d", r, node, r / 2);
  }
  moeplace_runtime_destroy(rt);
  cfg.cluster_file = path[1];
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_MISMATCH && !rt, "shape file with the wrong rank count: rc=%d", rc);
  cfg.cluster_file = "-"; // stdin reaches rank 0 only: refused alike on every rank
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG && !rt && strstr(moeplace_last_error(), "cluster_file '-'"),
        "cluster_file '-': rc=%d %s", rc, moeplace_last_error());
  MPI_Barrier(MPI_COMM_WORLD);
  if (my_rank == 0) {
    remove(path[0]);
    remove(path[1]);
  }
  cfg.cluster_file = NULL;
  cfg.hwloc_synthetic = "pack:banana";
  rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_ERR_ARG && !rt, "invalid synthetic description: rc=%d", rc);
}

/* Run with HWLOC_SYNTHETIC="pack:2 numa:1 core:2 pu:1" in the environment:
 * hwloc describes that machine, whose 4 PUs the ranks spread over. */
static void case_topology_env(int R) {
  moeplace_runtime *rt = make_rt(1, R, 1, (size_t)1 << 20, 64); // 1 layer, 1 slot per rank
  for (int r = 0; rt && r < R; r++) {
    int node, pkg, numa, expect = r * 4 / R / 2;
    moeplace_runtime_topology(rt, r, &node, &pkg, &numa);
    CHECK(node == 0 && pkg == expect && numa == expect, "rank %d: node %d package %d numa %d, expected 0 %d %d",
          r, node, pkg, numa, expect, expect);
  }
  moeplace_runtime_destroy(rt);
}

static void case_migrate(int R, int owned_mask) {
  const int L = 2, E = 3 * R - 1, S = 4, G = R * S;
  // Small chunks and a small window exercise chunking and the request bound
  // (the owned variant runs at the smallest bound, 2 requests in flight).
  moeplace_runtime *rt = make_rt(L, E, S, owned_mask ? 1024 : 4096, owned_mask ? 2 : 4);
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 3 * 4096 + 123, 77, owned_mask);
  int *se = malloc((size_t)L * G * sizeof *se);
  for (int round = 0; round < 6; round++) {
    random_placement(L, E, R, S, se);
    moeplace_step_info info;
    int rc = moeplace_runtime_apply_placement(rt, se, NULL, &info);
    CHECK(rc == MOEPLACE_OK, "round %d: apply rc=%d", round, rc);
    int *now = malloc((size_t)L * G * sizeof *now);
    moeplace_runtime_get_placement(rt, now, NULL);
    CHECK(memcmp(now, se, (size_t)L * G * sizeof *se) == 0, "round %d: placement in force", round);
    free(now);
    CHECK(placements_agree(rt, L, G), "round %d: placements agree", round);
    int bad = state_bad_slots(&st, rt);
    CHECK(bad == 0, "round %d: %d slots hold wrong bytes", round, bad);
    CHECK(info.rebalanced == 1 && info.moves > 0, "round %d: moves %d", round, info.moves);
  }
  // A swap of two experts between two ranks: each slot is source and destination.
  moeplace_runtime_get_placement(rt, se, NULL);
  for (int l = 0; l < L; l++) {
    int *row = se + (size_t)l * G;
    int a = 0, b = S; // rank 0 slot 0 and rank 1 slot 0
    int ea = row[a], eb = row[b], clash = 0;
    for (int s = 0; s < S; s++) clash |= (row[s] == eb && s != 0) || (row[S + s] == ea && s != 0);
    if (!clash && ea >= 0 && eb >= 0) {
      row[a] = eb;
      row[b] = ea;
    }
  }
  moeplace_runtime_stats before;
  moeplace_runtime_get_stats(rt, &before);
  CHECK(moeplace_runtime_apply_placement(rt, se, NULL, NULL) == MOEPLACE_OK, "swap");
  CHECK(state_bad_slots(&st, rt) == 0, "swap: weights intact");
  moeplace_runtime_stats after;
  moeplace_runtime_get_stats(rt, &after);
  CHECK(after.rebalances == before.rebalances + 1 && after.bytes_moved >= before.bytes_moved,
        "stats count the swap");
  // The shared-memory path carried transfers if and only if it is on and a
  // node (real, or emulated) has more than one rank: not with one rank per
  // node, emulated or on real hosts (make check-multihost).
  int shared_node = 0;
  for (int r = 0; r < R && !shared_node; r++)
    for (int q = r + 1; q < R && !shared_node; q++) {
      int nr, nq;
      moeplace_runtime_topology(rt, r, &nr, NULL, NULL);
      moeplace_runtime_topology(rt, q, &nq, NULL, NULL);
      shared_node = nr == nq;
    }
  int expect_windows = shm_transfers && shared_node;
  CHECK((rt->shm.nwin > 0) == expect_windows, "shared windows: %d (path %s)", rt->shm.nwin,
        shm_transfers ? "on" : "off");
  free(se);
  state_free(&st);
  moeplace_runtime_destroy(rt);
}

static void case_corrupt(int R, int owned_mask) {
  const int L = 2, E = 2 * R, S = 3, G = R * S;
  moeplace_runtime *rt = make_rt(L, E, S, 1024, 6);
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 5000, 64, owned_mask);
  int *old = malloc((size_t)L * G * sizeof *old), *se = malloc((size_t)L * G * sizeof *se);
  moeplace_runtime_get_placement(rt, old, NULL);
  rotate_to_previous_rank(L, G, S, old, se);
  if (my_rank == R - 1) mp_rt_test_corrupt_next(rt);
  moeplace_step_info info;
  int rc = moeplace_runtime_apply_placement(rt, se, NULL, &info);
  CHECK(rc == MOEPLACE_ERR_VERIFY, "corruption detected on every rank: rc=%d", rc);
  // One rank detects it and says why: R - 1 itself when messages carry the
  // expert (it damages what it received), the receiver of R - 1's copy on
  // the shared-memory path (the sender damages what it copied).
  int says = strstr(moeplace_last_error(), "checksum mismatch") != NULL, saying = 0;
  MPI_Allreduce(&says, &saying, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
  CHECK(saying == 1, "exactly one rank names the checksum mismatch: %d", saying);
  int *now = malloc((size_t)L * G * sizeof *now);
  moeplace_runtime_get_placement(rt, now, NULL);
  CHECK(memcmp(now, old, (size_t)L * G * sizeof *old) == 0, "old placement kept");
  CHECK(state_bad_slots(&st, rt) == 0, "nothing lost after rollback");
  moeplace_runtime_stats stats;
  moeplace_runtime_get_stats(rt, &stats);
  CHECK(stats.migrations_failed == 1 && stats.rebalances == 0, "stats count the failure");
  // The same migration succeeds afterwards.
  rc = moeplace_runtime_apply_placement(rt, se, NULL, &info);
  CHECK(rc == MOEPLACE_OK, "retry succeeds: rc=%d", rc);
  CHECK(state_bad_slots(&st, rt) == 0, "weights intact after retry");
  CHECK(placements_agree(rt, L, G), "placements agree after retry");
  free(old);
  free(se);
  free(now);
  state_free(&st);
  moeplace_runtime_destroy(rt);
}

/* Owned buffers moving back and forth between two placements: the second
 * migration may add a window (the first one's regions are in use), after
 * that the pool holds the regions every migration needs. */
static void case_shm_reuse(int R, int max_windows) {
  const int L = 1, E = 2 * R, S = 2, G = R * S;
  moeplace_runtime *rt = make_rt(L, E, S, 4096, 8);
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 20000, 3000, 3);
  if (max_windows) rt->shm.max_windows = max_windows;
  int *a = malloc((size_t)G * sizeof *a), *b = malloc((size_t)G * sizeof *b);
  moeplace_runtime_get_placement(rt, a, NULL);
  rotate_to_previous_rank(L, G, S, a, b);
  int windows_after_two = -1;
  for (int round = 0; round < 8; round++) {
    int rc = moeplace_runtime_apply_placement(rt, round % 2 ? a : b, NULL, NULL);
    CHECK(rc == MOEPLACE_OK, "round %d: rc=%d", round, rc);
    CHECK(state_bad_slots(&st, rt) == 0, "round %d: weights intact", round);
    if (round == 1) windows_after_two = rt->shm.nwin;
  }
  CHECK(windows_after_two > 0 && rt->shm.nwin == windows_after_two,
        "windows after 2 migrations: %d, after 8: %d", windows_after_two, rt->shm.nwin);
  if (max_windows) // the second migration found no room and went by messages
    CHECK(rt->shm.nwin == max_windows, "windows: %d, at most %d", rt->shm.nwin, max_windows);
  free(a);
  free(b);
  state_free(&st);
  moeplace_runtime_destroy(rt);
}

static void case_registration(int R) {
  moeplace_runtime *rt = make_rt(1, R, 1, 4096, 8);
  if (!rt) return;
  static char a[256];
  int rc = moeplace_runtime_register_buffer(rt, 0, 0, a, my_rank == 0 ? 128 : 256);
  CHECK(rc == MOEPLACE_OK, "register");
  rc = moeplace_runtime_step(rt, NULL);
  CHECK(rc == MOEPLACE_ERR_MISMATCH, "different expert sizes reported on every rank: rc=%d", rc);
  moeplace_runtime_destroy(rt);
}

/* One step of the skewed load of the loop cases: expert E-2 of every layer
 * gets most tokens. */
static int skewed_step(moeplace_runtime *rt, int L, int E, int S, moeplace_step_info *info) {
  uint64_t tok[64];
  for (int l = 0; l < L; l++) {
    for (int s = 0; s < S && s < 64; s++) {
      int e;
      double share;
      moeplace_runtime_local_expert(rt, l, s, &e, &share);
      uint64_t total = e == E - 2 ? 1000 : 50;
      tok[s] = e >= 0 ? (uint64_t)(total * share + 0.5) : 0;
    }
    moeplace_runtime_record(rt, l, tok);
  }
  return moeplace_runtime_step(rt, info);
}

/* A runtime of the loop cases: window 5, rebalance every 20 steps. */
static moeplace_runtime *make_loop_rt(int L, int E, int S, int lag, int layers_per_step) {
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = L;
  cfg.experts = E;
  cfg.slots_per_rank = S;
  cfg.window = 5;
  cfg.rebalance_interval = 20;
  cfg.warmup_steps = 0;    // the schedule these cases check: multiples of 20 only
  cfg.history_windows = 3; // smaller than the run: the ring wraps
  cfg.chunk_bytes = 2048;
  cfg.decision_lag_windows = lag;
  cfg.migration_layers_per_step = layers_per_step;
  cfg.shm_transfers = shm_transfers;
  cfg.decision_wait = decision_wait;
  moeplace_runtime *rt = NULL;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK && rt, "create");
  return rt;
}

/* The decider prices a decision in seconds over the horizon its request
 * gives: the steps until the next interval boundary, few for a warm-up
 * decision late in the first interval. The same history (expert 0 carries
 * 70% of the tokens, only on rank 0) and placement: over 10^6 steps moving
 * a replica of expert 0 to rank 1 pays (1 GB at the same node's 50 GB/s,
 * 20 ms, against 0.6 x 1 ms per step), over one step only routing shares
 * may change. Local: rank 0 runs it. */
static void case_decider_horizon(int R) {
  (void)R;
  if (my_rank != 0) return;
  enum { L = 1, E = 4, RR = 2, S = 3 };
  moeplace_topology *shape = NULL;
  CHECK(moeplace_topology_create_shape(&shape, 1, RR, 1, 1) == MOEPLACE_OK, "shape");
  moeplace_placement *in_force = NULL, *next = NULL;
  CHECK(moeplace_placement_create(&in_force, L, E, RR, S) == MOEPLACE_OK, "placement");
  CHECK(moeplace_placement_create(&next, L, E, RR, S) == MOEPLACE_OK, "placement");
  if (!shape || !in_force || !next) return;
  const int phy2log[RR * S] = {0, 1, 2, 3, 1, 2}; // rank 0: 0 1 2, rank 1: 3 1 2
  const double share[RR * S] = {1, 0.5, 0.5, 1, 0.5, 0.5};
  memcpy(moeplace_placement_phy2log(in_force, 0), phy2log, sizeof phy2log);
  memcpy(moeplace_placement_share(in_force, 0), share, sizeof share);
  CHECK(moeplace_placement_validate(in_force) == MOEPLACE_OK, "in force: %s", moeplace_last_error());
  mp_rt_decider_setup set = {.L = L, .E = E, .R = RR, .S = S, .shape = shape, .window = 5,
                             .horizon = 100, .rebalance_interval = 100, .history_windows = 16,
                             .predictor = "sw_avg", .migration_tradeoff = 0.05, .min_gain = 0,
                             .migration_budget_bytes = MOEPLACE_NO_LIMIT,
                             .shares = MOEPLACE_SHARES_WEIGHTED, .threaded = 0};
  const int64_t horizons[2] = {1, 1000000};
  for (int h = 0; h < 2; h++) {
    mp_rt_decider *d = NULL;
    CHECK(mp_rt_decider_create(&d, &set) == MOEPLACE_OK && d, "decider: %s", moeplace_last_error());
    if (!d) break;
    const uint64_t totals[E] = {700, 100, 100, 100};
    for (int w = 0; w < 4; w++) CHECK(mp_rt_decider_observe(d, totals) == MOEPLACE_OK, "observe");
    const size_t bytes[L] = {1000000000};
    const double no_bw[MOEPLACE_LINK_CLASSES] = {0};
    CHECK(mp_rt_decider_request(d, in_force, bytes, no_bw, 1e-3, 0, horizons[h]) == MOEPLACE_OK,
          "request");
    mp_rt_decision res;
    double waited;
    CHECK(mp_rt_decider_collect(d, &res, next, &waited) == MOEPLACE_OK && res.status == MOEPLACE_OK,
          "collect: %s", res.error);
    const int moved = res.commit && memcmp(moeplace_placement_phy2log(next, 0), phy2log,
                                           sizeof phy2log) != 0;
    CHECK(moved == (h == 1), "horizon %lld steps: replicas moved %d, predicted imbalance %.3f -> %.3f",
          (long long)horizons[h], moved, res.old_imb, res.new_imb);
    if (h == 1) CHECK(res.new_imb < 1.1, "moved to imbalance %.3f", res.new_imb);
    mp_rt_decider_destroy(d);
  }
  moeplace_placement_destroy(in_force);
  moeplace_placement_destroy(next);
  moeplace_topology_destroy(shape);
}

/* Load samples (setup.samples, from config.load_samples): experts 0 and 1
 * burst together, 2 and 3 too, in alternate windows, so their means are
 * equal and only the windows tell that the placement in force, {0, 1} on
 * rank 0 and {2, 3} on rank 1, doubles every window's max. With samples
 * the decision moves to a crossed pairing; without them (0, or 1 window:
 * too few) it keeps the placement. Local: rank 0 runs it. */
static void case_decider_samples(int R) {
  (void)R;
  if (my_rank != 0) return;
  enum { L = 1, E = 4, RR = 2, S = 2 };
  moeplace_topology *shape = NULL;
  moeplace_placement *in_force = NULL, *next = NULL;
  CHECK(moeplace_topology_create_shape(&shape, 1, RR, 1, 1) == MOEPLACE_OK, "shape");
  CHECK(moeplace_placement_create(&in_force, L, E, RR, S) == MOEPLACE_OK, "placement");
  CHECK(moeplace_placement_create(&next, L, E, RR, S) == MOEPLACE_OK, "placement");
  if (!shape || !in_force || !next) return;
  const int phy2log[RR * S] = {0, 1, 2, 3};
  memcpy(moeplace_placement_phy2log(in_force, 0), phy2log, sizeof phy2log);
  CHECK(moeplace_placement_equal_shares(in_force) == MOEPLACE_OK, "shares");
  const int samples[3] = {0, 1, 8};
  for (int k = 0; k < 3; k++) {
    mp_rt_decider_setup set = {.L = L, .E = E, .R = RR, .S = S, .shape = shape, .window = 5,
                               .horizon = 100, .rebalance_interval = 100, .history_windows = 16,
                               .predictor = "sw_avg", .migration_budget_bytes = MOEPLACE_NO_LIMIT,
                               .shares = MOEPLACE_SHARES_EVEN, .samples = samples[k],
                               .threaded = 0};
    mp_rt_decider *d = NULL;
    CHECK(mp_rt_decider_create(&d, &set) == MOEPLACE_OK && d, "decider: %s", moeplace_last_error());
    if (!d) break;
    const uint64_t a[E] = {200, 200, 0, 0}, b[E] = {0, 0, 200, 200};
    for (int w = 0; w < 8; w++) CHECK(mp_rt_decider_observe(d, w % 2 ? b : a) == MOEPLACE_OK, "observe");
    const size_t bytes[L] = {1000};
    const double no_bw[MOEPLACE_LINK_CLASSES] = {0};
    CHECK(mp_rt_decider_request(d, in_force, bytes, no_bw, 1e-3, 0, 1000000) == MOEPLACE_OK,
          "request");
    mp_rt_decision res;
    double waited;
    CHECK(mp_rt_decider_collect(d, &res, next, &waited) == MOEPLACE_OK && res.status == MOEPLACE_OK,
          "collect: %s", res.error);
    const int *got = moeplace_placement_phy2log(next, 0);
    int apart = 1; // 0 and 1 on different ranks, 2 and 3 too
    for (int r = 0; r < RR; r++) {
      int has[E] = {0};
      for (int s = 0; s < S; s++)
        if (got[r * S + s] >= 0) has[got[r * S + s]] = 1; // next is written only on commit
      apart &= !(has[0] && has[1]) && !(has[2] && has[3]);
    }
    CHECK(res.commit == (k == 2) && (res.commit ? apart : 1),
          "samples %d: commit %d, bursting experts apart %d", samples[k], res.commit, apart);
    mp_rt_decider_destroy(d);
  }
  moeplace_placement_destroy(in_force);
  moeplace_placement_destroy(next);
  moeplace_topology_destroy(shape);
}

/* A static runtime (rebalance_interval 0) feeds no forecaster: nothing
 * would ask it for a forecast, and an LSTM trains on every window, on the
 * coordinator's training thread. The history, which checkpoints need, is
 * kept either way. Local: rank 0 runs it. */
static void case_decider_static(int R) {
  (void)R;
  if (my_rank != 0) return;
  enum { L = 2, E = 4, RR = 2, S = 3 };
  moeplace_topology *shape = NULL;
  CHECK(moeplace_topology_create_shape(&shape, 1, RR, 1, 1) == MOEPLACE_OK, "shape");
  if (!shape) return;
  for (int interval = 0; interval <= 100; interval += 100) {
    mp_rt_decider_setup set = {.L = L, .E = E, .R = RR, .S = S, .shape = shape, .window = 5,
                               .horizon = 100, .rebalance_interval = interval,
                               .history_windows = 16, .predictor = "lstm",
                               .migration_budget_bytes = MOEPLACE_NO_LIMIT,
                               .shares = MOEPLACE_SHARES_EVEN, .threaded = 0};
    mp_rt_decider *d = NULL;
    CHECK(mp_rt_decider_create(&d, &set) == MOEPLACE_OK && d, "decider: %s", moeplace_last_error());
    if (!d) break;
    const uint64_t totals[L * E] = {700, 100, 100, 100, 1, 2, 3, 4};
    for (int w = 0; w < 4; w++) CHECK(mp_rt_decider_observe(d, totals) == MOEPLACE_OK, "observe");
    const int64_t fed = mp_rt_decider_test_fed(d);
    CHECK(fed == (interval ? 4 : -1), "interval %d: forecaster fed %lld windows", interval,
          (long long)fed);
    const mp_rt_history *h = mp_rt_decider_history(d);
    CHECK(mp_rt_history_count(h) == 4, "interval %d: history of %d windows", interval,
          mp_rt_history_count(h));
    mp_rt_decider_destroy(d);
  }
  moeplace_topology_destroy(shape);
}

/* Runs 100 steps of the skewed load with cfg and checks that a decision is
 * applied (info.rebalance_checked) exactly at the steps want [n]. */
static void check_decision_steps(const moeplace_runtime_config *cfg, int L, int E, int S,
                                 const int *want, int n, const char *what) {
  moeplace_runtime *rt = NULL;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, cfg);
  CHECK(rc == MOEPLACE_OK && rt, "%s: create", what);
  if (!rt) return;
  for (int step = 1, k = 0; step <= 100; step++) {
    moeplace_step_info info;
    rc = skewed_step(rt, L, E, S, &info);
    CHECK(rc == MOEPLACE_OK, "%s: step %d rc=%d", what, step, rc);
    const int due = k < n && want[k] == step;
    k += due;
    CHECK(info.rebalance_checked == due, "%s: step %d decision %d, expected %d", what, step,
          info.rebalance_checked, due);
  }
  moeplace_runtime_destroy(rt);
}

/* Warm-up (config.warmup_steps = 10, lag 0): one more decision at step 10
 * of the first interval, which already moves the skewed load's hot expert,
 * then the usual ones at 20, 40 and 60 (twice 10 is the interval). With the
 * default (two windows: 10) and an interval of 100 the warm-up decides at
 * 10, 20, 40 and 80, each time the steps seen have doubled. A warm-up step that is not a
 * multiple of the window, or not below the interval, is refused. */
static void case_loop_warmup(int R) {
  const int L = 2, E = 2 * R, S = 3;
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = L;
  cfg.experts = E;
  cfg.slots_per_rank = S;
  cfg.window = 5;
  cfg.rebalance_interval = 20;
  cfg.decision_lag_windows = 0; // applied at the step it is requested
  cfg.shm_transfers = shm_transfers;
  moeplace_runtime *rt = NULL;
  for (int bad = 7; bad <= 20; bad += 13) { // 7: not a multiple of 5; 20: not below 20
    cfg.warmup_steps = bad;
    CHECK(moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg) == MOEPLACE_ERR_ARG && !rt,
          "warmup_steps %d refused", bad);
    CHECK(strstr(moeplace_last_error(), "warmup_steps") != NULL, "error names the field: %s",
          moeplace_last_error());
  }
  cfg.warmup_steps = 10;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK && rt, "create");
  if (!rt) return;
  int first_move = -1, checked = 0;
  for (int step = 1; step <= 60; step++) {
    moeplace_step_info info;
    rc = skewed_step(rt, L, E, S, &info);
    CHECK(rc == MOEPLACE_OK, "step %d rc=%d", step, rc);
    const int due = step == 10 || step % 20 == 0;
    CHECK(info.rebalance_checked == due, "step %d: decision %d, expected %d", step,
          info.rebalance_checked, due);
    checked += info.rebalance_checked;
    if (info.rebalanced && first_move < 0) first_move = step;
  }
  CHECK(checked == 4, "decisions: %d", checked);
  CHECK(first_move == 10, "the skewed load is first rebalanced at step %d, expected 10",
        first_move);
  moeplace_runtime_destroy(rt);
  // the default, MOEPLACE_RUNTIME_WARMUP_AUTO: two windows of 5, step 10
  moeplace_runtime_config def;
  moeplace_runtime_config_init(&def);
  CHECK(def.warmup_steps == MOEPLACE_RUNTIME_WARMUP_AUTO, "default warmup_steps %lld",
        (long long)def.warmup_steps);
  cfg.warmup_steps = def.warmup_steps;
  cfg.rebalance_interval = 100;
  const int auto_steps[] = {10, 20, 40, 80, 100};
  check_decision_steps(&cfg, L, E, S, auto_steps, 5, "default warm-up");
  // with a decision lag of 3 windows the default starts at the lag (15):
  // requests at 15, 30, 60 and 100, each applied 15 steps later; from 10
  // the request at 20 would drop the one of 10, not yet applied
  cfg.decision_lag_windows = 3;
  cfg.decision_wait = 1; // applied when due, whatever the timing
  const int lag_steps[] = {30, 45, 75};
  check_decision_steps(&cfg, L, E, S, lag_steps, 3, "lag 3");
}

/* The closed loop on a skewed load. Decisions are requested at steps 20,
 * 40, 60 and applied decision_lag_windows windows (of 5 steps) later: at
 * 20 + 5 lag and 40 + 5 lag within the 60 steps (and 60 too with lag 0). */
static void case_loop(int R, int with_state, int lag) {
  const int L = 2, E = 2 * R, S = 3, G = R * S;
  moeplace_runtime *rt = make_loop_rt(L, E, S, lag, 0);
  if (!rt) return;
  state st;
  if (with_state) state_init(&st, rt, L, S, 10000, 100, 1);
  int rebalanced = 0, checked = 0, rc;
  double imb_old = 0, imb_new = 0;
  for (int step = 0; step < 60; step++) {
    moeplace_step_info info;
    rc = skewed_step(rt, L, E, S, &info);
    CHECK(rc == MOEPLACE_OK, "step %d rc=%d", step, rc);
    CHECK(info.window_closed == ((step + 1) % 5 == 0), "step %d window", step);
    int due = (step + 1 - 5 * lag) % 20 == 0 && step + 1 - 5 * lag > 0;
    CHECK(info.rebalance_checked == due, "step %d: decision applied %d, expected %d", step + 1,
          info.rebalance_checked, due);
    checked += info.rebalance_checked;
    if (info.rebalanced && my_rank == 0 && !rebalanced) {
      imb_old = info.predicted_imbalance_old;
      imb_new = info.predicted_imbalance_new;
    }
    rebalanced += info.rebalanced;
  }
  CHECK(checked == (lag ? 2 : 3), "rebalance decisions applied: %d", checked);
  CHECK(rebalanced >= 1, "a skewed load is rebalanced");
  if (my_rank == 0) CHECK(imb_new < imb_old - 0.1, "predicted imbalance %.3f -> %.3f", imb_old, imb_new);
  CHECK(placements_agree(rt, L, G), "placements agree");
  if (with_state) CHECK(state_bad_slots(&st, rt) == 0, "weights follow their experts");
  // The hot expert is replicated and its routing shares sum to 1.
  moeplace_replica reps[64];
  int n = 0;
  CHECK(moeplace_runtime_routing(rt, 0, E - 2, reps, 64, &n) == MOEPLACE_OK && n >= 2,
        "hot expert replicated: %d replicas", n);
  double sum = 0;
  for (int i = 0; i < n; i++) sum += reps[i].share;
  CHECK(sum > 1 - 1e-9 && sum < 1 + 1e-9, "shares sum to %g", sum);
  moeplace_runtime_stats stats;
  moeplace_runtime_get_stats(rt, &stats);
  CHECK(stats.windows == 12 && stats.steps == 60, "stats windows %lld steps %lld",
        (long long)stats.windows, (long long)stats.steps);
  if (with_state) state_free(&st);
  moeplace_runtime_destroy(rt);
}

/* Measured link bandwidths (linkbw.c): every rank sends its one 4 MiB
 * expert to the next rank. If those pairs share one link class, the
 * migration measures it (a plausible bytes/s, no other class); with
 * `split` nodes of R/2 ranks on 4 ranks the pairs mix classes and nothing
 * is measured (on 2 ranks every pair crosses nodes: measured). */
static void case_linkbw(int R, int split) {
  const int L = 1, E = R, S = 1;
  ranks_per_node = split ? R / 2 : 0;
  moeplace_runtime *rt = make_rt(L, E, S, 1 << 20, 8);
  ranks_per_node = 0;
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 3u << 20, 1u << 20, 1);
  int *next = malloc((size_t)R * sizeof *next);
  for (int r = 0; r < R; r++) next[r] = (r + R - 1) % R; // rank r takes rank r-1's expert
  int cls = -1;
  for (int r = 0; r < R; r++) {
    int n[2], p[2], m[2], c;
    moeplace_runtime_topology(rt, r, &n[0], &p[0], &m[0]);
    moeplace_runtime_topology(rt, (r + 1) % R, &n[1], &p[1], &m[1]);
    c = n[0] != n[1] ? 4 : p[0] != p[1] ? 3 : m[0] != m[1] ? 2 : 1; // moeplace_link_class
    cls = cls == -1 || cls == c ? c : -2;
  }
  CHECK(moeplace_runtime_apply_placement(rt, next, NULL, NULL) == MOEPLACE_OK, "rotate");
  CHECK(state_bad_slots(&st, rt) == 0, "weights follow their experts");
  double first[MOEPLACE_LINK_CLASSES];
  memcpy(first, rt->link_bw, sizeof first);
  for (int c = 0; c < MOEPLACE_LINK_CLASSES; c++) {
    if (c == cls) CHECK(first[c] > 1e6 && first[c] < 1e13, "class %d measured: %g B/s", c, first[c]);
    else CHECK(first[c] == 0, "class %d (pairs: %d) not measured: %g", c, cls, first[c]);
  }
  if (split && R > 2) CHECK(cls == -2, "split nodes mix link classes");
  moeplace_runtime_destroy(rt);
  state_free(&st);
  free(next);
}

/* Runs the loop to step `upto` (lag 2: the decision of step 20 is due at
 * step 30) with decision_wait = wait; hold: the coordinator's decision
 * thread is held from before step 20, so every step from 20 returns while
 * the decision has not even started. With wait, the hold ends before step
 * 30, which waits for the decision; without, it ends after step 30 (which
 * defers the decision and returns), and rank 0 waits for the thread before
 * step 31, so the decision is ready at the next window boundary, 35.
 * *place: the placement after step `upto`; *deferred: the coordinator's
 * decisions_deferred. */
static void slow_run(int R, int hold, int wait, int upto, int *place, int64_t *applied_at,
                     int64_t *deferred) {
  const int L = 2, E = 2 * R, S = 3;
  decision_wait = wait;
  moeplace_runtime *rt = make_loop_rt(L, E, S, 2, 0);
  decision_wait = 1;
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 4096, 64, 1);
  *applied_at = -1;
  if (hold) mp_rt_test_hold_decisions(rt, 1);
  for (int step = 1; step <= upto; step++) {
    if (hold && step == 30) // steps 20..29 returned with the decision held
      if (my_rank == 0) CHECK(mp_rt_test_decisions_done(rt) == 0, "decision not started yet");
    if (hold && step == 30 + !wait) mp_rt_test_hold_decisions(rt, 0);
    if (hold && !wait && step == 31 && my_rank == 0)
      while (mp_rt_test_decisions_done(rt) == 0) nanosleep(&(struct timespec){0, 1000000}, NULL);
    moeplace_step_info info;
    int rc = skewed_step(rt, L, E, S, &info);
    CHECK(rc == MOEPLACE_OK, "step %d rc=%d", step, rc);
    if (info.rebalance_checked) *applied_at = step;
    if (my_rank == 0 && step == 30 && wait) CHECK(mp_rt_test_decisions_done(rt) == 1, "decision done at 30");
  }
  moeplace_runtime_get_placement(rt, place, NULL);
  moeplace_runtime_stats stats;
  moeplace_runtime_get_stats(rt, &stats);
  *deferred = stats.decisions_deferred;
  CHECK(state_bad_slots(&st, rt) == 0, "weights follow their experts");
  state_free(&st);
  moeplace_runtime_destroy(rt);
}

/* A slow decision (held on the thread for 10 steps) changes neither the
 * steps' progress nor the outcome: the same placement as a decision that
 * was ready at once, applied at the same step (decision_wait = 1), or, by
 * default, deferred without waiting to the window boundary after it
 * finished (every rank agrees, by the decision broadcast). */
static void case_slow_decision(int R) {
  const int LG = 2 * R * 3;
  int *fast = calloc((size_t)LG, sizeof *fast), *slow = calloc((size_t)LG, sizeof *slow);
  int *late = calloc((size_t)LG, sizeof *late);
  int64_t at_fast = 0, at_slow = 0, at_late = 0, d_fast = 0, d_slow = 0, d_late = 0;
  slow_run(R, 0, 1, 38, fast, &at_fast, &d_fast);
  slow_run(R, 1, 1, 38, slow, &at_slow, &d_slow);
  slow_run(R, 1, 0, 38, late, &at_late, &d_late);
  CHECK(at_fast == 30 && at_slow == 30, "decision applied at step 30: %lld and %lld",
        (long long)at_fast, (long long)at_slow);
  CHECK(at_late == 35, "deferred decision applied at step 35: %lld", (long long)at_late);
  if (my_rank == 0)
    CHECK(d_fast == 0 && d_slow == 0 && d_late == 1, "decisions deferred %lld %lld %lld",
          (long long)d_fast, (long long)d_slow, (long long)d_late);
  CHECK(memcmp(fast, slow, (size_t)LG * sizeof *fast) == 0, "same placement decided");
  CHECK(memcmp(fast, late, (size_t)LG * sizeof *fast) == 0, "same placement decided, deferred");
  int initial = 1;
  for (int i = 0; i < LG; i++) initial &= slow[i] == i % (3 * R) % (2 * R);
  CHECK(!initial, "the decision changed the placement");
  free(fast);
  free(slow);
  free(late);
}

/* The thread ID of this process's thread named `name` (/proc, Linux), or 0. */
static pid_t thread_named(const char *name) {
  DIR *dir = opendir("/proc/self/task");
  pid_t tid = 0;
  for (struct dirent *e; dir && !tid && (e = readdir(dir));) {
    char path[300], comm[64] = "";
    snprintf(path, sizeof path, "/proc/self/task/%s/comm", e->d_name);
    FILE *f = fopen(path, "r");
    if (f && fgets(comm, sizeof comm, f) && !strncmp(comm, name, strlen(name))) tid = atoi(e->d_name);
    if (f) fclose(f);
  }
  if (dir) closedir(dir);
  return tid;
}

/* The decision thread's CPUs (Linux's own affinity calls, not hwloc): when
 * the ranks on this host are bound to fewer CPUs than it has online (the
 * test runs them on CPU 0 alone, tests/runtime_mpi.sh), exactly the rest,
 * and the runtime counts them; otherwise the coordinator's own CPUs,
 * inherited. The default predictor follows: auto with spare CPUs, else
 * sw_avg, the same on every rank. */
static void case_decider_cpus(int R) {
  moeplace_runtime *rt = make_loop_rt(2, 2 * R, 3, 1, 0);
  if (!rt) return;
  cpu_set_t mine, host;
  CPU_ZERO(&mine);
  CHECK(sched_getaffinity(0, sizeof mine, &mine) == 0, "sched_getaffinity");
  MPI_Comm local;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &local);
  MPI_Allreduce(&mine, &host, (int)sizeof mine, MPI_BYTE, MPI_BOR, local);
  MPI_Comm_free(&local);
  int spare_cpus = 0;
  if (my_rank == 0) {
    pid_t tid = thread_named("moeplace-decide");
    CHECK(tid > 0, "the decision thread is named moeplace-decide");
    cpu_set_t thr, spare;
    CPU_ZERO(&thr);
    CPU_ZERO(&spare);
    CHECK(tid > 0 && sched_getaffinity(tid, sizeof thr, &thr) == 0, "the thread's affinity");
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    for (int c = 0; c < online && c < CPU_SETSIZE; c++)
      if (!CPU_ISSET(c, &host)) CPU_SET(c, &spare);
    int pus = mp_rt_test_decider_pus(rt);
    if (CPU_COUNT(&spare) > 0) {
      CHECK(CPU_EQUAL(&thr, &spare), "thread on the %d spare CPUs, not on %d others",
            CPU_COUNT(&spare), CPU_COUNT(&thr));
      CHECK(pus == CPU_COUNT(&spare), "decider_pus %d for %d spare CPUs", pus, CPU_COUNT(&spare));
    } else {
      CHECK(CPU_EQUAL(&thr, &mine) && pus == 0, "no spare CPU: inherited binding (pus %d)", pus);
    }
    printf("decider_cpus: %d of %ld CPUs spare on the host, thread on %d (%s)\n",
           CPU_COUNT(&spare), online, CPU_COUNT(&thr), pus ? "bound" : "inherited");
    spare_cpus = CPU_COUNT(&spare);
  }
  MPI_Bcast(&spare_cpus, 1, MPI_INT, 0, MPI_COMM_WORLD);
  const char *used = moeplace_runtime_predictor(rt);
  CHECK(used && !strcmp(used, spare_cpus ? "auto" : "sw_avg"), "default predictor %s with %d spare CPUs",
        used ? used : "(null)", spare_cpus);
  moeplace_runtime_destroy(rt);
}

/* A decision failing on the thread: every rank returns its error at the
 * step applying it, keeps the old placement and goes on; the next decision
 * works. */
static void case_decision_fail(int R) {
  const int L = 2, E = 2 * R, S = 3, G = R * S;
  moeplace_runtime *rt = make_loop_rt(L, E, S, 1, 0);
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 4096, 64, 3);
  int *before = malloc((size_t)L * G * sizeof *before), *after = malloc((size_t)L * G * sizeof *after);
  mp_rt_test_fail_next_decision(rt);
  moeplace_runtime_get_placement(rt, before, NULL);
  int rebalanced = 0;
  for (int step = 1; step <= 50; step++) {
    moeplace_step_info info;
    int rc = skewed_step(rt, L, E, S, &info);
    if (step == 25) {
      CHECK(rc == MOEPLACE_ERR_NUMERIC, "the failed decision is reported at step 25: rc=%d", rc);
      moeplace_runtime_get_placement(rt, after, NULL);
      CHECK(memcmp(before, after, (size_t)L * G * sizeof *after) == 0, "old placement kept");
      CHECK(placements_agree(rt, L, G), "placements agree");
    } else {
      CHECK(rc == MOEPLACE_OK, "step %d rc=%d", step, rc);
    }
    rebalanced += info.rebalanced;
  }
  CHECK(rebalanced >= 1, "the next decision rebalances");
  CHECK(state_bad_slots(&st, rt) == 0, "weights follow their experts");
  free(before);
  free(after);
  state_free(&st);
  moeplace_runtime_destroy(rt);
}

/* migration_layers_per_step = 1: the decision applied at step 20 (lag 0)
 * migrates layer 0 at step 20 and layer 1 at step 21, each committed on its
 * own; destroy: the runtime is destroyed at step 20 with layer 1 still to
 * migrate, or (mode 2) with a decision held on the thread. */
static void case_chunks(int R, int destroy) {
  const int L = 2, E = 2 * R, S = 3, G = R * S;
  moeplace_runtime *rt = make_loop_rt(L, E, S, destroy == 2 ? 1 : 0, 1);
  if (!rt) return;
  state st;
  state_init(&st, rt, L, S, 4096, 64, 1);
  int *p19 = malloc((size_t)L * G * sizeof *p19), *p20 = malloc((size_t)L * G * sizeof *p20);
  int *p21 = malloc((size_t)L * G * sizeof *p21);
  if (destroy == 2) mp_rt_test_hold_decisions(rt, 1);
  for (int step = 1; step <= 21; step++) {
    moeplace_step_info info;
    int rc = skewed_step(rt, L, E, S, &info);
    CHECK(rc == MOEPLACE_OK, "step %d rc=%d", step, rc);
    if (destroy == 2) {
      if (step == 21) break; // decision requested at 20, held, due at 25
      continue;
    }
    if (step == 19) moeplace_runtime_get_placement(rt, p19, NULL);
    if (step == 20) {
      moeplace_runtime_get_placement(rt, p20, NULL);
      CHECK(info.rebalanced == 1, "layer 0 committed at step 20");
      CHECK(memcmp(p19, p20, (size_t)G * sizeof *p20) != 0, "layer 0 changed at step 20");
      CHECK(memcmp(p19 + G, p20 + G, (size_t)G * sizeof *p20) == 0, "layer 1 unchanged at step 20");
      CHECK(state_bad_slots(&st, rt) == 0, "weights follow their experts at step 20");
      CHECK(placements_agree(rt, L, G), "placements agree at step 20");
      if (destroy) break; // layer 1 still to migrate
    }
    if (step == 21) {
      moeplace_runtime_get_placement(rt, p21, NULL);
      CHECK(info.rebalanced == 1, "layer 1 committed at step 21");
      CHECK(memcmp(p20, p21, (size_t)G * sizeof *p21) == 0, "layer 0 kept at step 21");
      CHECK(memcmp(p20 + G, p21 + G, (size_t)G * sizeof *p21) != 0, "layer 1 changed at step 21");
      CHECK(state_bad_slots(&st, rt) == 0, "weights follow their experts at step 21");
      CHECK(placements_agree(rt, L, G), "placements agree at step 21");
    }
  }
  free(p19);
  free(p20);
  free(p21);
  moeplace_runtime_destroy(rt); // with work in flight: clean (ASan, valgrind)
  state_free(&st);
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return (double)ru.ru_utime.tv_sec + 1e-6 * (double)ru.ru_utime.tv_usec +
         (double)ru.ru_stime.tv_sec + 1e-6 * (double)ru.ru_stime.tv_usec;
}

static double wall_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static moeplace_runtime *make_rt_timeout(int R, double timeout_s) {
  moeplace_runtime_config cfg;
  moeplace_runtime_config_init(&cfg);
  cfg.layers = 2;
  cfg.experts = 2 * R;
  cfg.slots_per_rank = 2;
  cfg.window = 5;
  cfg.rebalance_interval = 10;
  cfg.collective_timeout_s = timeout_s;
  moeplace_runtime *rt = NULL;
  int rc = moeplace_runtime_create(&rt, MPI_COMM_WORLD, &cfg);
  CHECK(rc == MOEPLACE_OK && rt, "create rc=%d", rc);
  return rt;
}

/* Rank R-1 stops for 5 s inside a migration, before posting its transfers
 * (collective_timeout_s = 2): rank R-2, which receives from it, times out in
 * the transfers naming rank R-1; the others time out in their transfers or
 * the commit agreement; R-1 itself in the agreement. Every rank returns
 * MOEPLACE_ERR_MPI, then MOEPLACE_ERR_STATE; destroy and MPI_Finalize work. */
static void case_migrate_stalled(int R) {
  moeplace_runtime *rt = make_rt_timeout(R, 2.0);
  if (!rt) return;
  const int L = 2, S = 2, G = R * S;
  state st;
  state_init(&st, rt, L, S, 1 << 18, 4096, 1);
  int *cur = malloc((size_t)L * G * sizeof *cur), *next = malloc((size_t)L * G * sizeof *next);
  moeplace_runtime_get_placement(rt, cur, NULL);
  rotate_to_previous_rank(L, G, S, cur, next);
  if (my_rank == R - 1) rt->test_stall_s = 5;
  double t0 = wall_s();
  int rc = moeplace_runtime_apply_placement(rt, next, NULL, NULL);
  double dt = wall_s() - t0;
  char msg[1024];
  snprintf(msg, sizeof msg, "%s", moeplace_last_error());
  CHECK(rc == MOEPLACE_ERR_MPI && strstr(msg, "timed out"), "rc=%d: %s", rc, msg);
  if (my_rank == R - 2) {
    char who[64];
    snprintf(who, sizeof who, "rank %d", R - 1);
    CHECK(strstr(msg, "transfers of a migration") && strstr(msg, who),
          "names the stage and rank %d: %s", R - 1, msg);
    CHECK(dt >= 1.9 && dt < 20, "timed out after %.2f s", dt);
  }
  CHECK(moeplace_runtime_step(rt, NULL) == MOEPLACE_ERR_STATE, "unusable afterwards");
  free(cur);
  free(next);
  moeplace_runtime_destroy(rt);
  state_free(&st);
}

/* Rank R-1 calls step a second time at loop index 2: its window closes one
 * loop iteration early, at its own step 4 against the others' 5. */
static void case_step_extra(int R) {
  moeplace_runtime *rt = make_rt_timeout(R, 20.0);
  if (!rt) return;
  int failed_at = -1, rc = MOEPLACE_OK;
  char msg[512] = "";
  for (int i = 0; i < 10 && failed_at < 0; i++) {
    int calls = my_rank == R - 1 && i == 2 ? 2 : 1;
    for (int c = 0; c < calls && failed_at < 0; c++) {
      rc = moeplace_runtime_step_at(rt, i + 1, NULL);
      if (rc != MOEPLACE_OK) {
        failed_at = i;
        snprintf(msg, sizeof msg, "%s", moeplace_last_error());
      }
    }
  }
  CHECK(rc == MOEPLACE_ERR_MISMATCH, "step mismatch detected, rc=%d", rc);
  CHECK(failed_at == (my_rank == R - 1 ? 3 : 4), "at the window, failed at loop index %d", failed_at);
  char who[64];
  snprintf(who, sizeof who, "rank %d at step 4", R - 1);
  CHECK(strstr(msg, who) != NULL, "message names the rank and its step: %s", msg);
  CHECK(moeplace_runtime_step_at(rt, 100, NULL) == MOEPLACE_ERR_STATE, "unusable afterwards");
  if (my_rank == 0) printf("step_extra: %s\n", msg);
  moeplace_runtime_destroy(rt);
}

/* Rank R-1 misses the window of step 5 (skips a call, or is stopped by
 * SIGSTOP for 5 s when stop is set): the others time out there within the
 * deadline (2 s) without spinning; R-1, once back, times out too. */
static void case_step_missing(int R, int stop) {
  const double deadline = 2.0;
  moeplace_runtime *rt = make_rt_timeout(R, deadline);
  if (!rt) return;
  int rc = MOEPLACE_OK, i;
  double wall = 0, cpu = 0;
  for (i = 0; i < 5 && rc == MOEPLACE_OK; i++) {
    if (my_rank == R - 1 && i == 4) {
      if (!stop) continue; // a missed call: R-1 stays out of the window
      pid_t child = fork();
      if (child == 0) {
        sleep(5);
        kill(getppid(), SIGCONT);
        _exit(0);
      }
      raise(SIGSTOP);
      waitpid(child, NULL, 0);
    } else if (my_rank == R - 1 && i == 2 && !stop)
      continue;
    double w0 = wall_s(), c0 = cpu_s();
    rc = moeplace_runtime_step(rt, NULL);
    wall = wall_s() - w0;
    cpu = cpu_s() - c0;
  }
  if (my_rank != R - 1) {
    CHECK(rc == MOEPLACE_ERR_MPI && i == 5, "timeout at the window: rc=%d at call %d", rc, i);
    CHECK(strstr(moeplace_last_error(), "timed out") != NULL, "says timed out: %s",
          moeplace_last_error());
    CHECK(wall >= deadline - 0.1 && wall < 10 * deadline, "time to error %.2f s", wall);
    if (my_rank == 0)
      printf("step_missing%s: error after %.2f s (deadline %.1f s), cpu %.3f s while waiting: %s\n",
             stop ? " (SIGSTOP)" : "", wall, deadline, cpu, moeplace_last_error());
    CHECK(cpu < 0.5 * wall, "waiting does not spin: cpu %.3f s over %.2f s", cpu, wall);
    CHECK(moeplace_runtime_step(rt, NULL) == MOEPLACE_ERR_STATE, "unusable afterwards");
  }
  MPI_Barrier(MPI_COMM_WORLD); // R-1 comes back only after the others failed
  if (my_rank == R - 1) { // back: it may already have timed out at its window
    for (int k = 0; k < 20 && rc == MOEPLACE_OK; k++) rc = moeplace_runtime_step(rt, NULL);
    CHECK(rc == MOEPLACE_ERR_MPI && strstr(moeplace_last_error(), "timed out"),
          "the late rank times out too: rc=%d", rc);
  }
  moeplace_runtime_destroy(rt);
}

int main(int argc, char **argv) {
  // The runtime's decision thread never calls MPI: MPI_THREAD_FUNNELED is
  // enough (moeplace_runtime_create checks what MPI provided).
  int provided = MPI_THREAD_SINGLE;
  MPI_Init_thread(&argc, &argv, MPI_THREAD_FUNNELED, &provided);
  int R;
  MPI_Comm_rank(MPI_COMM_WORLD, &my_rank);
  MPI_Comm_size(MPI_COMM_WORLD, &R);
  char c[64];
  int p2p = 0;
  mpi_case_name(argc, argv, c, sizeof c, &p2p);
  shm_transfers = !p2p;
  if (R < 2 || R % 2) {
    if (my_rank == 0) fprintf(stderr, "run with an even number >= 2 of ranks\n");
    MPI_Finalize();
    return 2;
  }
  if (!strcmp(c, "config")) case_config(R);
  else if (!strcmp(c, "args")) case_args(R);
  else if (!strcmp(c, "topology")) case_topology(R);
  else if (!strcmp(c, "topology_env")) case_topology_env(R);
  else if (!strcmp(c, "topology_hosts")) case_topology_hosts(R); // check-multihost only
  else if (!strcmp(c, "migrate")) case_migrate(R, 0);
  else if (!strcmp(c, "migrate_owned")) case_migrate(R, 1); // weights owned, momentum registered
  else if (!strcmp(c, "corrupt")) case_corrupt(R, 0);
  else if (!strcmp(c, "corrupt_owned")) case_corrupt(R, 3);
  else if (!strcmp(c, "registration")) case_registration(R);
  else if (!strcmp(c, "loop")) case_loop(R, 1, 1);
  else if (!strcmp(c, "loop_sync")) case_loop(R, 1, 0); // decisions inside the step
  else if (!strcmp(c, "loop_warmup")) case_loop_warmup(R);
  else if (!strcmp(c, "decider_horizon")) case_decider_horizon(R);
  else if (!strcmp(c, "decider_static")) case_decider_static(R);
  else if (!strcmp(c, "decider_samples")) case_decider_samples(R);
  else if (!strcmp(c, "loop_nostate")) case_loop(R, 0, 1); // routing only: nothing registered
  else if (!strcmp(c, "slow_decision")) case_slow_decision(R);
  else if (!strcmp(c, "decision_fail")) case_decision_fail(R);
  else if (!strcmp(c, "decider_cpus")) case_decider_cpus(R);
  else if (!strcmp(c, "chunks")) case_chunks(R, 0);
  else if (!strcmp(c, "migrate_stalled")) case_migrate_stalled(R);
  else if (!strcmp(c, "destroy_migrating")) case_chunks(R, 1);
  else if (!strcmp(c, "destroy_deciding")) case_chunks(R, 2);
  else if (!strcmp(c, "shm_reuse")) case_shm_reuse(R, 0);
  else if (!strcmp(c, "shm_full")) case_shm_reuse(R, 1);
  else if (!strcmp(c, "step_extra")) case_step_extra(R);
  else if (!strcmp(c, "step_missing")) case_step_missing(R, 0);
  else if (!strcmp(c, "step_stopped")) case_step_missing(R, 1);
  else if (!strcmp(c, "linkbw")) case_linkbw(R, 0);
  else if (!strcmp(c, "linkbw_nodes")) case_linkbw(R, 1);
  else if (!strcmp(c, "migrate_nodes")) {
    ranks_per_node = R / 2;
    case_migrate(R, 1);
  }
  else {
    if (my_rank == 0) fprintf(stderr, "unknown case \"%s\"\n", c);
    MPI_Finalize();
    return 2;
  }
  return mpi_case_end(c, shm_transfers ? "" : " (p2p)", R);
}
