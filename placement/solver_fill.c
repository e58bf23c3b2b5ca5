/* Filling every slot (moeplace_place_options.fill_slots, even shares).
 *
 * EPLB's maps hold a replica in every slot, and their consumers index
 * expert weights by phy2log, so a map handed to them must too. The even
 * solver may leave slots empty (a slot only an idle expert could take, or
 * a replica total below R x S that balanced better). Each empty slot, in
 * slot order, gets a replica of an expert its rank does not hold: the one
 * whose equal split then leaves the lowest max rank load. Adding a replica
 * of e (c replicas, w_e tokens) to rank r lowers each holder of e by
 * w_e / c - w_e / (c + 1) and raises r by w_e / (c + 1); ties (idle experts
 * change no load) go to an expert the current placement has on r (no
 * transfer), then to the lowest sum of squared rank loads, then to the
 * lowest index. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "placement/solver_internal.h"

/* The figures of a candidate: max rank load, transfer needed, sum of
 * squared rank loads. */
typedef struct fill_key {
  double max;
  int transfer;
  double sq;
} fill_key;

static int key_less(const fill_key *a, const fill_key *b) {
  if (a->max != b->max) return a->max < b->max;
  if (a->transfer != b->transfer) return a->transfer < b->transfer;
  return a->sq < b->sq;
}

/* The figures of adding a replica of e to rank r. order [R] holds the ranks
 * by decreasing load, sq the present sum of squares; ev_mark is zero on
 * entry and on return. */
static fill_key fill_score(mp_place_layer *st, int e, int r, const int *order, double sq) {
  const int c = st->cnt[e];
  const double x = st->w[e] / (c + 1), d = x - st->w[e] / c; // d <= 0 on e's holders
  fill_key k = {.max = st->load[r] + x, .transfer = !st->cur || !mp_cur_rank_holds(st, r, e)};
  sq += (st->load[r] + x) * (st->load[r] + x) - st->load[r] * st->load[r];
  st->ev_mark[r] = 1;
  for (int i = st->head[e]; i >= 0; i = st->next[i]) {
    const int q = i / st->S;
    const double l = st->load[q];
    st->ev_mark[q] = 1;
    sq += (l + d) * (l + d) - l * l;
    k.max = fmax(k.max, l + d);
  }
  for (int n = 0; n < st->R; n++) // the busiest rank this addition leaves alone
    if (!st->ev_mark[order[n]]) {
      k.max = fmax(k.max, st->load[order[n]]);
      break;
    }
  st->ev_mark[r] = 0;
  for (int i = st->head[e]; i >= 0; i = st->next[i]) st->ev_mark[i / st->S] = 0;
  k.sq = sq;
  return k;
}

void mp_place_layer_fill(mp_place_layer *st, int transfers) {
  int *order = st->iscratch; // [R]
  for (int i = 0; i < st->RS; i++) {
    if (st->slot_e[i] >= 0) continue;
    const int r = i / st->S;
    for (int q = 0; q < st->R; q++) order[q] = q;
    mp_radix_sort_desc(order, st->R, st->load, st->c_rtmp, st->c_rk0, st->c_rk1);
    double sq = 0;
    for (int q = 0; q < st->R; q++) sq += st->load[q] * st->load[q];
    int best = -1;
    fill_key bk = {0};
    for (int e = 0; e < st->E; e++) {
      if (mp_st_rank_holds(st, r, e)) continue;
      const fill_key k = fill_score(st, e, r, order, sq);
      if (k.transfer && !transfers) continue;
      if (best < 0 || key_less(&k, &bk)) best = e, bk = k;
    }
    if (best < 0) continue; // the rank holds every expert it may hold
    mp_st_put(st, i, best, 0);
    mp_even_resplit(st, best);
  }
}
