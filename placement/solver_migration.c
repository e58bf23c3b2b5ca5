/* Migration cost of a layer state relative to the current placement: which
 * replicas are moves, their bytes, and their cost by the closest link class
 * from a rank that holds the expert now. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "placement/solver_internal.h"
#include "placement/topology.h"

void mp_place_layer_set_current(mp_place_layer *st, const int *cur, double expert_bytes) {
  st->cur = cur;
  st->expert_bytes = expert_bytes;
  if (!cur) return;
  for (int e = 0; e < st->E; e++) st->cur_head[e] = -1;
  for (int i = st->RS - 1; i >= 0; i--) {
    int e = cur[i];
    if (e >= 0) {
      st->cur_next[i] = st->cur_head[e];
      st->cur_head[e] = i;
    }
  }
}

int mp_cur_rank_holds(const mp_place_layer *st, int r, int e) {
  const int *s = st->cur + (size_t)r * st->S;
  for (int k = 0; k < st->S; k++)
    if (s[k] == e) return 1;
  return 0;
}

/* Cost of e arriving at rank r: 0 if r held it, else bytes x cheapest class. */
double mp_move_cost(const mp_place_layer *st, int e, int r, int *cls) {
  *cls = MOEPLACE_LINK_SAME_RANK;
  if (!st->cur || mp_cur_rank_holds(st, r, e)) return 0;
  double best = INFINITY;
  int bc = MOEPLACE_LINK_OTHER_NODE;
  for (int i = st->cur_head[e]; i >= 0; i = st->cur_next[i]) {
    int c = mp_place_link_class(st->topo, i / st->S, r);
    double cc = st->topo ? st->topo->cost[c] : 1.0;
    if (cc < best) {
      best = cc;
      bc = c;
    }
  }
  *cls = bc;
  return st->expert_bytes * (isfinite(best) ? best : 1.0);
}

/* Bytes of slot i's replica if it is a move. */
double mp_slot_bytes(const mp_place_layer *st, int i) {
  int e = st->slot_e[i];
  if (!st->cur || e < 0 || mp_cur_rank_holds(st, i / st->S, e)) return 0;
  return st->expert_bytes;
}
double mp_move_price(const mp_place_layer *st, const mp_place_search *sp, int e, int r,
                     double *bytes) {
  if (!st->cur || e < 0 || mp_cur_rank_holds(st, r, e)) return 0;
  int cls;
  if (bytes) *bytes += st->expert_bytes;
  return sp->lambda * mp_move_cost(st, e, r, &cls) + sp->min_gain;
}

double mp_slot_cost(const mp_place_layer *st, int i) {
  int e = st->slot_e[i], c;
  if (e < 0) return 0;
  return mp_move_cost(st, e, i / st->S, &c);
}

void mp_place_layer_moves(const mp_place_layer *st, int64_t *moves, double *bytes,
                          double *cross_bytes, double *cost) {
  *moves = 0;
  *bytes = *cross_bytes = *cost = 0;
  if (!st->cur) return;
  for (int i = 0; i < st->RS; i++) {
    int e = st->slot_e[i], c;
    if (e < 0 || mp_cur_rank_holds(st, i / st->S, e)) continue;
    double cc = mp_move_cost(st, e, i / st->S, &c);
    (*moves)++;
    *bytes += st->expert_bytes;
    *cost += cc;
    if (c == MOEPLACE_LINK_OTHER_NODE) *cross_bytes += st->expert_bytes;
  }
}
