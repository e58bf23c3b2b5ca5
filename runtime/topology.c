/* Topology discovery: see topology.h. */
#include "config.h"

#include "runtime/topology.h"

#include <hwloc.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"

/* This rank's package and NUMA node from hwloc. Returns a status; on
 * success *package and *numa are logical indexes (or -1 when hwloc knows of
 * no such object). */
static int locate_in_node(const char *synthetic, int local_rank, int local_size, int *package,
                          int *numa, int *is_synthetic) {
  *package = -1;
  *numa = -1;
  *is_synthetic = 0;
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) < 0) return mp_fail(MOEPLACE_ERR_NOMEM, "hwloc_topology_init failed");
  int status = MOEPLACE_OK;
  hwloc_bitmap_t set = hwloc_bitmap_alloc();
  if (!set) {
    status = mp_fail(MOEPLACE_ERR_NOMEM, "hwloc_bitmap_alloc failed");
    goto done;
  }
  if (synthetic && hwloc_topology_set_synthetic(topo, synthetic) < 0) {
    status = mp_fail(MOEPLACE_ERR_ARG, "invalid hwloc synthetic topology \"%s\"", synthetic);
    goto done;
  }
  if (hwloc_topology_load(topo) < 0) {
    status = mp_fail(MOEPLACE_ERR_UNSUPPORTED, "hwloc could not load the topology");
    goto done;
  }
  int thissystem = hwloc_topology_is_thissystem(topo);
  *is_synthetic = !thissystem;
  hwloc_const_cpuset_t all = hwloc_topology_get_topology_cpuset(topo);
  int bound = thissystem && hwloc_get_cpubind(topo, set, HWLOC_CPUBIND_PROCESS) == 0 &&
              !hwloc_bitmap_iszero(set) && !hwloc_bitmap_isincluded(all, set);
  hwloc_obj_t pu = NULL;
  if (bound) {
    pu = hwloc_get_pu_obj_by_os_index(topo, (unsigned)hwloc_bitmap_first(set));
  } else {
    // Unbound or not this machine: spread the node's ranks over its PUs.
    int npu = hwloc_get_nbobjs_by_type(topo, HWLOC_OBJ_PU);
    if (npu > 0 && local_size > 0) {
      long idx = (long)local_rank * npu / local_size;
      pu = hwloc_get_obj_by_type(topo, HWLOC_OBJ_PU, (unsigned)idx);
    }
  }
  if (!pu) goto done; // hwloc knows no PUs: leave the classes unknown
  hwloc_obj_t pkg = hwloc_get_ancestor_obj_by_type(topo, HWLOC_OBJ_PACKAGE, pu);
  if (pkg) *package = (int)pkg->logical_index;
  for (hwloc_obj_t n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, NULL); n;
       n = hwloc_get_next_obj_by_type(topo, HWLOC_OBJ_NUMANODE, n)) {
    if (n->cpuset && hwloc_bitmap_isset(n->cpuset, pu->os_index)) {
      *numa = (int)n->logical_index;
      break;
    }
  }
done:
  hwloc_bitmap_free(set);
  hwloc_topology_destroy(topo);
  return status;
}

int mp_rt_topology_discover(MPI_Comm comm, int ranks_per_node, const char *synthetic,
                            mp_rt_topology *out) {
  memset(out, 0, sizeof *out);
  int rank, size;
  if (MPI_Comm_rank(comm, &rank) != MPI_SUCCESS || MPI_Comm_size(comm, &size) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Comm_rank/size failed");

  // Node: the lowest rank of the node names it.
  int leader, local_rank, local_size;
  if (ranks_per_node > 0) {
    leader = rank / ranks_per_node * ranks_per_node;
    local_rank = rank - leader;
    local_size = size - leader < ranks_per_node ? size - leader : ranks_per_node;
  } else {
    MPI_Comm node_comm;
    if (MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, rank, MPI_INFO_NULL, &node_comm) !=
        MPI_SUCCESS)
      return mp_fail(MOEPLACE_ERR_MPI, "MPI_Comm_split_type(MPI_COMM_TYPE_SHARED) failed");
    int rc = MPI_Comm_rank(node_comm, &local_rank);
    if (rc == MPI_SUCCESS) rc = MPI_Comm_size(node_comm, &local_size);
    if (rc == MPI_SUCCESS) rc = MPI_Allreduce(&rank, &leader, 1, MPI_INT, MPI_MIN, node_comm);
    MPI_Comm_free(&node_comm);
    if (rc != MPI_SUCCESS) return mp_fail(MOEPLACE_ERR_MPI, "node communicator queries failed");
  }

  // mine: [leader, package, numa, status, synthetic]
  int mine[5] = {leader, -1, -1, 0, 0};
  mine[3] = locate_in_node(synthetic, local_rank, local_size, &mine[1], &mine[2], &mine[4]);

  int *all = malloc((size_t)size * 5 * sizeof *all);
  out->node = malloc((size_t)size * sizeof *out->node);
  out->package = malloc((size_t)size * sizeof *out->package);
  out->numa = malloc((size_t)size * sizeof *out->numa);
  int ok_alloc = all && out->node && out->package && out->numa, ok_all;
  // Everyone must take part in the exchange even if this rank failed to
  // allocate, so agree on that first.
  if (MPI_Allreduce(&ok_alloc, &ok_all, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS) {
    free(all);
    mp_rt_topology_free(out);
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce failed in topology discovery");
  }
  if (!ok_all) {
    free(all);
    mp_rt_topology_free(out);
    return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in topology discovery on some rank");
  }
  if (MPI_Allgather(mine, 5, MPI_INT, all, 5, MPI_INT, comm) != MPI_SUCCESS) {
    free(all);
    mp_rt_topology_free(out);
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Allgather failed in topology discovery");
  }
  for (int r = 0; r < size; r++) {
    if (all[5 * r + 3] != MOEPLACE_OK) {
      int st = all[5 * r + 3];
      free(all);
      mp_rt_topology_free(out);
      // locate_in_node's message is still the last error: everything since
      // either succeeded or returned its own
      if (r == rank) return st;
      return mp_fail(st, "topology discovery failed on rank %d", r);
    }
  }
  out->R = size;
  out->emulated_nodes = ranks_per_node > 0;
  for (int r = 0; r < size; r++) {
    // Dense node index: how many distinct leaders are smaller than r's.
    int ld = all[5 * r], idx = 0;
    for (int q = 0; q < size; q++)
      if (all[5 * q] == q && q < ld) idx++;
    out->node[r] = idx;
    out->package[r] = all[5 * r + 1];
    out->numa[r] = all[5 * r + 2];
    if (all[5 * r] == r) out->nodes++;
    out->synthetic |= all[5 * r + 4];
  }
  free(all);
  return MOEPLACE_OK;
}

int mp_rt_topology_attach_shape(MPI_Comm comm, const char *cluster_file, mp_rt_topology *t) {
  int status = MOEPLACE_OK;
  if (cluster_file && !strcmp(cluster_file, "-")) {
    // every rank reads the file, and stdin reaches rank 0 only
    status = mp_fail(MOEPLACE_ERR_ARG, "cluster_file '-': stdin is not supported here (every "
                     "rank reads the file)");
  } else if (cluster_file) {
    status = moeplace_topology_load(&t->shape, cluster_file);
    if (status == MOEPLACE_OK && moeplace_topology_ranks(t->shape) != t->R)
      status = mp_fail(MOEPLACE_ERR_MISMATCH, "%s describes %d ranks, the communicator has %d",
                       cluster_file, moeplace_topology_ranks(t->shape), t->R);
    if (status == MOEPLACE_OK) {
      t->from_file = 1;
      t->nodes = moeplace_topology_nodes(t->shape);
      for (int r = 0; r < t->R; r++) {
        t->node[r] = moeplace_topology_rank_node(t->shape, r);
        t->package[r] = t->numa[r] = -1; // the file's classes live in t->shape
      }
    }
  } else {
    // The engine wants labels >= 0: an unknown package/NUMA becomes a label
    // of its own per rank (R + r), which is "different" as documented.
    int *pkg = malloc((size_t)t->R * sizeof *pkg), *numa = malloc((size_t)t->R * sizeof *numa);
    if (!pkg || !numa) status = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory for the topology");
    for (int r = 0; status == MOEPLACE_OK && r < t->R; r++) {
      pkg[r] = t->package[r] >= 0 ? t->package[r] : t->R + r;
      numa[r] = t->numa[r] >= 0 ? t->numa[r] : t->R + r;
    }
    if (status == MOEPLACE_OK)
      status = moeplace_topology_create_table(&t->shape, t->R, t->node, pkg, numa);
    free(pkg);
    free(numa);
  }
  int ok = status == MOEPLACE_OK, all_ok = 0;
  if (MPI_Allreduce(&ok, &all_ok, 1, MPI_INT, MPI_MIN, comm) != MPI_SUCCESS)
    return mp_fail(MOEPLACE_ERR_MPI, "MPI_Allreduce failed in topology setup");
  if (!all_ok) {
    moeplace_topology_destroy(t->shape);
    t->shape = NULL;
    return ok ? mp_fail(MOEPLACE_ERR_ARG, "the cluster shape could not be set up on another rank")
              : status;
  }
  return MOEPLACE_OK;
}

void mp_rt_topology_free(mp_rt_topology *t) {
  if (!t) return;
  moeplace_topology_destroy(t->shape);
  t->shape = NULL;
  free(t->node);
  free(t->package);
  free(t->numa);
  t->node = t->package = t->numa = NULL;
}
