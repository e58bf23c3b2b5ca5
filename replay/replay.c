/* The replay loop. The trace is read one rebalance interval at a time (a
 * block of `interval` steps), so the counts held are one interval's whatever
 * the trace length (the result still keeps one decision record per interval
 * and policy); the block's buffers grow as its steps are read, so an
 * interval longer than the trace costs only the steps it holds. At the
 * start of each block every policy decides its placement; then every step
 * of the block is scored under every policy; then the block's windows are
 * fed to the forecaster. */
#include "replay/replay.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/metrics.h"
#include "common/timer.h"
#include "common/load_samples.h"
#include "common/trace_window.h"
#include "common/warmup.h"
#include "replay/eplb.h"

static const char *const policy_names[MP_POLICY_COUNT] = {"static", "moving_average", "moeplace",
                                                          "oracle", "eplb"};

const char *mp_policy_name(int policy) {
  return policy >= 0 && policy < MP_POLICY_COUNT ? policy_names[policy] : "?";
}

int mp_policy_from_name(const char *name) {
  for (int p = 0; p < MP_POLICY_COUNT; p++)
    if (strcmp(name, policy_names[p]) == 0) return p;
  return -1;
}

void mp_replay_config_init(mp_replay_config *cfg) {
  memset(cfg, 0, sizeof *cfg);
  cfg->interval = 500;
  cfg->window = 10;
  cfg->horizon = 0; /* = interval */
  cfg->predictor = MOEPLACE_PREDICT_AUTO;
  cfg->expert_bytes = 64.0 * 1024 * 1024;
  /* Bytes/s: a GPU-cluster-like ladder, NVLink-class inside a node down to
   * a 100 Gb/s network between nodes (docs/REPLAY.md). */
  cfg->migration_weight = 0;
  cfg->step_time_s = MP_REPLAY_STEP_TIME_S;
  cfg->groups = 1;
  cfg->time_budget_s = MOEPLACE_NO_LIMIT;
  cfg->byte_budget = -1;
  moeplace_place_options defaults;
  moeplace_place_options_init(&defaults);
  cfg->min_gain = defaults.min_gain;
  cfg->spread = MP_REPLAY_SPREAD;
  cfg->seed = 1;
  cfg->warmup = MP_REPLAY_WARMUP_AUTO;
  cfg->samples = MP_LOAD_SAMPLES_DEFAULT;
}

/* Everything one replay keeps, so the loop below reads as the algorithm. */
typedef struct replay_state {
  const moeplace_topology *topo;
  const mp_replay_config *cfg;
  int L, E, R, S;
  moeplace_placement *in_force[MP_POLICY_COUNT];
  moeplace_forecaster *forecaster;
  uint64_t *block;      /* [block_cap][L][E] counts of the current block */
  int64_t *block_step;  /* [block_cap] their trace step numbers */
  long *block_lines;    /* [block_cap][L] the lines of their rows (for messages) */
  int block_cap;        /* steps the three above hold; grows up to the interval */
  const char *trace_name;
  double *block_loads;  /* [L][E] token sums of the current block */
  double *prev_loads;   /* [L][E] token sums of the previous block */
  double *forecast;     /* [L][E] */
  double *step_loads;   /* [E] */
  double *rank_load;    /* [R] */
  uint64_t *window_sum; /* [L][E] */
  mp_window_ring recent; /* the last cfg->samples windows */
  double *samples;      /* [cfg->samples][L][E] the moeplace policy's load samples */
  double decision_s[MP_POLICY_COUNT];
  int horizon;          /* steps the moeplace policy's next decision stays in force */
} replay_state;

/* Installs `next` as the policy's placement, counting moves and modelled
 * migration time against the placement it replaces, and logs the decision. */
static int adopt(replay_state *st, int policy, moeplace_placement *next, double decision_s,
                 int64_t step, mp_policy_result *res) {
  moeplace_placement *cur = st->in_force[policy];
  moeplace_move_stats ms;
  mp_decision_record rec = {.step = step, .decision_ms = 1e3 * decision_s};
  int rc = moeplace_placement_diff(cur, next, st->topo, st->cfg->expert_bytes, &ms);
  if (rc == MOEPLACE_OK && ms.moves > 0) {
    moeplace_transfer *plan;
    size_t n;
    rc = moeplace_migration_plan(cur, next, st->topo, st->cfg->expert_bytes, &plan, &n);
    if (rc == MOEPLACE_OK) {
      rc = moeplace_migration_seconds(st->topo, plan, n, &rec.migration_s);
      moeplace_transfers_free(plan);
    }
    if (rc == MOEPLACE_OK) {
      rec.moves = ms.moves;
      rec.bytes_moved = ms.bytes_moved;
      rec.cross_node_bytes = ms.cross_node_bytes;
      res->migration_s += rec.migration_s;
      res->moves += ms.moves;
      res->bytes_moved += ms.bytes_moved;
      res->cross_node_bytes += ms.cross_node_bytes;
      res->rebalances++;
    }
  }
  if (rc == MOEPLACE_OK) {
    mp_decision_record *log = realloc(res->log, (size_t)(res->decisions + 1) * sizeof *log);
    if (!log) rc = mp_fail(MOEPLACE_ERR_NOMEM, "replay: out of memory");
    else {
      res->log = log;
      log[res->decisions++] = rec;
    }
  }
  if (rc) {
    moeplace_placement_destroy(next);
    return rc;
  }
  moeplace_placement_destroy(cur);
  st->in_force[policy] = next;
  return MOEPLACE_OK;
}

/* Nodes EPLB may use for its hierarchical policy: the topology's when its
 * nodes are equal blocks of consecutive ranks (as EPLB assumes), else 1. */
static int eplb_nodes(const moeplace_topology *topo) {
  const int R = moeplace_topology_ranks(topo), N = moeplace_topology_nodes(topo);
  if (N < 1 || R % N) return 1;
  for (int r = 0; r < R; r++)
    if (moeplace_topology_rank_node(topo, r) != r / (R / N)) return 1;
  return N;
}

/* EPLB's placement of the previous interval's loads, equal shares. */
static int eplb_decide(replay_state *st, moeplace_placement **out) {
  int rc = moeplace_placement_create(out, st->L, st->E, st->R, st->S);
  const int nodes = eplb_nodes(st->topo);
  for (int l = 0; l < st->L && rc == MOEPLACE_OK; l++)
    rc = mp_eplb_layer(st->prev_loads + (size_t)l * st->E, st->E, st->R, st->S, nodes,
                       st->cfg->groups, moeplace_placement_phy2log(*out, l));
  if (rc == MOEPLACE_OK) rc = moeplace_placement_equal_shares(*out);
  if (rc) {
    moeplace_placement_destroy(*out);
    *out = NULL;
  }
  return rc;
}

/* A policy's decision at the start of a block. `first` is the first block,
 * before any load was seen. */
static int decide(replay_state *st, int policy, int first, int64_t step, mp_policy_result *res) {
  const mp_replay_config *cfg = st->cfg;
  moeplace_place_options opt;
  moeplace_place_options_init(&opt);
  opt.expert_bytes = cfg->expert_bytes;
  opt.groups = cfg->groups; // every policy places the groups alike (node-limited)
  opt.shares = cfg->shares;
  opt.spread = cfg->spread;
  const double *loads = NULL;
  const moeplace_placement *current = NULL;
  moeplace_placement *next = NULL; // made by EPLB's balancer, else by moeplace_place below
  double t0 = mp_now_s();
  switch (policy) {
  case MP_POLICY_STATIC: return MOEPLACE_OK;
  case MP_POLICY_MOVING_AVERAGE:
    if (first) return MOEPLACE_OK;
    loads = st->prev_loads;
    break;
  case MP_POLICY_ORACLE: loads = st->block_loads; break;
  case MP_POLICY_EPLB: {
    if (first) return MOEPLACE_OK;
    int rc = eplb_decide(st, &next);
    if (rc) return rc;
    break;
  }
  case MP_POLICY_MOEPLACE: {
    if (first) return MOEPLACE_OK;
    int rc = moeplace_forecaster_forecast(st->forecaster, st->forecast);
    if (rc) return rc;
    /* Proportions -> tokens at the last interval's volume, the unit the
     * migration weight is expressed in. */
    for (int l = 0; l < st->L; l++) {
      double volume = 0;
      for (int e = 0; e < st->E; e++) volume += st->prev_loads[(size_t)l * st->E + e];
      for (int e = 0; e < st->E; e++) st->forecast[(size_t)l * st->E + e] *= volume;
    }
    loads = st->forecast;
    current = st->in_force[policy];
    opt.migration_weight = cfg->migration_weight;
    opt.byte_budget = cfg->byte_budget;
    opt.min_gain = cfg->min_gain;
    opt.step_time_s = cfg->step_time_s;
    opt.horizon_steps = st->horizon;
    opt.time_budget_s = cfg->time_budget_s;
    if ((rc = mp_window_ring_samples(&st->recent, st->recent.n, loads, st->samples))) return rc;
    opt.n_samples = st->recent.n;
    opt.samples = st->samples;
    break;
  }
  default: return mp_fail(MOEPLACE_ERR_ARG, "unknown policy %d", policy);
  }
  if (!next) {
    int rc = moeplace_place(st->topo, st->L, st->E, st->S, loads, current, &opt, &next, NULL);
    if (rc) return rc;
  }
  double elapsed = mp_now_s() - t0;
  st->decision_s[policy] += elapsed;
  return adopt(st, policy, next, elapsed, step, res);
}

/* metrics.md's imbalance of one step under one placement (common/metrics.h). */
static int step_imbalance(replay_state *st, const moeplace_placement *p, const uint64_t *counts,
                          double *imbalance) {
  mp_imbalance_sums sums = {0, 0};
  for (int l = 0; l < st->L; l++) {
    const uint64_t *c = counts + (size_t)l * st->E;
    double total = 0;
    for (int e = 0; e < st->E; e++) total += st->step_loads[e] = (double)c[e];
    int rc = moeplace_placement_rank_loads(p, l, st->step_loads, st->rank_load);
    if (rc) return rc;
    mp_imbalance_add_layer(&sums, st->rank_load, st->R, total);
  }
  *imbalance = mp_imbalance_ratio(sums.max_sum, sums.mean_sum);
  return MOEPLACE_OK;
}

static int check_config(const moeplace_trace *trace, const moeplace_topology *topo,
                        const mp_replay_config *cfg) {
  if (!trace || !topo || !cfg) return mp_fail(MOEPLACE_ERR_ARG, "replay: NULL argument");
  const int E = moeplace_trace_experts(trace), R = moeplace_topology_ranks(topo);
  if (cfg->window <= 0) return mp_fail(MOEPLACE_ERR_ARG, "replay: window must be > 0, got %d", cfg->window);
  if (cfg->interval <= 0 || cfg->interval % cfg->window)
    return mp_fail(MOEPLACE_ERR_ARG, "replay: interval (%d) must be a positive multiple of the window (%d)",
                   cfg->interval, cfg->window);
  int horizon = cfg->horizon ? cfg->horizon : cfg->interval;
  if (horizon <= 0 || horizon % cfg->window)
    return mp_fail(MOEPLACE_ERR_ARG, "replay: horizon (%d) must be a positive multiple of the window (%d)",
                   horizon, cfg->window);
  if (cfg->slots <= 0) return mp_fail(MOEPLACE_ERR_ARG, "replay: slots must be > 0, got %d", cfg->slots);
  if (cfg->warmup != MP_REPLAY_WARMUP_AUTO &&
      (cfg->warmup < 0 || cfg->warmup >= cfg->interval || cfg->warmup % cfg->window))
    return mp_fail(MOEPLACE_ERR_ARG, "replay: warmup (%d) must be 0, auto or a multiple of the "
                   "window (%d) below the interval (%d)", cfg->warmup, cfg->window, cfg->interval);
  if (cfg->samples < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "replay: samples must be >= 0, got %d", cfg->samples);
  if ((long)R * cfg->slots < E)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "%d ranks x %d slots = %ld slots cannot hold the trace's %d experts", R,
                   cfg->slots, (long)R * cfg->slots, E);
  if (!(cfg->expert_bytes >= 0) || !isfinite(cfg->expert_bytes))
    return mp_fail(MOEPLACE_ERR_ARG, "replay: expert_bytes must be a finite number >= 0, got %g", cfg->expert_bytes);
  if (cfg->groups < 0 || (cfg->groups > 1 && E % cfg->groups))
    return mp_fail(MOEPLACE_ERR_ARG, "replay: groups (%d) must divide the experts (%d)",
                   cfg->groups, E);
  if (!(cfg->step_time_s >= 0) || !isfinite(cfg->step_time_s))
    return mp_fail(MOEPLACE_ERR_ARG, "replay: step_time_s must be a finite number >= 0, got %g",
                   cfg->step_time_s);
  return MOEPLACE_OK;
}

static void free_state(replay_state *st) {
  for (int p = 0; p < MP_POLICY_COUNT; p++) moeplace_placement_destroy(st->in_force[p]);
  moeplace_forecaster_destroy(st->forecaster);
  free(st->block);
  free(st->block_step);
  free(st->block_lines);
  free(st->block_loads);
  free(st->prev_loads);
  free(st->forecast);
  free(st->step_loads);
  free(st->rank_load);
  free(st->window_sum);
  mp_window_ring_free(&st->recent);
  free(st->samples);
}

/* Steps the block buffers hold at first: a block grows from there, doubling,
 * up to the interval, as its steps are read (read_block). */
#define BLOCK_START 1024

/* Makes the block buffers hold `cap` steps (cap <= the interval), keeping
 * the steps they hold. On failure the buffers are left as they were (still
 * freed by free_state). */
static int grow_block(replay_state *st, int cap) {
  const size_t LE = (size_t)st->L * st->E;
  if ((size_t)cap > SIZE_MAX / sizeof *st->block / (LE ? LE : 1))
    return mp_fail(MOEPLACE_ERR_NOMEM, "replay: %d layers x %d experts x %d steps overflow the "
                   "address space", st->L, st->E, cap);
  uint64_t *block = realloc(st->block, (size_t)cap * LE * sizeof *block);
  if (block) st->block = block;
  int64_t *step = realloc(st->block_step, (size_t)cap * sizeof *step);
  if (step) st->block_step = step;
  long *lines = realloc(st->block_lines, (size_t)cap * st->L * sizeof *lines);
  if (lines) st->block_lines = lines;
  if (!block || !step || !lines)
    return mp_fail(MOEPLACE_ERR_NOMEM, "replay: out of memory for %d layers x %d experts x %d "
                   "steps of an interval of %d", st->L, st->E, cap, st->cfg->interval);
  st->block_cap = cap;
  return MOEPLACE_OK;
}

static int init_state(replay_state *st, moeplace_trace *trace, const moeplace_topology *topo,
                      const mp_replay_config *cfg) {
  memset(st, 0, sizeof *st);
  st->topo = topo;
  st->cfg = cfg;
  st->L = moeplace_trace_layers(trace);
  st->E = moeplace_trace_experts(trace);
  st->R = moeplace_topology_ranks(topo);
  st->S = cfg->slots;
  st->horizon = cfg->interval;
  const size_t LE = (size_t)st->L * st->E;
  st->trace_name = moeplace_trace_name(trace);
  st->block_loads = malloc(LE * sizeof *st->block_loads);
  st->prev_loads = calloc(LE, sizeof *st->prev_loads);
  st->forecast = malloc(LE * sizeof *st->forecast);
  st->step_loads = malloc((size_t)st->E * sizeof *st->step_loads);
  st->rank_load = malloc((size_t)st->R * sizeof *st->rank_load);
  st->window_sum = calloc(LE, sizeof *st->window_sum);
  if (!st->block_loads || !st->prev_loads || !st->forecast || !st->step_loads || !st->rank_load ||
      !st->window_sum)
    return mp_fail(MOEPLACE_ERR_NOMEM, "replay: out of memory for %d layers x %d experts", st->L,
                   st->E);
  int rc = grow_block(st, cfg->interval < BLOCK_START ? cfg->interval : BLOCK_START);
  if (rc) return rc;
  if ((rc = mp_window_ring_init(&st->recent, cfg->samples, st->L, st->E))) return rc;
  if (cfg->samples > 0 && !(st->samples = malloc((size_t)cfg->samples * LE * sizeof *st->samples)))
    return mp_fail(MOEPLACE_ERR_NOMEM, "replay: out of memory for %d load samples", cfg->samples);

  moeplace_predict_config pc;
  moeplace_predict_config_init(&pc, st->L, st->E);
  pc.window = cfg->window;
  pc.horizon = cfg->horizon ? cfg->horizon : cfg->interval;
  pc.method = cfg->predictor;
  pc.seed = cfg->seed;
  rc = moeplace_forecaster_create(&st->forecaster, &pc);
  if (rc) return rc;

  /* Before any load is seen, every policy starts from the placement of
   * uniform loads. */
  double *uniform = st->forecast;
  for (size_t i = 0; i < LE; i++) uniform[i] = 1.0;
  moeplace_placement *initial;
  moeplace_place_options opt;
  moeplace_place_options_init(&opt);
  opt.groups = cfg->groups;
  opt.shares = cfg->shares;
  opt.spread = cfg->spread; // > 0: every slot holds a replica from the start
  rc = moeplace_place(topo, st->L, st->E, st->S, uniform, NULL, &opt, &initial, NULL);
  if (rc) return rc;
  for (int p = 0; p < MP_POLICY_COUNT && rc == MOEPLACE_OK; p++)
    rc = moeplace_placement_clone(&st->in_force[p], initial);
  moeplace_placement_destroy(initial);
  return rc;
}

/* Reads up to `interval` steps into st->block; *n gets the count. */
static int read_block(replay_state *st, moeplace_trace *trace, int *n) {
  const size_t LE = (size_t)st->L * st->E;
  memset(st->block_loads, 0, LE * sizeof *st->block_loads);
  *n = 0;
  const int interval = st->cfg->interval;
  while (*n < interval) {
    if (*n == st->block_cap) { // double, up to the interval
      int rc = grow_block(st, st->block_cap > interval / 2 ? interval : 2 * st->block_cap);
      if (rc) return rc;
    }
    int64_t step;
    uint64_t *counts = st->block + (size_t)*n * LE;
    int rc = moeplace_trace_read_step(trace, &step, counts);
    if (rc < 0) return rc;
    if (rc == 0) break;
    st->block_step[*n] = step;
    memcpy(st->block_lines + (size_t)*n * st->L, mp_trace_step_lines(trace),
           (size_t)st->L * sizeof *st->block_lines);
    for (size_t i = 0; i < LE; i++) st->block_loads[i] += (double)counts[i];
    (*n)++;
  }
  return MOEPLACE_OK;
}

/* Feeds the complete windows of the block's steps [from, n) to the
 * forecaster. Steps of a window that straddles blocks carry over in
 * window_sum. */
static int feed_windows(replay_state *st, int from, int n, int64_t *steps_in_window) {
  const size_t LE = (size_t)st->L * st->E;
  for (int s = from; s < n; s++) {
    const uint64_t *counts = st->block + (size_t)s * LE;
    int rc = mp_window_add(st->window_sum, counts, LE, st->E, st->trace_name, st->block_step[s],
                           st->block_lines + (size_t)s * st->L, "window");
    if (rc < 0) return rc;
    if (++*steps_in_window == st->cfg->window) {
      rc = moeplace_forecaster_observe_counts(st->forecaster, st->window_sum);
      mp_window_ring_push(&st->recent, st->window_sum);
      if (rc < 0) return rc;
      memset(st->window_sum, 0, LE * sizeof *st->window_sum);
      *steps_in_window = 0;
    }
  }
  return MOEPLACE_OK;
}

/* A warm-up decision of the moeplace policy at step k of the first block
 * (common/warmup.h: cfg->warmup, twice that, four times, ...): the initial
 * placement was made knowing no load, so once the first windows are seen it
 * decides as at an interval's start, from all the steps seen so far (the
 * ones from `from` on are fed to the forecaster now), for the rest of the
 * interval. */
static int warmup_decide(replay_state *st, int from, int k, int64_t step, int64_t *steps_in_window,
                         mp_policy_result *res) {
  const size_t LE = (size_t)st->L * st->E;
  int rc = feed_windows(st, from, k, steps_in_window);
  if (rc) return rc;
  memset(st->prev_loads, 0, LE * sizeof *st->prev_loads); // the volume seen so far
  for (int s = 0; s < k; s++)
    for (size_t i = 0; i < LE; i++) st->prev_loads[i] += (double)st->block[(size_t)s * LE + i];
  st->horizon = st->cfg->interval - k;
  rc = decide(st, MP_POLICY_MOEPLACE, 0, step, res);
  st->horizon = st->cfg->interval;
  return rc;
}

int mp_replay_run(moeplace_trace *trace, const moeplace_topology *topo,
                  const mp_replay_config *cfg, mp_replay_result *result) {
  if (!result) return mp_fail(MOEPLACE_ERR_ARG, "replay: NULL result");
  memset(result, 0, sizeof *result); // so that freeing it after a failure is safe
  int rc = check_config(trace, topo, cfg);
  if (rc) return rc;
  const int warmup = cfg->warmup == MP_REPLAY_WARMUP_AUTO
                         ? (int)mp_warmup_auto(cfg->interval, cfg->window, 0)
                         : cfg->warmup;
  replay_state st;
  rc = init_state(&st, trace, topo, cfg);
  double imbalance_sum[MP_POLICY_COUNT] = {0};
  int64_t steps = 0, steps_in_window = 0;
  for (int first = 1; rc == MOEPLACE_OK; first = 0) {
    int n;
    if ((rc = read_block(&st, trace, &n)) || n == 0) break;
    for (int p = 0; p < MP_POLICY_COUNT && rc == MOEPLACE_OK; p++)
      rc = decide(&st, p, first, steps, &result->policy[p]);
    int fed = 0; // steps of the block already fed to the forecaster
    for (int s = 0; s < n && rc == MOEPLACE_OK; s++) {
      if (first && mp_warmup_decides(s, warmup, cfg->interval)) {
        rc = warmup_decide(&st, fed, s, steps, &steps_in_window, &result->policy[MP_POLICY_MOEPLACE]);
        fed = s;
        if (rc) break;
      }
      double imb[MP_POLICY_COUNT];
      const uint64_t *counts = st.block + (size_t)s * st.L * st.E;
      for (int p = 0; p < MP_POLICY_COUNT && rc == MOEPLACE_OK; p++) {
        rc = step_imbalance(&st, st.in_force[p], counts, &imb[p]);
        imbalance_sum[p] += imb[p];
      }
      if (rc == MOEPLACE_OK && cfg->on_step) rc = cfg->on_step(cfg->ctx, steps, imb);
      steps++;
    }
    if (rc == MOEPLACE_OK) rc = feed_windows(&st, fed, n, &steps_in_window);
    memcpy(st.prev_loads, st.block_loads, (size_t)st.L * st.E * sizeof *st.prev_loads);
    if (cfg->on_progress) cfg->on_progress(cfg->ctx, steps);
  }
  if (rc == MOEPLACE_OK && steps == 0) rc = mp_fail(MOEPLACE_ERR_ARG, "replay: the trace has no steps left");
  if (rc == MOEPLACE_OK) {
    result->steps = steps;
    result->layers = st.L;
    result->experts = st.E;
    result->ranks = st.R;
    result->slots = st.S;
    for (int p = 0; p < MP_POLICY_COUNT; p++) {
      mp_policy_result *r = &result->policy[p];
      r->imbalance = imbalance_sum[p] / (double)steps;
      r->decision_ms = r->decisions ? 1e3 * st.decision_s[p] / (double)r->decisions : 0;
    }
    double stat = result->policy[MP_POLICY_STATIC].imbalance;
    double orac = result->policy[MP_POLICY_ORACLE].imbalance;
    for (int p = 0; p < MP_POLICY_COUNT; p++)
      result->policy[p].gap_to_oracle =
          stat - orac > 1e-12 ? (result->policy[p].imbalance - orac) / (stat - orac) : NAN;
  }
  free_state(&st);
  return rc;
}

void mp_replay_result_free(mp_replay_result *result) {
  if (!result) return;
  for (int p = 0; p < MP_POLICY_COUNT; p++) {
    free(result->policy[p].log);
    result->policy[p].log = NULL;
  }
}
