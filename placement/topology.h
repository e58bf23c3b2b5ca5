/* Internal layout of a topology, shared by the placement code. */
#ifndef MOEPLACE_PLACEMENT_TOPOLOGY_H
#define MOEPLACE_PLACEMENT_TOPOLOGY_H

#include <moeplace.h>

struct moeplace_topology {
  int ranks, nodes;
  int *node, *package, *numa; // [ranks]: node index, package label, numa label
  double cost[MOEPLACE_LINK_CLASSES];      // per byte
  double bandwidth[MOEPLACE_LINK_CLASSES]; // bytes per second (same rank: infinite)
};

/* A copy of t whose per-byte costs are seconds per byte (1 / bandwidth), so
 * that the solver's migration cost of a move is its transfer time. Returns
 * as moeplace_topology_create_table(). */
int mp_topology_priced_in_seconds(const moeplace_topology *t, moeplace_topology **out);

static inline moeplace_link_class mp_place_link_class(const moeplace_topology *t, int a,
                                                      int b) {
  if (a == b) return MOEPLACE_LINK_SAME_RANK;
  if (!t || t->node[a] != t->node[b]) return MOEPLACE_LINK_OTHER_NODE;
  if (t->package[a] != t->package[b]) return MOEPLACE_LINK_SAME_NODE;
  if (t->numa[a] != t->numa[b]) return MOEPLACE_LINK_SAME_PACKAGE;
  return MOEPLACE_LINK_SAME_NUMA;
}

#endif
