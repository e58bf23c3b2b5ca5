/* Prints, as JSON, sizeof and the offset and size of every field of the
 * public structs the Python binding mirrors (python/moeplace/_lib.py), as
 * this C compiler lays them out. python/tests/test_abi.py compares them with
 * ctypes' layout and with the field lists it parses from the headers, so a
 * field added, removed, renamed or retyped on either side fails the test.
 * Built by make check; with MPI it also covers <moeplace/runtime.h>. */
#ifdef MOEPLACE_ABI_RUNTIME
#include <moeplace/runtime.h>
#else
#include <moeplace.h>
#endif

#include <stddef.h>
#include <stdio.h>

static int first_struct = 1, first_field;

static void begin(const char *name, size_t size) {
  printf("%s\n  \"%s\": {\"size\": %zu, \"fields\": {", first_struct ? "" : ",", name, size);
  first_struct = 0;
  first_field = 1;
}

static void field(const char *name, size_t offset, size_t size) {
  printf("%s\"%s\": [%zu, %zu]", first_field ? "" : ", ", name, offset, size);
  first_field = 0;
}

static void end(void) { printf("}}"); }

#define S(T) begin(#T, sizeof(T))
#define F(T, f) field(#f, offsetof(T, f), sizeof(((T *)0)->f))

int main(void) {
  printf("{\"runtime\": %s, \"structs\": {",
#ifdef MOEPLACE_ABI_RUNTIME
         "true"
#else
         "false"
#endif
  );
  S(moeplace_trace_meta); F(moeplace_trace_meta, key); F(moeplace_trace_meta, value); end();

  S(moeplace_trace_progress);
  F(moeplace_trace_progress, steps_read); F(moeplace_trace_progress, first_step);
  F(moeplace_trace_progress, last_step); F(moeplace_trace_progress, stride);
  F(moeplace_trace_progress, irregular); F(moeplace_trace_progress, first_irregular_line);
  F(moeplace_trace_progress, irregular_from); F(moeplace_trace_progress, irregular_to);
  F(moeplace_trace_progress, reserved);
  end();

  S(moeplace_detector_config);
  F(moeplace_detector_config, k); F(moeplace_detector_config, var_threshold);
  F(moeplace_detector_config, range_threshold); F(moeplace_detector_config, hysteresis);
  F(moeplace_detector_config, reserved);
  end();

  S(moeplace_predict_config);
  F(moeplace_predict_config, layers); F(moeplace_predict_config, experts);
  F(moeplace_predict_config, window); F(moeplace_predict_config, horizon);
  F(moeplace_predict_config, method); F(moeplace_predict_config, sw_avg_k);
  F(moeplace_predict_config, arima_history); F(moeplace_predict_config, arima_refit);
  F(moeplace_predict_config, auto_power); F(moeplace_predict_config, detector);
  F(moeplace_predict_config, seed);
  F(moeplace_predict_config, reserved);
  end();

  S(moeplace_move_stats);
  F(moeplace_move_stats, moves); F(moeplace_move_stats, bytes_moved);
  F(moeplace_move_stats, cross_node_bytes); F(moeplace_move_stats, cost);
  F(moeplace_move_stats, reserved);
  end();

  S(moeplace_place_options);
  F(moeplace_place_options, migration_weight); F(moeplace_place_options, byte_budget);
  F(moeplace_place_options, expert_bytes); F(moeplace_place_options, min_gain);
  F(moeplace_place_options, max_iterations); F(moeplace_place_options, time_limit_ms);
  F(moeplace_place_options, step_time_s); F(moeplace_place_options, horizon_steps);
  F(moeplace_place_options, time_budget_s); F(moeplace_place_options, groups);
  F(moeplace_place_options, shares);
  F(moeplace_place_options, spread); F(moeplace_place_options, fill_slots);
  F(moeplace_place_options, n_samples); F(moeplace_place_options, samples);
  F(moeplace_place_options, reserved);
  end();

  S(moeplace_place_stats);
  F(moeplace_place_stats, layers); F(moeplace_place_stats, experts);
  F(moeplace_place_stats, ranks); F(moeplace_place_stats, slots);
  F(moeplace_place_stats, imbalance); F(moeplace_place_stats, lower_bound);
  F(moeplace_place_stats, gap); F(moeplace_place_stats, current_imbalance);
  F(moeplace_place_stats, kept_current); F(moeplace_place_stats, moves);
  F(moeplace_place_stats, bytes_moved); F(moeplace_place_stats, cross_node_bytes);
  F(moeplace_place_stats, migration_cost); F(moeplace_place_stats, solve_ms);
  F(moeplace_place_stats, migration_s); F(moeplace_place_stats, saving_s);
  F(moeplace_place_stats, groups); F(moeplace_place_stats, split_groups);
  F(moeplace_place_stats, shares);
  F(moeplace_place_stats, reserved);
  end();

  S(moeplace_transfer);
  F(moeplace_transfer, layer); F(moeplace_transfer, expert);
  F(moeplace_transfer, src_rank); F(moeplace_transfer, src_slot);
  F(moeplace_transfer, dst_rank); F(moeplace_transfer, dst_slot);
  F(moeplace_transfer, link); F(moeplace_transfer, bytes);
  end();

#ifdef MOEPLACE_ABI_RUNTIME
  S(moeplace_runtime_config);
  F(moeplace_runtime_config, layers); F(moeplace_runtime_config, experts);
  F(moeplace_runtime_config, slots_per_rank); F(moeplace_runtime_config, window);
  F(moeplace_runtime_config, horizon); F(moeplace_runtime_config, rebalance_interval);
  F(moeplace_runtime_config, history_windows); F(moeplace_runtime_config, predictor);
  F(moeplace_runtime_config, migration_tradeoff);
  F(moeplace_runtime_config, migration_budget_bytes); F(moeplace_runtime_config, min_gain);
  F(moeplace_runtime_config, coordinator); F(moeplace_runtime_config, ranks_per_node);
  F(moeplace_runtime_config, cluster_file); F(moeplace_runtime_config, hwloc_synthetic);
  F(moeplace_runtime_config, chunk_bytes); F(moeplace_runtime_config, max_outstanding);
  F(moeplace_runtime_config, shm_transfers);
  F(moeplace_runtime_config, collective_timeout_s);
  F(moeplace_runtime_config, groups); F(moeplace_runtime_config, shares);
  F(moeplace_runtime_config, decision_lag_windows);
  F(moeplace_runtime_config, migration_layers_per_step);
  F(moeplace_runtime_config, step_time_s); F(moeplace_runtime_config, plan_only);
  F(moeplace_runtime_config, decision_wait); F(moeplace_runtime_config, spread);
  F(moeplace_runtime_config, warmup_steps);
  F(moeplace_runtime_config, load_samples); F(moeplace_runtime_config, reserved32);
  end();

  S(moeplace_step_info);
  F(moeplace_step_info, step); F(moeplace_step_info, window_closed);
  F(moeplace_step_info, rebalance_checked); F(moeplace_step_info, rebalanced);
  F(moeplace_step_info, moves); F(moeplace_step_info, bytes_moved);
  F(moeplace_step_info, migration_s); F(moeplace_step_info, decision_s);
  F(moeplace_step_info, predicted_imbalance_old); F(moeplace_step_info, predicted_imbalance_new);
  F(moeplace_step_info, decision_wait_s);
  F(moeplace_step_info, plan_pending);
  F(moeplace_step_info, reserved);
  end();

  S(moeplace_replica);
  F(moeplace_replica, rank); F(moeplace_replica, slot); F(moeplace_replica, share);
  end();

  S(moeplace_runtime_stats);
  F(moeplace_runtime_stats, steps); F(moeplace_runtime_stats, windows);
  F(moeplace_runtime_stats, rebalances); F(moeplace_runtime_stats, rebalances_skipped);
  F(moeplace_runtime_stats, migrations_failed); F(moeplace_runtime_stats, moves);
  F(moeplace_runtime_stats, bytes_moved); F(moeplace_runtime_stats, migration_s);
  F(moeplace_runtime_stats, decision_s); F(moeplace_runtime_stats, aggregate_s);
  F(moeplace_runtime_stats, shm_bytes_received);
  F(moeplace_runtime_stats, decisions_deferred);
  F(moeplace_runtime_stats, decider_cpu_s);
  F(moeplace_runtime_stats, reserved);
  end();
#endif
  printf("\n}}\n");
  return 0;
}
