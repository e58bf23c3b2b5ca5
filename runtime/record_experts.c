/* Records per logical expert (moeplace_runtime_record_experts): the tokens
 * this rank's router sent to each expert, as vLLM's and Megatron's
 * [layers][experts] counts, beside the per-slot record. At every window the
 * ranks' counts are summed onto the coordinator (one bounded MPI_Ireduce,
 * only in windows where some rank recorded per expert: the step agreement
 * of the window carries that bit) and added to the per-expert totals the slot records make there, so the
 * two kinds of record can be mixed (each token counted by one of them). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "common/trace_window.h"
#include "runtime/internal.h"

int mp_rt_experts_alloc(moeplace_runtime *rt) {
  size_t LE = (size_t)rt->L * rt->E;
  rt->expert_window = calloc(LE, sizeof *rt->expert_window);
  if (rt->rank == rt->cfg.coordinator) rt->expert_totals = calloc(LE, sizeof *rt->expert_totals);
  if (!rt->expert_window || (rt->rank == rt->cfg.coordinator && !rt->expert_totals))
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the per-expert records");
  return MOEPLACE_OK;
}

void mp_rt_experts_free(moeplace_runtime *rt) {
  free(rt->expert_window);
  free(rt->expert_totals);
  rt->expert_window = rt->expert_totals = NULL;
}

int moeplace_runtime_record_experts(moeplace_runtime *rt, int layer, const uint64_t *counts) {
  if (!rt || !counts)
    return mp_fail(MOEPLACE_ERR_ARG, "record_experts: runtime and counts must not be NULL");
  if ((unsigned)layer >= (unsigned)rt->L)
    return mp_fail(MOEPLACE_ERR_ARG, "record_experts: layer %d not in [0, %d)", layer, rt->L);
  if (!rt->expert_window)
    return mp_fail(MOEPLACE_ERR_STATE, "record_experts: the runtime is unusable after a timeout");
  uint64_t *w = rt->expert_window + (size_t)layer * rt->E; // w: [E]
  const long bad = mp_window_overflow_at(w, counts, (size_t)rt->E);
  if (bad >= 0)
    return mp_fail(MOEPLACE_ERR_ARG, "record_experts: layer %d expert %ld: counts summed over the "
                   "window exceed 2^64 - 1 (nothing recorded)", layer, bad);
  for (int e = 0; e < rt->E; e++) w[e] += counts[e];
  rt->experts_recorded = 1;
  return MOEPLACE_OK;
}

int mp_rt_experts_reduce(moeplace_runtime *rt) {
  size_t LE = (size_t)rt->L * rt->E;
  if (!rt->experts_recorded) { // agreed: no rank recorded per expert in this window
    if (rt->expert_totals) memset(rt->expert_totals, 0, LE * sizeof *rt->expert_totals);
    return MOEPLACE_OK;
  }
  rt->experts_recorded = 0;
  MPI_Request req;
  int status;
  if (MPI_Ireduce(rt->expert_window, rt->expert_totals, (int)LE, MPI_UINT64_T, MPI_SUM,
                  rt->cfg.coordinator, rt->comm, &req) != MPI_SUCCESS)
    status = mp_fail(MOEPLACE_ERR_MPI, "MPI_Ireduce of the per-expert records failed");
  else
    status = mp_rt_wait(rt, &req, "the per-expert records of the window (MPI_Ireduce)");
  if (status != MOEPLACE_OK && rt->broken) { // the reduction may still complete into them
    mp_rt_orphan(rt->expert_window);
    mp_rt_orphan(rt->expert_totals);
    rt->expert_window = rt->expert_totals = NULL;
    return status;
  }
  memset(rt->expert_window, 0, LE * sizeof *rt->expert_window);
  return status;
}

void mp_rt_experts_add(const moeplace_runtime *rt, uint64_t *totals) {
  size_t LE = (size_t)rt->L * rt->E;
  for (size_t i = 0; i < LE; i++) totals[i] += rt->expert_totals[i];
}
