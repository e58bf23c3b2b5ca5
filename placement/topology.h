/* Internal layout of a topology, shared by the placement code. */
#ifndef MOEPLACE_PLACEMENT_TOPOLOGY_H
#define MOEPLACE_PLACEMENT_TOPOLOGY_H

#include <moeplace.h>

struct moeplace_topology {
  int ranks, nodes;
  int *node, *package, *numa; // [ranks]: node index, package label, numa label
  double cost[MOEPLACE_LINK_CLASSES]; // per byte
};

static inline moeplace_link_class mp_place_link_class(const moeplace_topology *t, int a,
                                                      int b) {
  if (a == b) return MOEPLACE_LINK_SAME_RANK;
  if (!t || t->node[a] != t->node[b]) return MOEPLACE_LINK_OTHER_NODE;
  if (t->package[a] != t->package[b]) return MOEPLACE_LINK_SAME_NODE;
  if (t->numa[a] != t->numa[b]) return MOEPLACE_LINK_SAME_PACKAGE;
  return MOEPLACE_LINK_SAME_NUMA;
}

#endif
