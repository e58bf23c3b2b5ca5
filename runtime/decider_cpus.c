/* Where the coordinator's decision thread runs. A thread inherits its
 * process's CPU binding: under `mpirun --bind-to core` the decision thread
 * would take its CPU time from the coordinator's own training core, and every
 * other rank waits for that rank at the next layer's all-to-all (measured on
 * 2 cores that both train: `auto`'s thread used 15 % of the run's time and
 * the demo ran 0.89-0.91x as fast as without rebalancing, docs/BENCHMARKS.md). So the thread is bound to the PUs of its host that no
 * rank on the host is bound to, when there are any (a GPU node binds a few
 * cores per rank and leaves the rest idle). Best effort: without hwloc's
 * answer, or with no spare PU, the thread keeps the inherited binding. */
#include "config.h"

#include <hwloc.h>
#include <stdint.h>
#include <string.h>

#include "common/error.h"
#include "runtime/internal.h"

enum { CPU_WORDS = 64 }; /* PUs 0 .. 4095 by OS index; a rank bound beyond: "all" */

/* This rank's binding as a mask of OS indexes (words[CPU_WORDS]): every PU
 * when the process is not bound, or when hwloc cannot tell. */
static void own_binding(hwloc_topology_t topo, uint64_t *words) {
  memset(words, 0xff, CPU_WORDS * sizeof *words);
  hwloc_bitmap_t set = topo ? hwloc_bitmap_alloc() : NULL;
  if (!set) return;
  hwloc_const_cpuset_t all = hwloc_topology_get_allowed_cpuset(topo);
  if (hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0 && !hwloc_bitmap_iszero(set) &&
      !hwloc_bitmap_isincluded(all, set) && hwloc_bitmap_last(set) < CPU_WORDS * 64) {
    memset(words, 0, CPU_WORDS * sizeof *words);
    int i;
    hwloc_bitmap_foreach_begin(i, set) words[i / 64] |= (uint64_t)1 << (i % 64);
    hwloc_bitmap_foreach_end();
  }
  hwloc_bitmap_free(set);
}

/* The allowed PUs of this host outside taken[CPU_WORDS] (a new bitmap, or
 * NULL when there are none). */
static hwloc_bitmap_t spare_of(hwloc_topology_t topo, const uint64_t *taken) {
  hwloc_bitmap_t spare = hwloc_bitmap_dup(hwloc_topology_get_allowed_cpuset(topo));
  if (!spare) return NULL;
  for (int i = 0; i < CPU_WORDS * 64; i++)
    if (taken[i / 64] >> (i % 64) & 1) hwloc_bitmap_clr(spare, (unsigned)i);
  if (hwloc_bitmap_last(spare) >= CPU_WORDS * 64 || hwloc_bitmap_iszero(spare)) {
    hwloc_bitmap_free(spare); // PUs beyond the mask: their ranks' bindings are unknown
    return NULL;
  }
  return spare;
}

/* Loads this machine's topology, or NULL (synthetic machines are not this
 * one: their bindings say nothing). Destroy with hwloc_topology_destroy. */
static hwloc_topology_t this_machine(const moeplace_runtime *rt) {
  hwloc_topology_t topo = NULL;
  if (rt->cfg.hwloc_synthetic || hwloc_topology_init(&topo) != 0) return NULL;
  if (hwloc_topology_load(topo) == 0) return topo;
  hwloc_topology_destroy(topo);
  return NULL;
}

/* Collective over rt->comm, before the decider starts: the union of the
 * bindings of the ranks on each host (MPI_COMM_TYPE_SHARED: the real host,
 * whatever ranks_per_node emulates); the coordinator keeps the rest of its
 * host's PUs in rt->spare_set, with the topology that binds to them, until
 * mp_rt_decider_bind; every rank learns their number, rt->spare_pus. Fails
 * only when MPI does. */
int mp_rt_decider_spare(moeplace_runtime *rt) {
  rt->spare_pus = 0;
  MPI_Comm host;
  if (MPI_Comm_split_type(rt->comm, MPI_COMM_TYPE_SHARED, 0, MPI_INFO_NULL, &host) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "runtime: MPI_Comm_split_type of the host failed");
  hwloc_topology_t topo = this_machine(rt);
  uint64_t mine[CPU_WORDS], taken[CPU_WORDS];
  own_binding(topo, mine);
  int rc = MPI_Allreduce(mine, taken, CPU_WORDS, MPI_UINT64_T, MPI_BOR, host);
  MPI_Comm_free(&host);
  int pus = 0;
  if (rc == MPI_SUCCESS && topo && rt->rank == rt->cfg.coordinator &&
      (rt->spare_set = spare_of(topo, taken))) {
    rt->spare_topo = topo; // kept for the binding
    pus = hwloc_bitmap_weight(rt->spare_set);
  } else if (topo) {
    hwloc_topology_destroy(topo);
  }
  if (rc == MPI_SUCCESS) rc = MPI_Bcast(&pus, 1, MPI_INT, rt->cfg.coordinator, rt->comm);
  if (rc != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "runtime: agreeing on the host's spare CPUs failed");
  rt->spare_pus = pus;
  return MOEPLACE_OK;
}

/* Local, on the coordinator once its decider runs: binds the decision thread
 * to rt->spare_set, then drops it. Sets rt->decider_pus to their number if
 * it could (0: the thread keeps the inherited binding). Best effort. */
void mp_rt_decider_bind(moeplace_runtime *rt) {
  rt->decider_pus = 0;
  pthread_t *thread = rt->decider ? mp_rt_decider_thread(rt->decider) : NULL;
  if (thread && rt->spare_set && hwloc_set_thread_cpubind(rt->spare_topo, *thread, rt->spare_set, 0) == 0)
    rt->decider_pus = hwloc_bitmap_weight(rt->spare_set);
  mp_rt_decider_spare_free(rt);
}

void mp_rt_decider_spare_free(moeplace_runtime *rt) {
  hwloc_bitmap_free(rt->spare_set);
  if (rt->spare_topo) hwloc_topology_destroy(rt->spare_topo);
  rt->spare_set = NULL;
  rt->spare_topo = NULL;
}

int mp_rt_test_decider_pus(const moeplace_runtime *rt) { return rt ? rt->decider_pus : -1; }
