/* Internal layout of a placement, shared by the placement code. */
#ifndef MOEPLACE_PLACEMENT_IMPL_H
#define MOEPLACE_PLACEMENT_IMPL_H

#include <moeplace.h>

#define MP_PLACE_MAX_DIM 1048576

struct moeplace_placement {
  int layers, experts, ranks, slots;
  int *phy2log;  // [L][R*S], -1 = empty
  double *share; // [L][R*S]
  // set by moeplace_place with groups (else 0 / NULL): the JSON writer
  // reports each layer's split groups from them
  int groups;
  int *rank_node; // [R] node of each rank
};

/* Records the groups and the node of every rank (from topo) in p, for the
 * JSON writer's per-layer split_groups. groups <= 1 clears them. */
int mp_placement_set_groups(moeplace_placement *p, const moeplace_topology *topo, int groups);

/* Bounds the placement code accepts for L, E, R, S (and R*S). */
int mp_place_check_shape(int layers, int experts, int ranks, int slots);

#endif
