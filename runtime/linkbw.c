/* Link bandwidths measured from the runtime's own migrations, for the
 * seconds-priced keep-or-move rule (docs/PLACEMENT.md, "Pricing a rebalance
 * in seconds"): the model prices a migration as its busiest rank's bytes
 * over its link class's bandwidth (moeplace_migration_seconds), so a
 * committed migration whose transfers between ranks all use one link class
 * measures that class directly: busiest bytes / wall seconds. Migrations
 * mixing classes do not separate them and are not used. Every rank holds
 * the same plan and measures its own wall time; the coordinator's
 * estimates are the ones its decisions use. */
#include "config.h"

#include <stdlib.h>

#include "placement/topology.h"
#include "runtime/internal.h"

void mp_rt_linkbw_observe(moeplace_runtime *rt, const moeplace_transfer *plan, size_t n,
                          double seconds) {
  const moeplace_topology *t = rt->topo.shape;
  const int R = rt->R;
  double *io = calloc(2 * (size_t)R, sizeof *io); // [R] bytes sent, then [R] received
  if (!io || !(seconds > 0)) {
    free(io);
    return;
  }
  int cls = MOEPLACE_LINK_SAME_RANK;
  for (size_t i = 0; i < n; i++) {
    const moeplace_transfer *x = &plan[i];
    if (x->src_rank == x->dst_rank) continue; // a local copy: no link
    const int c = mp_place_link_class(t, x->src_rank, x->dst_rank);
    if (cls != MOEPLACE_LINK_SAME_RANK && c != cls) cls = MOEPLACE_LINK_INVALID; // mixed
    if (cls != MOEPLACE_LINK_INVALID) cls = c;
    const double bytes = (double)rt->expert_bytes[x->layer]; // the runtime's plan has none
    io[x->src_rank] += bytes;
    io[R + x->dst_rank] += bytes;
  }
  double busiest = 0;
  for (int r = 0; r < 2 * R; r++) busiest = io[r] > busiest ? io[r] : busiest;
  free(io);
  // Below a few MiB the fixed rounds of a migration (agreements, landing
  // addresses) dominate: that is latency, not bandwidth.
  if (cls <= MOEPLACE_LINK_SAME_RANK || busiest < MP_RT_LINKBW_MIN_BYTES) return;
  const double bw = busiest / seconds, old = rt->link_bw[cls];
  rt->link_bw[cls] = old > 0 ? 0.5 * old + 0.5 * bw : bw; // smooths one noisy migration
}
