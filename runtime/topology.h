/* Where each rank runs: node (MPI_COMM_TYPE_SHARED or emulated), package
 * and NUMA node (hwloc, from the rank's bound cpuset). Every rank learns the
 * classes of every rank, so that every rank holds the same t->shape: the
 * coordinator places with it and every rank builds the same migration plan. */
#ifndef MOEPLACE_RUNTIME_TOPOLOGY_H
#define MOEPLACE_RUNTIME_TOPOLOGY_H

#include <mpi.h>

#include <moeplace.h>

typedef struct mp_rt_topology {
  int R;
  int nodes;    /* distinct nodes */
  int *node;    /* [R] node index in 0..nodes-1, numbered by lowest rank */
  int *package; /* [R] package logical index within the node, -1 unknown */
  int *numa;    /* [R] NUMA node logical index within the node, -1 unknown */
  int emulated_nodes; /* 1 if nodes come from ranks_per_node */
  int synthetic;      /* 1 if hwloc described a synthetic/XML machine, not this one */
  int from_file;      /* 1 if a cluster-shape file replaced the discovery */
  moeplace_topology *shape; /* the same, for the placement engine: classes and costs */
} mp_rt_topology;

/* Collective over comm. ranks_per_node > 0 emulates nodes of that many
 * consecutive ranks; synthetic (may be NULL) is an hwloc synthetic
 * description used instead of the machine. When hwloc does not describe the
 * machine the process runs on (synthetic, XML) or the rank is not bound,
 * the rank is placed on the PU local_rank * PUs / local_size, which spreads
 * a node's ranks evenly as a bind-to-core launch would. All ranks return the
 * same status. */
int mp_rt_topology_discover(MPI_Comm comm, int ranks_per_node, const char *synthetic,
                            mp_rt_topology *out);

/* Collective, after discovery: builds t->shape for the placement engine,
 * either from the discovered classes or, when cluster_file is not NULL,
 * from that cluster-shape file (which then replaces the discovered nodes;
 * it must describe exactly the communicator's ranks). Same status on every
 * rank. */
int mp_rt_topology_attach_shape(MPI_Comm comm, const char *cluster_file, mp_rt_topology *t);

void mp_rt_topology_free(mp_rt_topology *t);

#endif
