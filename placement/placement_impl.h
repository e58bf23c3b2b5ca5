/* Internal layout of a placement, shared by the placement code. */
#ifndef MOEPLACE_PLACEMENT_IMPL_H
#define MOEPLACE_PLACEMENT_IMPL_H

#include <moeplace.h>

#define MP_PLACE_MAX_DIM 1048576

struct moeplace_placement {
  int layers, experts, ranks, slots;
  int *phy2log;  // [L][R*S], -1 = empty
  double *share; // [L][R*S]
};

/* Bounds the placement code accepts for L, E, R, S (and R*S). */
int mp_place_check_shape(int layers, int experts, int ranks, int slots);

#endif
