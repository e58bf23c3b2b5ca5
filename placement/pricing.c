/* What a rebalance costs in time: the migration time model (one home for
 * it: moeplace-replay's migration_s, the runtime and the seconds-priced
 * keep-or-move rule of place.c all use it). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdlib.h>

#include <moeplace.h>

#include "common/error.h"
#include "placement/topology.h"

/* Every rank sends its transfers one after the other and receives its
 * transfers one after the other (one NIC or link per rank), all ranks at once:
 * the busiest rank's sending or receiving time is the migration's. */
int moeplace_migration_seconds(const moeplace_topology *topo, const moeplace_transfer *transfers,
                               size_t count, double *seconds) {
  if (!topo || !seconds || (!transfers && count))
    return mp_fail(MOEPLACE_ERR_ARG, "migration seconds: NULL argument");
  *seconds = 0;
  const int R = topo->ranks;
  double *send = calloc(2 * (size_t)R, sizeof *send); // [R] send, then [R] receive
  MP_CHECK_ALLOC(send);
  double *recv = send + R, worst = 0;
  for (size_t i = 0; i < count; i++) {
    const moeplace_transfer *t = &transfers[i];
    if (t->src_rank < 0 || t->src_rank >= R || t->dst_rank < 0 || t->dst_rank >= R) {
      free(send);
      return mp_fail(MOEPLACE_ERR_ARG, "migration seconds: transfer %zu has ranks %d -> %d, "
                     "outside the topology's %d", i, t->src_rank, t->dst_rank, R);
    }
    if (!(t->bytes >= 0) || !isfinite(t->bytes)) {
      free(send);
      return mp_fail(MOEPLACE_ERR_ARG, "migration seconds: transfer %zu has %g bytes (must be "
                     "finite and >= 0)", i, t->bytes);
    }
    if (t->src_rank == t->dst_rank) continue; // a local copy: no link
    const double s = t->bytes / topo->bandwidth[mp_place_link_class(topo, t->src_rank,
                                                                    t->dst_rank)];
    send[t->src_rank] += s;
    recv[t->dst_rank] += s;
  }
  for (int r = 0; r < 2 * R; r++) worst = send[r] > worst ? send[r] : worst;
  free(send);
  *seconds = worst;
  return MOEPLACE_OK;
}
