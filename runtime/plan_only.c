/* Plan-only mode (config.plan_only; docs/RUNTIME.md, "Plan-only mode"):
 * for memory the runtime cannot reach (GPU tensors), a rebalance decides
 * and builds the migration plan but moves no byte; the trainer moves the
 * experts itself and confirms, collectively; the placement is committed on
 * every rank only if every rank confirmed. The hooks: migrate_to_next()
 * (loop.c) hands its plan to mp_rt_plan_hold() instead of migrating, and
 * collective calls are refused while a plan is pending. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/internal.h"

int mp_rt_plan_hold(moeplace_runtime *rt, moeplace_transfer *plan, size_t n,
                    moeplace_step_info *info) {
  rt->pending_plan = plan; // rt->next holds the decided placement until confirm
  rt->pending_n = n;
  rt->plan_pending = 1;
  if (info) {
    info->plan_pending = 1;
    info->moves = (int)n;
  }
  return MOEPLACE_OK;
}

void mp_rt_plan_free(moeplace_runtime *rt) {
  moeplace_transfers_free(rt->pending_plan);
  rt->pending_plan = NULL;
  rt->pending_n = 0;
  rt->plan_pending = 0;
}

int moeplace_runtime_pending_plan(const moeplace_runtime *rt, const moeplace_transfer **plan,
                                  size_t *n) {
  if (!rt || !plan || !n) return mp_fail(MOEPLACE_ERR_ARG, "pending_plan: NULL argument");
  if (!rt->plan_pending)
    return mp_fail(MOEPLACE_ERR_STATE, "pending_plan: no plan is pending (plan_only %d)",
                   rt->cfg.plan_only);
  *plan = rt->pending_plan;
  *n = rt->pending_n;
  return MOEPLACE_OK;
}

int moeplace_runtime_pending_placement(const moeplace_runtime *rt, int *phy2log, double *share) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "pending_placement: runtime is NULL");
  if (!rt->plan_pending)
    return mp_fail(MOEPLACE_ERR_STATE, "pending_placement: no plan is pending");
  size_t n = (size_t)rt->L * rt->G;
  if (phy2log) memcpy(phy2log, rt->next->phy2log, n * sizeof *phy2log);
  if (share) memcpy(share, rt->next->share, n * sizeof *share);
  return MOEPLACE_OK;
}

int moeplace_runtime_confirm(moeplace_runtime *rt, int ok) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "confirm: runtime is NULL");
  if (rt->broken)
    return mp_fail(MOEPLACE_ERR_STATE, "confirm: the runtime is unusable after a collective timed "
                   "out or the ranks disagreed on the step");
  if (!rt->plan_pending) // identical on every rank: no rank enters the agreement
    return mp_fail(MOEPLACE_ERR_STATE, "confirm: no plan is pending");
  int64_t v = ok ? 1 : 0, all = 0;
  int same;
  int st = mp_rt_agree_rt(rt, &v, 1, &same, &all, NULL, "the plan confirmation (MPI_Iallreduce)");
  size_t n = rt->pending_n;
  if (st == MOEPLACE_OK && all) { // commit: the decided placement takes effect
    moeplace_placement *old = rt->placement;
    rt->placement = rt->next;
    rt->next = old;
    rt->stats.rebalances++;
    rt->stats.moves += (int64_t)n;
    for (size_t i = 0; i < n; i++)
      if (rt->pending_plan[i].src_rank != rt->pending_plan[i].dst_rank)
        rt->stats.bytes_moved += rt->expert_bytes[rt->pending_plan[i].layer];
  } else if (st == MOEPLACE_OK) {
    rt->stats.migrations_failed++;
    st = ok ? mp_fail(MOEPLACE_ERR_VERIFY, "confirm: another rank could not move its experts; "
                      "the old placement stays in force on every rank")
            : mp_fail(MOEPLACE_ERR_VERIFY, "confirm: this rank reported that its transfers failed; "
                      "the old placement stays in force on every rank");
  }
  mp_rt_plan_free(rt);
  return st;
}
