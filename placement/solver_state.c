/* Solver state bookkeeping: allocation of a layer's working state, the
 * elementary slot operations (put, take, lookups), the snapshot used to undo
 * a rejected local-search change, and the export of a finished state
 * (slot alignment to the current placement, phy2log and shares). Replicas
 * enter and leave slots only through mp_st_put and mp_st_take, which keep the
 * replica lists, replica counts and free-slot counts consistent with the
 * slots; water-filling, the transfers and the search move tokens between
 * replicas by adjusting slot_x and load together. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stdlib.h>
#include <string.h>

#include "placement/solver_internal.h"

int mp_place_layer_init(mp_place_layer *st, int E, int R, int S, const moeplace_topology *topo) {
  memset(st, 0, sizeof *st);
  st->E = E;
  st->R = R;
  st->S = S;
  st->RS = R * S;
  st->topo = topo;
  size_t RS = (size_t)R * S, big = (size_t)(E > st->RS ? E : st->RS);
  if ((size_t)R > big) big = R;
  st->slot_e = malloc(RS * sizeof(int));
  st->slot_x = malloc(RS * sizeof(double));
  st->load = malloc((size_t)R * sizeof(double));
  st->head = malloc((size_t)E * sizeof(int));
  st->next = malloc(RS * sizeof(int));
  st->cnt = malloc((size_t)E * sizeof(int));
  st->nfree = malloc((size_t)R * sizeof(int));
  st->cur_head = malloc((size_t)E * sizeof(int));
  st->cur_next = malloc(RS * sizeof(int));
  st->iscratch = malloc(2 * big * sizeof(int));
  st->dscratch = malloc(2 * big * sizeof(double));
  st->sv_slot_e = malloc(RS * sizeof(int));
  st->sv_slot_x = malloc(RS * sizeof(double));
  st->sv_load = malloc((size_t)R * sizeof(double));
  st->sv_head = malloc((size_t)E * sizeof(int));
  st->sv_next = malloc(RS * sizeof(int));
  st->sv_cnt = malloc((size_t)E * sizeof(int));
  st->sv_nfree = malloc((size_t)R * sizeof(int));
  st->c_counts = malloc((size_t)E * sizeof(int));
  st->c_eheap = malloc((size_t)E * sizeof(int));
  st->c_reps = malloc(RS * sizeof(int));
  st->c_ord = malloc(RS * sizeof(int));
  st->c_key = malloc(RS * sizeof(double));
  st->c_rh = malloc((size_t)R * sizeof(int));
  st->c_skip = malloc((size_t)R * sizeof(int));
  st->t_int = malloc(16 * (size_t)R * sizeof(int));
  st->c_rtmp = malloc(big * sizeof(int));
  st->c_rk0 = malloc(big * sizeof(uint64_t));
  st->c_rk1 = malloc(big * sizeof(uint64_t));
  st->hcap = R + 2 * (2 * R + (int)RS) + 8;
  st->h_key = malloc(2 * (size_t)st->hcap * sizeof(double));
  st->h_val = malloc(2 * (size_t)st->hcap * sizeof(int));
  st->h_stamp = malloc(2 * (size_t)st->hcap * sizeof(int));
  st->t_dbl = malloc((size_t)R * sizeof(double));
  st->ev_mark = calloc((size_t)R, 1);
  if (!st->c_rtmp || !st->c_rk0 || !st->c_rk1 || !st->t_int || !st->t_dbl || !st->ev_mark ||
      !st->h_key || !st->h_val || !st->h_stamp) {
    mp_place_layer_free(st);
    return -1;
  }
  if (!st->c_counts || !st->c_eheap || !st->c_reps || !st->c_ord || !st->c_key || !st->c_rh ||
      !st->c_skip) {
    mp_place_layer_free(st);
    return -1;
  }
  if (!st->slot_e || !st->slot_x || !st->load || !st->head || !st->next || !st->cnt ||
      !st->nfree || !st->cur_head || !st->cur_next || !st->iscratch || !st->dscratch ||
      !st->sv_slot_e || !st->sv_slot_x || !st->sv_load || !st->sv_head || !st->sv_next ||
      !st->sv_cnt || !st->sv_nfree) {
    mp_place_layer_free(st);
    return -1;
  }
  return 0;
}

void mp_place_layer_free(mp_place_layer *st) {
  free(st->slot_e);
  free(st->slot_x);
  free(st->load);
  free(st->head);
  free(st->next);
  free(st->cnt);
  free(st->nfree);
  free(st->cur_head);
  free(st->cur_next);
  free(st->iscratch);
  free(st->dscratch);
  free(st->sv_slot_e);
  free(st->sv_slot_x);
  free(st->sv_load);
  free(st->sv_head);
  free(st->sv_next);
  free(st->sv_cnt);
  free(st->sv_nfree);
  free(st->c_counts);
  free(st->c_eheap);
  free(st->c_reps);
  free(st->c_ord);
  free(st->c_key);
  free(st->c_rh);
  free(st->c_skip);
  free(st->t_int);
  free(st->c_rtmp);
  free(st->c_rk0);
  free(st->c_rk1);
  free(st->t_dbl);
  free(st->ev_mark);
  free(st->h_key);
  free(st->h_val);
  free(st->h_stamp);
  memset(st, 0, sizeof *st);
}

/* ---- elementary state operations ------------------------------------- */

void mp_st_clear(mp_place_layer *st) {
  for (int i = 0; i < st->RS; i++) {
    st->slot_e[i] = -1;
    st->slot_x[i] = 0;
    st->next[i] = -1;
  }
  for (int e = 0; e < st->E; e++) {
    st->head[e] = -1;
    st->cnt[e] = 0;
  }
  for (int r = 0; r < st->R; r++) {
    st->load[r] = 0;
    st->nfree[r] = st->S;
  }
}

void mp_st_put(mp_place_layer *st, int i, int e, double x) {
  st->slot_e[i] = e;
  st->slot_x[i] = x;
  st->next[i] = st->head[e];
  st->head[e] = i;
  st->cnt[e]++;
  st->nfree[i / st->S]--;
  st->load[i / st->S] += x;
}

/* Empties slot i; returns the tokens it carried. */
double mp_st_take(mp_place_layer *st, int i) {
  int e = st->slot_e[i];
  double x = st->slot_x[i];
  if (st->head[e] == i) {
    st->head[e] = st->next[i];
  } else {
    int s = st->head[e];
    while (st->next[s] != i) s = st->next[s];
    st->next[s] = st->next[i];
  }
  st->next[i] = -1;
  st->slot_e[i] = -1;
  st->slot_x[i] = 0;
  st->cnt[e]--;
  st->nfree[i / st->S]++;
  st->load[i / st->S] -= x;
  return x;
}

int mp_st_free_slot(const mp_place_layer *st, int r) {
  for (int k = 0; k < st->S; k++)
    if (st->slot_e[r * st->S + k] < 0) return r * st->S + k;
  return -1;
}

void mp_st_save(mp_place_layer *st) {
  memcpy(st->sv_slot_e, st->slot_e, (size_t)st->RS * sizeof(int));
  memcpy(st->sv_slot_x, st->slot_x, (size_t)st->RS * sizeof(double));
  memcpy(st->sv_next, st->next, (size_t)st->RS * sizeof(int));
  memcpy(st->sv_load, st->load, (size_t)st->R * sizeof(double));
  memcpy(st->sv_nfree, st->nfree, (size_t)st->R * sizeof(int));
  memcpy(st->sv_head, st->head, (size_t)st->E * sizeof(int));
  memcpy(st->sv_cnt, st->cnt, (size_t)st->E * sizeof(int));
}

void mp_st_restore(mp_place_layer *st) {
  memcpy(st->slot_e, st->sv_slot_e, (size_t)st->RS * sizeof(int));
  memcpy(st->slot_x, st->sv_slot_x, (size_t)st->RS * sizeof(double));
  memcpy(st->next, st->sv_next, (size_t)st->RS * sizeof(int));
  memcpy(st->load, st->sv_load, (size_t)st->R * sizeof(double));
  memcpy(st->nfree, st->sv_nfree, (size_t)st->R * sizeof(int));
  memcpy(st->head, st->sv_head, (size_t)st->E * sizeof(int));
  memcpy(st->cnt, st->sv_cnt, (size_t)st->E * sizeof(int));
}

void mp_place_layer_copy(mp_place_layer *dst, const mp_place_layer *src) {
  memcpy(dst->slot_e, src->slot_e, (size_t)src->RS * sizeof(int));
  memcpy(dst->slot_x, src->slot_x, (size_t)src->RS * sizeof(double));
  memcpy(dst->next, src->next, (size_t)src->RS * sizeof(int));
  memcpy(dst->load, src->load, (size_t)src->R * sizeof(double));
  memcpy(dst->nfree, src->nfree, (size_t)src->R * sizeof(int));
  memcpy(dst->head, src->head, (size_t)src->E * sizeof(int));
  memcpy(dst->cnt, src->cnt, (size_t)src->E * sizeof(int));
  dst->w = src->w;
}

int mp_place_top_loaded(const mp_place_layer *st, int k, int *top) {
  int nt = 0;
  for (int r = 0; r < st->R; r++) {
    int i = nt < k ? nt++ : k - 1; // the slot r may take: a free one, or the lightest kept
    if (nt == k && i == k - 1 && r >= k && st->load[top[i]] >= st->load[r]) continue;
    top[i] = r;
    while (i > 0 && st->load[top[i - 1]] < st->load[top[i]]) { // insertion, decreasing load
      int t = top[i];
      top[i] = top[i - 1];
      top[i - 1] = t;
      i--;
    }
  }
  return nt;
}

double mp_place_layer_max(const mp_place_layer *st) {
  double m = 0;
  for (int r = 0; r < st->R; r++)
    if (st->load[r] > m) m = st->load[r];
  return m;
}
void mp_place_layer_align(mp_place_layer *st) {
  if (!st->cur) return;
  const int S = st->S;
  int *e2 = st->iscratch;
  double *x2 = st->dscratch;
  for (int r = 0; r < st->R; r++) {
    int *se = st->slot_e + r * S;
    const int *ce = st->cur + (size_t)r * S;
    for (int k = 0; k < S; k++) {
      e2[k] = -1;
      x2[k] = 0;
    }
    // replicas the rank keeps go to their current slot
    int *used = e2 + S;
    for (int k = 0; k < S; k++) used[k] = 0;
    for (int k = 0; k < S; k++) {
      if (ce[k] < 0) continue;
      for (int m = 0; m < S; m++)
        if (!used[m] && se[m] == ce[k]) {
          e2[k] = se[m];
          x2[k] = st->slot_x[r * S + m];
          used[m] = 1;
          break;
        }
    }
    // new replicas fill the remaining slots in order
    int k = 0;
    for (int m = 0; m < S; m++) {
      if (used[m] || se[m] < 0) continue;
      while (e2[k] >= 0) k++;
      e2[k] = se[m];
      x2[k] = st->slot_x[r * S + m];
    }
    // rebuild the rank's slots (and the replica lists they belong to)
    for (int m = 0; m < S; m++)
      if (se[m] >= 0) mp_st_take(st, r * S + m);
    for (int m = 0; m < S; m++)
      if (e2[m] >= 0) mp_st_put(st, r * S + m, e2[m], x2[m]);
  }
}

void mp_place_layer_export(const mp_place_layer *st, int *phy2log, double *share) {
  double *sum = st->dscratch;
  for (int e = 0; e < st->E; e++) sum[e] = 0;
  for (int i = 0; i < st->RS; i++)
    if (st->slot_e[i] >= 0) sum[st->slot_e[i]] += st->slot_x[i];
  for (int i = 0; i < st->RS; i++) {
    int e = st->slot_e[i];
    phy2log[i] = e;
    if (e < 0)
      share[i] = 0;
    else if (st->even)
      share[i] = 1.0 / st->cnt[e];
    else if (sum[e] > 0)
      share[i] = st->slot_x[i] / sum[e];
    else
      share[i] = 1.0 / st->cnt[e];
  }
}
