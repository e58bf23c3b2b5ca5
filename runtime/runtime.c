/* The public runtime object: creation, registration, per-step recording,
 * accessors. Window aggregation and rebalancing are in loop.c. */
#include "config.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/trace_window.h"
#include "common/warmup.h"
#include "runtime/internal.h"
#include "runtime/rt_config.h"

static char *dup_str(const char *s) {
  if (!s) return NULL;
  size_t n = strlen(s) + 1;
  char *d = malloc(n);
  if (d) memcpy(d, s, n);
  return d;
}

static void free_runtime(moeplace_runtime *rt) {
  if (!rt) return;
  // After a timeout a collective may still be pending on rt->comm, and a
  // late rank can complete it at any later progress (even in MPI_Finalize):
  // freeing the communicator under it crashes Open MPI's libnbc, so a timed-out
  // runtime leaves its communicator to MPI_Finalize.
  if (rt->comm != MPI_COMM_NULL && rt->broken != 2) MPI_Comm_free(&rt->comm);
  mp_rt_decider_destroy(rt->decider); // first: its thread may still read the topology
  free(rt->predictor);
  mp_rt_decider_spare_free(rt);
  free(rt->hwloc_synthetic);
  free(rt->cluster_file);
  moeplace_placement_destroy(rt->placement);
  moeplace_placement_destroy(rt->next);
  moeplace_placement_destroy(rt->target);
  mp_rt_topology_free(&rt->topo);
  for (size_t i = 0; rt->slots && i < (size_t)rt->L * rt->S; i++) {
    for (int b = 0; b < rt->slots[i].nbuf; b++)
      if (rt->slots[i].buf[b].owned && rt->slots[i].buf[b].win < 0) free(rt->slots[i].buf[b].ptr);
    free(rt->slots[i].buf);
  }
  free(rt->slots);
  mp_rt_spare_free_all(rt);
  if (rt->broken != 2) {
    mp_rt_shm_free(&rt->shm);
  } else { // freeing windows is collective over the node, and a peer may be gone
    free(rt->shm.node_rank);
    free(rt->shm.base);
  }
  free(rt->expert_bytes);
  free(rt->window_counts);
  free(rt->step_gaps);
  mp_rt_experts_free(rt);
  mp_rt_plan_free(rt);
  free(rt->gather_buf);
  free(rt->staging);
  free(rt);
}

/* Allocates everything; local. */
static int build(moeplace_runtime *rt, const moeplace_runtime_config *cfg) {
  rt->cfg = *cfg;
  if (rt->cfg.warmup_steps == MOEPLACE_RUNTIME_WARMUP_AUTO)
    rt->cfg.warmup_steps = mp_warmup_auto(cfg->rebalance_interval, cfg->window,
                                          (int64_t)cfg->decision_lag_windows * cfg->window);
  rt->predictor = dup_str(cfg->predictor);
  rt->hwloc_synthetic = dup_str(cfg->hwloc_synthetic);
  rt->cfg.predictor = rt->predictor;
  rt->cfg.hwloc_synthetic = rt->hwloc_synthetic;
  rt->cluster_file = dup_str(cfg->cluster_file);
  rt->cfg.cluster_file = rt->cluster_file;
  rt->L = cfg->layers;
  rt->E = cfg->experts;
  rt->S = cfg->slots_per_rank;
  rt->R = rt->size;
  rt->G = rt->R * rt->S;
  size_t LS = (size_t)rt->L * rt->S;
  int st = moeplace_placement_create(&rt->placement, rt->L, rt->E, rt->R, rt->S);
  if (st == MOEPLACE_OK) st = moeplace_placement_create(&rt->next, rt->L, rt->E, rt->R, rt->S);
  if (st == MOEPLACE_OK) st = moeplace_placement_create(&rt->target, rt->L, rt->E, rt->R, rt->S);
  if (st != MOEPLACE_OK) return st;
  rt->decision_due = -1;
  rt->chunk_layer = -1;
  rt->slots = calloc(LS, sizeof *rt->slots);
  rt->expert_bytes = calloc((size_t)rt->L, sizeof *rt->expert_bytes);
  rt->window_counts = calloc(LS, sizeof *rt->window_counts);
  rt->step_gaps = calloc((size_t)cfg->window, sizeof *rt->step_gaps);
  if (!rt->predictor || (cfg->hwloc_synthetic && !rt->hwloc_synthetic) ||
      (cfg->cluster_file && !rt->cluster_file) || !rt->slots || !rt->expert_bytes ||
      !rt->window_counts || !rt->step_gaps)
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory creating the runtime");
  st = mp_rt_experts_alloc(rt);
  if (st != MOEPLACE_OK) return st;
  if (rt->rank == cfg->coordinator) {
    rt->gather_buf = malloc((size_t)rt->R * (1 + LS) * sizeof *rt->gather_buf);
    MP_CHECK_ALLOC(rt->gather_buf);
  }
  // Initial placement: expert g % E in global slot g, equal shares.
  for (int l = 0; l < rt->L; l++)
    for (int g = 0; g < rt->G; g++) moeplace_placement_phy2log(rt->placement, l)[g] = g % rt->E;
  st = moeplace_placement_equal_shares(rt->placement);
  if (st != MOEPLACE_OK) return st;
  rt->registration_dirty = 1;
  return MOEPLACE_OK;
}

/* The coordinator's decider (after the topology, which it reads), then an
 * agreement on its creation: collective. */
/* The decision thread never calls MPI: MPI_THREAD_FUNNELED is enough, but
 * MPI_THREAD_SINGLE (plain MPI_Init) promises MPI that no other thread
 * exists at all; then decisions run inline, at the same steps (the step at
 * the rebalance boundary waits for them, as with decision_lag_windows 0). */
static int mp_rt_thread_level_ok(void) {
  int provided = MPI_THREAD_SINGLE;
  MPI_Query_thread(&provided);
  return provided >= MPI_THREAD_FUNNELED;
}

/* The predictor the decider runs: the configured one, or for
 * MOEPLACE_RUNTIME_PREDICTOR_DEFAULT, "auto" when the decision thread has
 * CPUs of its own (decider_cpus.c), else "sw_avg": on a busy core `auto`'s
 * ARIMA fits cost more step time than its better forecast saves (measured:
 * docs/BENCHMARKS.md, "The decision thread's CPU, measured fairly"). The
 * same on every rank. */
static const char *predictor_used(const moeplace_runtime *rt, int threaded) {
  if (strcmp(rt->cfg.predictor, MOEPLACE_RUNTIME_PREDICTOR_DEFAULT) != 0) return rt->cfg.predictor;
  return threaded && rt->spare_pus > 0 ? MOEPLACE_PREDICT_AUTO : "sw_avg";
}

static int start_decider(moeplace_runtime *rt) {
  int local = MOEPLACE_OK;
  const moeplace_runtime_config *c = &rt->cfg;
  const int threaded = c->decision_lag_windows > 0 && c->rebalance_interval > 0 && mp_rt_thread_level_ok();
  rt->predictor_used = predictor_used(rt, threaded);
  if (rt->rank == rt->cfg.coordinator) {
    mp_rt_decider_setup set = {
        .L = rt->L, .E = rt->E, .R = rt->R, .S = rt->S, .shape = rt->topo.shape,
        .window = c->window, .horizon = c->horizon, .rebalance_interval = c->rebalance_interval,
        .history_windows = c->history_windows, .predictor = rt->predictor_used,
        .migration_tradeoff = c->migration_tradeoff, .min_gain = c->min_gain,
        .migration_budget_bytes = c->migration_budget_bytes, .groups = c->groups,
        .shares = c->shares, .spread = c->spread, .samples = c->load_samples,
        .threaded = threaded};
    local = mp_rt_decider_create(&rt->decider, &set);
    if (local == MOEPLACE_OK) mp_rt_decider_bind(rt); // decider_cpus.c
  }
  int ok = local == MOEPLACE_OK, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, rt->comm) != MPI_SUCCESS) all_ok = 0;
  if (all_ok) return MOEPLACE_OK;
  return ok ? mp_fail(MOEPLACE_ERR_NOMEM, "runtime: the coordinator could not start its decider")
            : local;
}

int moeplace_runtime_create(moeplace_runtime **out, MPI_Comm comm,
                            const moeplace_runtime_config *cfg) {
  if (out) *out = NULL;
  if (comm == MPI_COMM_NULL) return mp_fail(MOEPLACE_ERR_ARG, "runtime: communicator is MPI_COMM_NULL");
  int initialized = 0;
  MPI_Initialized(&initialized);
  if (!initialized) return mp_fail(MOEPLACE_ERR_STATE, "runtime: MPI is not initialized");

  moeplace_runtime *rt = calloc(1, sizeof *rt);
  if (rt) rt->shm.node = MPI_COMM_NULL; // not a zero bit pattern in every MPI
  // Even a rank with bad arguments takes part in the agreement below, so
  // that the others learn about it instead of waiting for it.
  int local = MOEPLACE_OK;
  if (!out || !cfg) local = mp_fail(MOEPLACE_ERR_ARG, "runtime: out and cfg must not be NULL");
  else if (!rt) local = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory creating the runtime");
  MPI_Comm dup = MPI_COMM_NULL;
  if (MPI_Comm_dup(comm, &dup) != MPI_SUCCESS) {
    free(rt);
    return mp_fail(MOEPLACE_ERR_MPI, "runtime: MPI_Comm_dup failed");
  }
  MPI_Comm_set_errhandler(dup, MPI_ERRORS_RETURN);
  int rank = 0, size = 1;
  MPI_Comm_rank(dup, &rank);
  MPI_Comm_size(dup, &size);
  if (local == MOEPLACE_OK) local = mp_rt_config_validate(cfg, size);
  int status = mp_rt_config_agree(dup, cfg, local);
  if (status != MOEPLACE_OK) {
    MPI_Comm_free(&dup);
    free(rt);
    return status;
  }
  rt->comm = dup;
  rt->rank = rank;
  rt->size = size;
  local = build(rt, cfg);
  // Allocation failures are local: agree on them before the next collective.
  int ok = local == MOEPLACE_OK, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, rt->comm) != MPI_SUCCESS) all_ok = 0;
  if (!all_ok) {
    free_runtime(rt);
    return ok ? mp_fail(MOEPLACE_ERR_NOMEM, "runtime: another rank ran out of memory") : local;
  }
  status = mp_rt_topology_discover(rt->comm, cfg->ranks_per_node, cfg->hwloc_synthetic, &rt->topo);
  if (status == MOEPLACE_OK) status = mp_rt_topology_attach_shape(rt->comm, cfg->cluster_file, &rt->topo);
  if (status == MOEPLACE_OK) status = mp_rt_shm_init(&rt->shm, rt->comm, rt->topo.node, cfg->shm_transfers);
  if (status == MOEPLACE_OK) status = mp_rt_decider_spare(rt); // decider_cpus.c
  if (status == MOEPLACE_OK) status = start_decider(rt);
  if (status != MOEPLACE_OK) {
    free_runtime(rt);
    return status;
  }
  *out = rt;
  return MOEPLACE_OK;
}

void moeplace_runtime_destroy(moeplace_runtime *rt) { free_runtime(rt); }

const char *moeplace_runtime_predictor(const moeplace_runtime *rt) {
  if (!rt) {
    mp_fail(MOEPLACE_ERR_ARG, "predictor: runtime is NULL");
    return NULL;
  }
  return rt->predictor_used;
}

int moeplace_runtime_register_buffer(moeplace_runtime *rt, int layer, int slot, void *ptr,
                                     size_t bytes) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "register_buffer: runtime is NULL");
  if (layer < 0 || layer >= rt->L)
    return mp_fail(MOEPLACE_ERR_ARG, "register_buffer: layer %d not in [0, %d)", layer, rt->L);
  if (slot < 0 || slot >= rt->S)
    return mp_fail(MOEPLACE_ERR_ARG, "register_buffer: slot %d not in [0, %d)", slot, rt->S);
  if ((!ptr && !rt->cfg.plan_only) || bytes == 0) // plan-only: a size alone prices moves
    return mp_fail(MOEPLACE_ERR_ARG, "register_buffer: need a non-NULL buffer of > 0 bytes");
  mp_rt_slot *sl = &rt->slots[(size_t)layer * rt->S + slot];
  if (sl->nbuf == sl->cap) { // grow by doubling: registration is not a hot path
    int cap = sl->cap ? 2 * sl->cap : 4;
    mp_rt_buffer *nb = sl->cap < INT_MAX / 2 ? realloc(sl->buf, (size_t)cap * sizeof *nb) : NULL;
    if (!nb)
      return mp_fail(MOEPLACE_ERR_NOMEM, "register_buffer: no memory for buffer %d of layer %d slot %d",
                     sl->nbuf, layer, slot);
    sl->buf = nb;
    sl->cap = cap;
  }
  sl->buf[sl->nbuf++] = (mp_rt_buffer){ptr, bytes, 0, -1};
  rt->registration_dirty = 1;
  return MOEPLACE_OK;
}

int moeplace_runtime_alloc_buffer(moeplace_runtime *rt, int layer, int slot, size_t bytes,
                                  void **ptr) {
  if (ptr) *ptr = NULL;
  if (!ptr) return mp_fail(MOEPLACE_ERR_ARG, "alloc_buffer: ptr is NULL");
  if (bytes == 0) return mp_fail(MOEPLACE_ERR_ARG, "alloc_buffer: need > 0 bytes");
  void *p = calloc(1, bytes);
  if (!p) return mp_fail(MOEPLACE_ERR_NOMEM, "alloc_buffer: no memory for %zu bytes", bytes);
  int st = moeplace_runtime_register_buffer(rt, layer, slot, p, bytes);
  if (st != MOEPLACE_OK) {
    free(p);
    return st;
  }
  rt->slots[(size_t)layer * rt->S + slot].buf[rt->slots[(size_t)layer * rt->S + slot].nbuf - 1].owned = 1;
  *ptr = p;
  return MOEPLACE_OK;
}

int moeplace_runtime_buffer(const moeplace_runtime *rt, int layer, int slot, int index,
                            void **ptr, size_t *bytes) {
  if (!rt || !ptr) return mp_fail(MOEPLACE_ERR_ARG, "buffer: runtime and ptr must not be NULL");
  if (layer < 0 || layer >= rt->L || slot < 0 || slot >= rt->S)
    return mp_fail(MOEPLACE_ERR_ARG, "buffer: layer %d slot %d out of range", layer, slot);
  const mp_rt_slot *sl = &rt->slots[(size_t)layer * rt->S + slot];
  if (index < 0 || index >= sl->nbuf)
    return mp_fail(MOEPLACE_ERR_ARG, "buffer: slot has %d buffers, no index %d", sl->nbuf, index);
  *ptr = sl->buf[index].ptr;
  if (bytes) *bytes = sl->buf[index].bytes;
  return MOEPLACE_OK;
}

int moeplace_runtime_record(moeplace_runtime *rt, int layer, const uint64_t *tokens) {
  if (!rt || !tokens) return mp_fail(MOEPLACE_ERR_ARG, "record: runtime and tokens must not be NULL");
  if ((unsigned)layer >= (unsigned)rt->L)
    return mp_fail(MOEPLACE_ERR_ARG, "record: layer %d not in [0, %d)", layer, rt->L);
  uint64_t *w = rt->window_counts + (size_t)layer * rt->S; // w: [S]
  const long bad = mp_window_overflow_at(w, tokens, (size_t)rt->S);
  if (bad >= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "record: layer %d slot %ld: tokens summed over the window "
                   "exceed 2^64 - 1 (nothing recorded)", layer, bad);
  for (int s = 0; s < rt->S; s++) w[s] += tokens[s];
  return MOEPLACE_OK;
}

int moeplace_runtime_rank(const moeplace_runtime *rt) { return rt ? rt->rank : -1; }
int moeplace_runtime_size(const moeplace_runtime *rt) { return rt ? rt->size : -1; }

int moeplace_runtime_get_placement(const moeplace_runtime *rt, int *phy2log, double *share) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "get_placement: runtime is NULL");
  size_t n = (size_t)rt->L * rt->G;
  if (phy2log) memcpy(phy2log, rt->placement->phy2log, n * sizeof *phy2log);
  if (share) memcpy(share, rt->placement->share, n * sizeof *share);
  return MOEPLACE_OK;
}

int moeplace_runtime_local_expert(const moeplace_runtime *rt, int layer, int slot, int *expert,
                                  double *share) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "local_expert: runtime is NULL");
  if (layer < 0 || layer >= rt->L || slot < 0 || slot >= rt->S)
    return mp_fail(MOEPLACE_ERR_ARG, "local_expert: layer %d slot %d out of range", layer, slot);
  size_t i = (size_t)layer * rt->G + (size_t)rt->rank * rt->S + slot;
  if (expert) *expert = rt->placement->phy2log[i];
  if (share) *share = rt->placement->share[i];
  return MOEPLACE_OK;
}

int moeplace_runtime_routing(const moeplace_runtime *rt, int layer, int expert,
                             moeplace_replica *out, int max, int *n) {
  if (!rt || !n || (max > 0 && !out) || max < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "routing: invalid arguments");
  if (layer < 0 || layer >= rt->L || expert < 0 || expert >= rt->E)
    return mp_fail(MOEPLACE_ERR_ARG, "routing: layer %d expert %d out of range", layer, expert);
  int k = 0;
  for (int g = 0; g < rt->G; g++) {
    size_t i = (size_t)layer * rt->G + g;
    if (rt->placement->phy2log[i] != expert) continue;
    if (k < max) out[k] = (moeplace_replica){g / rt->S, g % rt->S, rt->placement->share[i]};
    k++;
  }
  *n = k;
  if (k > max)
    return mp_fail(MOEPLACE_ERR_ARG, "routing: expert %d of layer %d has %d replicas, room for %d",
                   expert, layer, k, max);
  return MOEPLACE_OK;
}

int moeplace_runtime_topology(const moeplace_runtime *rt, int rank, int *node, int *package,
                              int *numa) {
  if (!rt || rank < 0 || rank >= rt->R)
    return mp_fail(MOEPLACE_ERR_ARG, "topology: invalid runtime or rank %d", rank);
  if (node) *node = rt->topo.node[rank];
  if (package) *package = rt->topo.package[rank];
  if (numa) *numa = rt->topo.numa[rank];
  return MOEPLACE_OK;
}

int moeplace_runtime_get_stats(const moeplace_runtime *rt, moeplace_runtime_stats *out) {
  if (!rt || !out) return mp_fail(MOEPLACE_ERR_ARG, "get_stats: NULL argument");
  *out = rt->stats;
  out->decider_cpu_s = mp_rt_decider_cpu_s(rt->decider);
  return MOEPLACE_OK;
}
