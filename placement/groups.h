/* Internal: node-limited placement of expert groups (placement/groups.c),
 * as moeplace_place uses it. */
#ifndef MOEPLACE_PLACEMENT_GROUPS_H
#define MOEPLACE_PLACEMENT_GROUPS_H

#include <moeplace.h>

/* moeplace_place for opt->groups > 1 (opt checked, topo/loads/out non-NULL,
 * *out already NULL); t0 is the call's start for solve_ms. Same returns. */
int mp_place_grouped(const moeplace_topology *topo, int layers, int experts, int slots,
                     const double *loads, const moeplace_placement *current,
                     const moeplace_place_options *opt, moeplace_placement **out,
                     moeplace_place_stats *stats, double t0);

/* moeplace_place without groups (opt->groups <= 1; topo, loads, out
 * non-NULL), where a fresh even-share layer l may stop searching once its
 * max rank load is at most target[l] (NULL: no target): groups.c solves one
 * node at a time, and a node lighter than the busiest need not be balanced
 * below the busiest node's mean rank load, which the layer reaches anyway.
 * place.c. Same returns as moeplace_place; stats NULL: not computed. */
int mp_place_targeted(const moeplace_topology *topo, int layers, int experts, int slots,
                      const double *loads, const moeplace_placement *current,
                      const moeplace_place_options *opt, const double *target,
                      moeplace_placement **out, moeplace_place_stats *stats);

#endif
