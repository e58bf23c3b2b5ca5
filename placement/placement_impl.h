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

/* The largest load accepted: the solver sums loads and squares them (sums
 * of squared rank loads), which must stay finite; a placement does not
 * depend on the loads' scale, so larger loads are to be scaled down. */
#define MP_PLACE_LOAD_MAX 1e150

/* Loads [layers][experts] finite, >= 0 and <= MP_PLACE_LOAD_MAX, else
 * MOEPLACE_ERR_ARG naming the first bad one. */
int mp_place_check_loads(int layers, int experts, const double *loads);

/* The figures every moeplace_place result reports, into *s (imbalance,
 * current_imbalance and kept_current set by the caller stay): moves, bytes,
 * cross-node bytes and cost against current (if not NULL; the byte budget
 * re-checked: MOEPLACE_ERR_NUMERIC over it), shape, share policy, and the
 * bound and gap from lb and den, the sums over layers of the lower bound
 * and of the mean rank load. place.c. */
int mp_place_stats_fill(const moeplace_placement *current, const moeplace_placement *res,
                        const moeplace_topology *topo, const moeplace_place_options *opt,
                        double lb, double den, moeplace_place_stats *s);

#endif
