/* Runtime configuration: defaults, validation, and the check that every
 * rank passed the same configuration. */
#include "config.h"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "common/error.h"
#include "common/load_samples.h"
#include "runtime/internal.h"
#include "runtime/rt_config.h"

void moeplace_runtime_config_init(moeplace_runtime_config *cfg) {
  if (!cfg) return;
  memset(cfg, 0, sizeof *cfg);
  cfg->window = 10;
  cfg->horizon = 1000;
  cfg->rebalance_interval = 500;
  cfg->history_windows = 256;
  cfg->predictor = MOEPLACE_RUNTIME_PREDICTOR_DEFAULT; // auto or sw_avg (runtime.c)
  cfg->migration_tradeoff = 0.05;
  cfg->migration_budget_bytes = MOEPLACE_NO_LIMIT;
  cfg->min_gain = 0.02;
  cfg->shares = MOEPLACE_SHARES_WEIGHTED;
  cfg->step_time_s = MOEPLACE_NO_LIMIT; // off: decisions depend on the history only
  cfg->coordinator = 0;
  cfg->ranks_per_node = 0;
  cfg->hwloc_synthetic = NULL;
  cfg->cluster_file = NULL;
  cfg->chunk_bytes = (size_t)1 << 20;
  cfg->max_outstanding = 64;
  cfg->shm_transfers = 1;
  // No deadline by default: a rank legitimately late (a checkpoint written
  // by one rank between two steps, a slow decision) cannot be told from a
  // stopped one, and a spurious timeout ends the run. Waiting never spins.
  cfg->collective_timeout_s = MOEPLACE_NO_LIMIT;
  cfg->decision_lag_windows = 1;
  cfg->migration_layers_per_step = 0;
  cfg->warmup_steps = MOEPLACE_RUNTIME_WARMUP_AUTO; // resolved at create (common/warmup.h)
  cfg->load_samples = MP_LOAD_SAMPLES_DEFAULT;
}

int mp_rt_predictor_known(const char *name) {
  if (!name) return 0;
  if (strcmp(name, MOEPLACE_PREDICT_AUTO) == 0 || strcmp(name, MOEPLACE_RUNTIME_PREDICTOR_DEFAULT) == 0)
    return 1;
  for (int i = 0; i < moeplace_predict_method_count(); i++)
    if (strcmp(name, moeplace_predict_method_name(i)) == 0) return 1;
  return 0;
}

int mp_rt_config_validate(const moeplace_runtime_config *c, int ranks) {
  if (c->layers <= 0) return mp_fail(MOEPLACE_ERR_ARG, "config: layers must be > 0, got %d", c->layers);
  if (c->experts <= 0) return mp_fail(MOEPLACE_ERR_ARG, "config: experts must be > 0, got %d", c->experts);
  if (c->slots_per_rank <= 0 || c->slots_per_rank > c->experts)
    return mp_fail(MOEPLACE_ERR_ARG, "config: slots_per_rank must be in [1, experts=%d], got %d",
                   c->experts, c->slots_per_rank);
  if ((long long)c->slots_per_rank * ranks < c->experts)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "config: %d ranks x %d slots cannot hold %d experts", ranks,
                   c->slots_per_rank, c->experts);
  if ((long long)c->slots_per_rank * ranks > INT_MAX / 4 || (long long)c->layers * c->experts > INT_MAX / 4)
    return mp_fail(MOEPLACE_ERR_ARG, "config: layers x experts x slots too large");
  if (c->window <= 0) return mp_fail(MOEPLACE_ERR_ARG, "config: window must be > 0, got %d", c->window);
  if (c->horizon <= 0) return mp_fail(MOEPLACE_ERR_ARG, "config: horizon must be > 0, got %d", c->horizon);
  if (c->rebalance_interval < 0 || c->rebalance_interval % c->window != 0)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "config: rebalance_interval must be >= 0 and a multiple of window=%d, got %d",
                   c->window, c->rebalance_interval);
  if (c->history_windows <= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "config: history_windows must be > 0, got %d", c->history_windows);
  if (!mp_rt_predictor_known(c->predictor))
    return mp_fail(MOEPLACE_ERR_ARG, "config: unknown predictor \"%s\" (see moeplace_predict_method_name)",
                   c->predictor ? c->predictor : "(null)");
  // an infinite price or gain would pass here and make every decision fail
  // in moeplace_place (its options are finite)
  if (!(c->migration_tradeoff >= 0.0) || isinf(c->migration_tradeoff))
    return mp_fail(MOEPLACE_ERR_ARG, "config: migration_tradeoff must be finite and >= 0, got %g",
                   c->migration_tradeoff);
  if (!moeplace_share_policy_name(c->shares))
    return mp_fail(MOEPLACE_ERR_ARG, "config: shares must be MOEPLACE_SHARES_WEIGHTED or "
                   "MOEPLACE_SHARES_EVEN, got %d", (int)c->shares);
  if (isnan(c->step_time_s) || isinf(c->step_time_s))
    return mp_fail(MOEPLACE_ERR_ARG, "config: step_time_s must be finite, got %g", c->step_time_s);
  if (!(c->min_gain >= 0.0) || isinf(c->min_gain))
    return mp_fail(MOEPLACE_ERR_ARG, "config: min_gain must be finite and >= 0, got %g", c->min_gain);
  if (c->groups < 0 || (c->groups > 1 && c->experts % c->groups))
    return mp_fail(MOEPLACE_ERR_ARG, "config: groups must be 0, 1 or divide experts=%d, got %d",
                   c->experts, c->groups);
  if (c->coordinator < 0 || c->coordinator >= ranks)
    return mp_fail(MOEPLACE_ERR_ARG, "config: coordinator %d is not a rank of a %d-rank communicator",
                   c->coordinator, ranks);
  if (c->ranks_per_node < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "config: ranks_per_node must be >= 0, got %d", c->ranks_per_node);
  if (c->chunk_bytes < 64 || c->chunk_bytes > (size_t)INT_MAX)
    return mp_fail(MOEPLACE_ERR_ARG, "config: chunk_bytes must be in [64, %d], got %zu", INT_MAX,
                   c->chunk_bytes);
  if (c->max_outstanding < 2 || c->max_outstanding > 65536)
    return mp_fail(MOEPLACE_ERR_ARG, "config: max_outstanding must be in [2, 65536], got %d",
                   c->max_outstanding);
  if (c->shm_transfers != 0 && c->shm_transfers != 1)
    return mp_fail(MOEPLACE_ERR_ARG, "config: shm_transfers must be 0 or 1, got %d", c->shm_transfers);
  if (!(c->spread >= 0) || c->spread > 1e300)
    return mp_fail(MOEPLACE_ERR_ARG, "config: spread must be finite and >= 0, got %g", c->spread);
  if (c->decision_wait != 0 && c->decision_wait != 1)
    return mp_fail(MOEPLACE_ERR_ARG, "config: decision_wait must be 0 or 1, got %d", c->decision_wait);
  if (c->warmup_steps != MOEPLACE_RUNTIME_WARMUP_AUTO &&
      (c->warmup_steps < 0 || c->warmup_steps % c->window != 0 ||
       (c->warmup_steps > 0 && c->warmup_steps >= c->rebalance_interval)))
    return mp_fail(MOEPLACE_ERR_ARG, "config: warmup_steps must be 0, MOEPLACE_RUNTIME_WARMUP_AUTO "
                   "or a multiple of window=%d below rebalance_interval=%d, got %lld", c->window,
                   c->rebalance_interval,
                   (long long)c->warmup_steps);
  if (c->load_samples < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "config: load_samples must be >= 0, got %d", c->load_samples);
  if (c->plan_only != 0 && c->plan_only != 1)
    return mp_fail(MOEPLACE_ERR_ARG, "config: plan_only must be 0 or 1, got %d", c->plan_only);
  if (c->collective_timeout_s != c->collective_timeout_s || c->collective_timeout_s == 0.0)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "config: collective_timeout_s must be > 0 seconds or negative (no limit), got %g",
                   c->collective_timeout_s);
  if (c->decision_lag_windows < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "config: decision_lag_windows must be >= 0, got %d",
                   c->decision_lag_windows);
  if (c->rebalance_interval > 0 && (long long)c->decision_lag_windows * c->window > c->rebalance_interval)
    return mp_fail(MOEPLACE_ERR_ARG,
                   "config: decision_lag_windows %d x window %d exceeds rebalance_interval %d "
                   "(a decision must be applied before the next one is requested)",
                   c->decision_lag_windows, c->window, c->rebalance_interval);
  if (c->migration_layers_per_step < 0)
    return mp_fail(MOEPLACE_ERR_ARG, "config: migration_layers_per_step must be >= 0, got %d",
                   c->migration_layers_per_step);
  return MOEPLACE_OK;
}

/* Field names, in the order of the agreed vector below. */
static const char *const field_names[] = {
    "(validity)", "layers", "experts", "slots_per_rank", "window", "horizon",
    "rebalance_interval", "history_windows", "predictor", "migration_tradeoff",
    "migration_budget_bytes", "min_gain", "coordinator", "ranks_per_node",
    "hwloc_synthetic", "chunk_bytes", "max_outstanding", "cluster_file", "shm_transfers",
    "collective_timeout_s", "groups", "shares", "decision_lag_windows",
    "migration_layers_per_step", "step_time_s", "plan_only", "decision_wait", "spread",
    "warmup_steps", "load_samples"};
enum { NFIELDS = sizeof field_names / sizeof *field_names };

/* The agreement takes values in (INT64_MIN, INT64_MAX]: 64-bit fields are
 * compared through a 62-bit hash of all their bits (a shift would hide a
 * difference in the lowest bit). */
static int64_t hash_bytes(const void *p, size_t n) { return mp_rt_hash62(p, n, 5); }
static int64_t hash_double(double d) { return mp_rt_hash62(&d, sizeof d, 7); }
static int64_t hash_str(const char *s) { return s ? mp_rt_hash62(s, strlen(s), 11) : -1; }

int mp_rt_config_agree(MPI_Comm comm, const moeplace_runtime_config *c, int local_status) {
  int64_t v[NFIELDS] = {0};
  v[0] = local_status == MOEPLACE_OK;
  if (c) {
    v[1] = c->layers;
    v[2] = c->experts;
    v[3] = c->slots_per_rank;
    v[4] = c->window;
    v[5] = c->horizon;
    v[6] = c->rebalance_interval;
    v[7] = c->history_windows;
    v[8] = hash_str(c->predictor);
    v[9] = hash_double(c->migration_tradeoff);
    v[10] = hash_bytes(&c->migration_budget_bytes, sizeof c->migration_budget_bytes);
    v[11] = hash_double(c->min_gain);
    v[12] = c->coordinator;
    v[13] = c->ranks_per_node;
    v[14] = hash_str(c->hwloc_synthetic);
    v[15] = hash_bytes(&c->chunk_bytes, sizeof c->chunk_bytes);
    v[16] = c->max_outstanding;
    v[17] = hash_str(c->cluster_file);
    v[18] = c->shm_transfers;
    v[19] = hash_double(c->collective_timeout_s);
    v[20] = c->groups;
    v[21] = c->shares;
    v[22] = c->decision_lag_windows;
    v[23] = c->migration_layers_per_step;
    v[24] = hash_double(c->step_time_s);
    v[25] = c->plan_only;
    v[26] = c->decision_wait;
    v[27] = hash_double(c->spread);
    v[28] = c->warmup_steps;
    v[29] = c->load_samples;
  }
  int same;
  int64_t mn[NFIELDS], mx[NFIELDS];
  int status = mp_rt_agree_i64(comm, v, NFIELDS, &same, mn, mx);
  if (status != MOEPLACE_OK) return status;
  if (mn[0] == 0) {
    if (local_status != MOEPLACE_OK) return local_status; // keep this rank's own reason
    return mp_fail(MOEPLACE_ERR_ARG, "config: invalid arguments on another rank");
  }
  if (same) return MOEPLACE_OK;
  for (int i = 1; i < NFIELDS; i++) {
    if (mn[i] == mx[i]) continue;
    if (i <= 7 || i == 12 || i == 13 || i == 16 || i == 18 || (i >= 20 && i != 24 && i != 27))
      return mp_fail(MOEPLACE_ERR_MISMATCH,
                     "config differs across ranks: %s ranges from %lld to %lld", field_names[i],
                     (long long)mn[i], (long long)mx[i]);
    return mp_fail(MOEPLACE_ERR_MISMATCH, "config differs across ranks: %s", field_names[i]);
  }
  return mp_fail(MOEPLACE_ERR_MISMATCH, "config differs across ranks");
}
