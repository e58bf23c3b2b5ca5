/* Closed-loop replay of a load trace: moeplace's whole decision loop
 * (windows, state detection, forecast, placement, migration plan) run
 * against a recorded trace as if the job ran on a cluster of a given shape,
 * next to the policies users would otherwise choose. Pure C, no MPI.
 *
 * Policies, all starting from the same initial placement (the placement of
 * uniform loads) and rebalancing every `interval` steps:
 *   static          the initial placement for ever;
 *   moving_average  from scratch on the loads of the previous interval
 *                   (what users of EPLB do today; with even shares, EPLB's
 *                   decision made by moeplace's even solver);
 *   moeplace        forecast of the next horizon + migration-aware placement
 *                   that starts from the placement in force;
 *   oracle          from scratch on the actual loads of the coming interval
 *                   (the limit; it also places the first interval);
 *   eplb            DeepSeek EPLB's balancer (replay/eplb.h) from scratch on
 *                   the loads of the previous interval, equal shares: what
 *                   users of EPLB-style rebalancing (vLLM, SGLang) get.
 * Figures follow metrics.md; the migration time model is in
 * docs/REPLAY.md. */
#ifndef MOEPLACE_REPLAY_REPLAY_H
#define MOEPLACE_REPLAY_REPLAY_H

#include <stdint.h>

#include <moeplace.h>

typedef enum mp_policy {
  MP_POLICY_STATIC = 0,
  MP_POLICY_MOVING_AVERAGE,
  MP_POLICY_MOEPLACE,
  MP_POLICY_ORACLE,
  MP_POLICY_EPLB,
  MP_POLICY_COUNT
} mp_policy;

const char *mp_policy_name(int policy);
/* The policy called `name`, or -1. */
int mp_policy_from_name(const char *name);

/* The replay's default spread (docs/REPLAY.md: chosen from the closed-loop
 * figures of docs/RESULTS.md). */
#define MP_REPLAY_SPREAD 1.0
/* The replay's default expert time of a step at perfect balance, seconds:
 * the seconds-priced keep-or-move rule is on by default (docs/REPLAY.md
 * derives 1 ms from the default 64 MiB experts and the traces' tokens). */
#define MP_REPLAY_STEP_TIME_S 1e-3

/* mp_replay_config.warmup: chosen from the interval and the window. */
#define MP_REPLAY_WARMUP_AUTO (-1)

typedef struct mp_replay_config {
  int slots;              /* S: slots per rank and layer */
  int interval;           /* steps between rebalances (a multiple of window) */
  int window;             /* steps per window fed to the forecaster */
  int horizon;            /* steps the forecast covers (a multiple of window) */
  const char *predictor;  /* forecasting method of the moeplace policy */
  double expert_bytes;    /* bytes of one expert replica's state */
  double migration_weight; /* see moeplace_place_options */
  double byte_budget;      /* bytes per rebalance for moeplace; < 0: none */
  double min_gain;         /* moeplace: see moeplace_place_options (default: the solver's) */
  double step_time_s;      /* moeplace: the seconds model of moeplace_place_options, with
                              horizon_steps = interval; 0: off (default
                              MP_REPLAY_STEP_TIME_S) */
  double time_budget_s;    /* moeplace: modelled migration seconds per rebalance; < 0: none */
  int groups;              /* expert groups of every policy's placements (the initial one
                              included): moeplace_place_options.groups, and EPLB's
                              num_groups for the eplb policy (default 1) */
  moeplace_share_policy shares; /* every policy's placements (the initial one,
                                   moving_average, moeplace, oracle) are made
                                   and scored with it (default weighted) */
  double spread;           /* moeplace_place_options.spread of every moeplace-made
                              placement (the initial one, moving_average, moeplace,
                              oracle); default MP_REPLAY_SPREAD */
  int warmup;              /* > 0: the moeplace policy also decides at this step of
                              the first interval and each time the steps seen
                              double (mp_warmup_decides), from the windows seen so
                              far (a multiple of window, < interval); 0: off;
                              MP_REPLAY_WARMUP_AUTO (default): mp_warmup_auto()
                              (common/warmup.h), as the runtime's default */
  int samples;             /* the moeplace policy's placements see the last `samples`
                              windows as load samples (common/load_samples.h,
                              moeplace_place_options.samples; at least 2 to count);
                              0: none (default MP_LOAD_SAMPLES_DEFAULT,
                              common/load_samples.h) */
  uint64_t seed;
  /* Optional: called after every step with the imbalance of each policy
   * that step ([MP_POLICY_COUNT]); a non-zero return stops the replay with
   * that status. */
  int (*on_step)(void *ctx, int64_t step, const double *imbalance);
  /* Optional: called now and then with the steps replayed so far. */
  void (*on_progress)(void *ctx, int64_t steps_done);
  void *ctx;
} mp_replay_config;

/* Defaults: interval 500, window 10, horizon = interval, predictor "auto",
 * 64 MiB experts, migration weight 0, no budget. slots must still be set.
 * Migration times use the topology's bandwidths (moeplace_migration_seconds). */
void mp_replay_config_init(mp_replay_config *cfg);

/* One decision of a policy, for plots of migration per rebalance. */
typedef struct mp_decision_record {
  int64_t step; /* first step the new placement is in force */
  int64_t moves;
  double bytes_moved, cross_node_bytes, migration_s, decision_ms;
} mp_decision_record;

typedef struct mp_policy_result {
  double imbalance;        /* mean over steps of the per-step imbalance */
  int64_t rebalances;      /* decisions that changed at least one replica */
  int64_t decisions;
  int64_t moves;
  double bytes_moved;
  double cross_node_bytes;
  double migration_s;      /* modelled, summed over rebalances */
  double decision_ms;      /* mean wall time of one decision (forecast + place) */
  double gap_to_oracle;    /* (imbalance - oracle) / (static - oracle); NAN if undefined */
  mp_decision_record *log; /* [decisions] */
} mp_policy_result;

typedef struct mp_replay_result {
  int64_t steps;
  int layers, experts, ranks, slots;
  mp_policy_result policy[MP_POLICY_COUNT];
} mp_replay_result;

/* Replays the rest of `trace` (normally all of it) on the cluster `topo`.
 * Free the result with mp_replay_result_free (also after a failure). */
int mp_replay_run(moeplace_trace *trace, const moeplace_topology *topo,
                  const mp_replay_config *cfg, mp_replay_result *result);
void mp_replay_result_free(mp_replay_result *result);


#endif
