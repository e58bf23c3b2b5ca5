/* Replica consistency (moeplace_runtime_sync_replicas): every replica of an
 * expert must hold the same state as its primary (its first replica in
 * slot order), or the replicas diverge silently (a trainer that seeds
 * experts per rank). Each rank hashes its slots' registered state, one
 * bounded all-gather shares the hashes, and every rank derives the same
 * list of differing replicas from them; in copy mode those are overwritten
 * with the primary's state by the migration engine (migrate.c: chunked,
 * checksummed, all-or-nothing), as transfers primary -> replica. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <xxhash.h>

#include "common/error.h"
#include "runtime/internal.h"

/* XXH3-64 of a local slot's state: the concatenation of its buffers. */
static uint64_t slot_hash(const mp_rt_slot *sl) {
  XXH3_state_t *h = XXH3_createState();
  if (!h) return 0; // hashes then differ from other ranks' only by chance: a copy is safe
  XXH3_64bits_reset(h);
  for (int b = 0; b < sl->nbuf; b++) XXH3_64bits_update(h, sl->buf[b].ptr, sl->buf[b].bytes);
  uint64_t d = XXH3_64bits_digest(h);
  XXH3_freeState(h);
  return d;
}

/* Collective: all[R][L][S] the hash of every slot of every rank. */
static int gather_hashes(moeplace_runtime *rt, uint64_t *all) {
  size_t LS = (size_t)rt->L * rt->S;
  uint64_t *mine = malloc(LS * sizeof *mine); // [L][S]
  // all NULL: the caller ran out of memory; the others learn it here
  int st = mp_rt_agree_ok(rt, mine != NULL && all != NULL, "sync_replicas (MPI_Iallreduce)");
  if (st != MOEPLACE_OK) {
    free(mine);
    return st;
  }
  for (size_t i = 0; i < LS; i++) mine[i] = slot_hash(&rt->slots[i]);
  MPI_Request req;
  if (MPI_Iallgather(mine, (int)LS, MPI_UINT64_T, all, (int)LS, MPI_UINT64_T, rt->comm, &req) !=
      MPI_SUCCESS)
    st = mp_fail(MOEPLACE_ERR_MPI, "MPI_Iallgather of the replica hashes failed");
  else
    st = mp_rt_wait(rt, &req, "the replica hashes (MPI_Iallgather)");
  if (st != MOEPLACE_OK && rt->broken) {
    mp_rt_orphan(mine);
    mp_rt_orphan(all);
    return st;
  }
  free(mine);
  return st;
}

/* From the hashes, identically on every rank: the flags differ[L][E] (may
 * be NULL), their count, and (plan != NULL) the transfers primary ->
 * differing replica, in (layer, slot) order. */
static int compare(const moeplace_runtime *rt, const uint64_t *all, int *differ,
                   moeplace_transfer *plan) {
  const int S = rt->S, G = rt->G, E = rt->E;
  int count = 0, n = 0;
  if (differ) memset(differ, 0, (size_t)rt->L * E * sizeof *differ);
  for (int l = 0; l < rt->L; l++) {
    const int *se = rt->placement->phy2log + (size_t)l * G; // [G]
    for (int g = 0; g < G; g++) {
      int e = se[g], p = 0;
      if (e < 0) continue;
      while (se[p] != e) p++; // the primary: the expert's first slot
      if (p == g) continue;
      uint64_t hp = all[((size_t)(p / S) * rt->L + l) * S + p % S];
      uint64_t hg = all[((size_t)(g / S) * rt->L + l) * S + g % S];
      if (hp == hg) continue;
      if (differ && !differ[(size_t)l * E + e]) {
        differ[(size_t)l * E + e] = 1;
        count++;
      }
      if (plan)
        plan[n] = (moeplace_transfer){l, e, p / S, p, g / S, g,
                                      moeplace_topology_class(rt->topo.shape, p / S, g / S), 0.0};
      n++;
    }
  }
  return plan ? n : count;
}

int moeplace_runtime_sync_replicas(moeplace_runtime *rt, int mode, int *differ, int *count) {
  if (!rt) return mp_fail(MOEPLACE_ERR_ARG, "sync_replicas: runtime is NULL");
  if (mode != MOEPLACE_SYNC_CHECK && mode != MOEPLACE_SYNC_COPY)
    return mp_fail(MOEPLACE_ERR_ARG, "sync_replicas: mode must be MOEPLACE_SYNC_CHECK or _COPY, got %d",
                   mode);
  if (rt->cfg.plan_only || rt->plan_pending)
    return mp_fail(MOEPLACE_ERR_STATE, "sync_replicas: in plan-only mode the runtime does not "
                   "hold the experts' state (compare and copy replicas in the trainer)");
  if (rt->broken)
    return mp_fail(MOEPLACE_ERR_STATE, "sync_replicas: the runtime is unusable after a collective "
                   "timed out or the ranks disagreed on the step");
  int st = mp_rt_check_registration(rt); // equal sizes: equal hashes mean equal state
  if (st != MOEPLACE_OK) return st;
  size_t n_all = (size_t)rt->R * rt->L * rt->S;
  uint64_t *all = malloc(n_all * sizeof *all); // [R][L][S]
  int *flags = malloc((size_t)rt->L * rt->E * sizeof *flags);
  moeplace_transfer *plan = malloc(((size_t)rt->L * rt->G + 1) * sizeof *plan);
  if (!all || !flags || !plan) {
    free(all);
    free(flags);
    free(plan);
    return gather_hashes(rt, NULL); // agrees on the failure with the other ranks
  }
  st = gather_hashes(rt, all);
  if (st != MOEPLACE_OK) {
    if (!rt->broken) free(all);
    free(flags);
    free(plan);
    return st;
  }
  int found = compare(rt, all, flags, NULL);
  int n = compare(rt, all, NULL, plan);
  free(all);
  if (mode == MOEPLACE_SYNC_COPY && n > 0) {
    mp_rt_migration_result res;
    st = mp_rt_migrate(rt, plan, n, &res);
  }
  free(plan);
  if (st == MOEPLACE_OK) {
    if (differ) memcpy(differ, flags, (size_t)rt->L * rt->E * sizeof *differ);
    if (count) *count = found;
  }
  free(flags);
  return st;
}
