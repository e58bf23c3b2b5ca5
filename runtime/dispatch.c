/* The dispatch helper (moeplace_runtime_dispatch): how many of one layer's
 * tokens this rank sends to every global slot, each expert's tokens split
 * among its replicas by moeplace_split_tokens() (placement/split.c, the one
 * home of the rounding), replicas in slot order. Every rank computes the
 * same split from the same placement. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/internal.h"

int moeplace_runtime_dispatch(const moeplace_runtime *rt, int layer, const uint64_t *tokens,
                              uint64_t *send) {
  if (!rt || !tokens || !send)
    return mp_fail(MOEPLACE_ERR_ARG, "dispatch: runtime, tokens and send must not be NULL");
  if ((unsigned)layer >= (unsigned)rt->L)
    return mp_fail(MOEPLACE_ERR_ARG, "dispatch: layer %d not in [0, %d)", layer, rt->L);
  const int E = rt->E, G = rt->G;
  const int *phy2log = rt->placement->phy2log + (size_t)layer * G; // [G]
  const double *share = rt->placement->share + (size_t)layer * G;  // [G]
  // Slots grouped by expert, in slot order (a counting sort): first[E+1],
  // by[G], fill[E] (the sort's cursors).
  int *first = calloc((size_t)2 * E + 1 + (size_t)G, sizeof *first);
  double *sh = malloc((size_t)G * sizeof *sh);
  uint64_t *part = malloc((size_t)G * sizeof *part);
  if (!first || !sh || !part) {
    free(first);
    free(sh);
    free(part);
    return mp_fail(MOEPLACE_ERR_NOMEM, "dispatch: out of memory");
  }
  int *by = first + E + 1, *fill = by + G;
  for (int g = 0; g < G; g++)
    if (phy2log[g] >= 0) first[phy2log[g] + 1]++;
  for (int e = 0; e < E; e++) first[e + 1] += first[e];
  memcpy(fill, first, (size_t)E * sizeof *fill);
  for (int g = 0; g < G; g++)
    if (phy2log[g] >= 0) by[fill[phy2log[g]]++] = g;
  memset(send, 0, (size_t)G * sizeof *send);
  int status = MOEPLACE_OK;
  for (int e = 0; e < E && status == MOEPLACE_OK; e++) {
    int n = first[e + 1] - first[e];
    for (int i = 0; i < n; i++) sh[i] = share[by[first[e] + i]];
    status = moeplace_split_tokens(tokens[e], sh, n, part);
    for (int i = 0; status == MOEPLACE_OK && i < n; i++) send[by[first[e] + i]] = part[i];
  }
  free(first);
  free(sh);
  free(part);
  if (status != MOEPLACE_OK)
    return mp_fail(status, "dispatch: layer %d: %s", layer, moeplace_last_error());
  return MOEPLACE_OK;
}
