/* EPLB's balancer (see eplb.h): balanced packing, replication by load per
 * replica, and the hierarchical composition, one layer at a time. Ties are
 * broken as numpy's stable sort and argmax break them (lowest index first). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "replay/eplb.h"

#include <stdlib.h>

#include <moeplace.h>

#include "common/error.h"

typedef struct item {
  double w;
  int i;
} item;

static int by_weight_desc(const void *a, const void *b) {
  const item *x = a, *y = b;
  if (x->w != y->w) return x->w > y->w ? -1 : 1;
  return (x->i > y->i) - (x->i < y->i);
}

/* Items w [n] into `packs` packs of exactly n / packs items each: heaviest
 * first, each into the lightest pack with room. pack [n], rank [n] (position
 * in its pack). scratch: n items, then packs loads and packs counts. */
static void balanced_packing(const double *w, int n, int packs, int *pack, int *rank,
                             item *order, double *load, int *items) {
  const int per = n / packs;
  if (per == 1) {
    for (int i = 0; i < n; i++) pack[i] = i, rank[i] = 0;
    return;
  }
  for (int i = 0; i < n; i++) order[i] = (item){w[i], i};
  qsort(order, (size_t)n, sizeof *order, by_weight_desc);
  for (int p = 0; p < packs; p++) load[p] = 0, items[p] = 0;
  for (int k = 0; k < n; k++) {
    int best = -1;
    for (int p = 0; p < packs; p++)
      if (items[p] < per && (best < 0 || load[p] < load[best])) best = p;
    pack[order[k].i] = best;
    rank[order[k].i] = items[best]++;
    load[best] += order[k].w;
  }
}

/* n_log experts w onto n_phy >= n_log replicas: one each, then every extra
 * replica to the expert with the largest load per replica. phy2log [n_phy],
 * cnt [n_log]. */
static void replicate(const double *w, int n_log, int n_phy, int *phy2log, int *cnt) {
  for (int e = 0; e < n_log; e++) phy2log[e] = e, cnt[e] = 1;
  for (int i = n_log; i < n_phy; i++) {
    int hot = 0;
    for (int e = 1; e < n_log; e++)
      if (w[e] / cnt[e] > w[hot] / cnt[hot]) hot = e;
    phy2log[i] = hot;
    cnt[hot]++;
  }
}

/* Scratch of one layer, sized for the largest of its steps. */
typedef struct eplb_ws {
  int *log2mlog, *mlog2log, *gpack, *grank, *phy2mlog, *cnt, *pack, *rank, *items;
  double *gload, *mload, *pload, *load;
  item *order;
} eplb_ws;

static void ws_free(eplb_ws *ws) {
  free(ws->log2mlog), free(ws->mlog2log), free(ws->gpack), free(ws->grank);
  free(ws->phy2mlog), free(ws->cnt), free(ws->pack), free(ws->rank), free(ws->items);
  free(ws->gload), free(ws->mload), free(ws->pload), free(ws->load), free(ws->order);
}

static int ws_alloc(eplb_ws *ws, int E, int P) {
  const size_t n = (size_t)(E > P ? E : P);
  *ws = (eplb_ws){0};
  ws->log2mlog = malloc(n * sizeof(int)), ws->mlog2log = malloc(n * sizeof(int));
  ws->gpack = malloc(n * sizeof(int)), ws->grank = malloc(n * sizeof(int));
  ws->phy2mlog = malloc(n * sizeof(int)), ws->cnt = malloc(n * sizeof(int));
  ws->pack = malloc(n * sizeof(int)), ws->rank = malloc(n * sizeof(int));
  ws->items = malloc(n * sizeof(int)), ws->gload = malloc(n * sizeof(double));
  ws->mload = malloc(n * sizeof(double)), ws->pload = malloc(n * sizeof(double));
  ws->load = malloc(n * sizeof(double)), ws->order = malloc(n * sizeof(item));
  if (!ws->log2mlog || !ws->mlog2log || !ws->gpack || !ws->grank || !ws->phy2mlog || !ws->cnt ||
      !ws->pack || !ws->rank || !ws->items || !ws->gload || !ws->mload || !ws->pload ||
      !ws->load || !ws->order) {
    ws_free(ws);
    return mp_fail(MOEPLACE_ERR_NOMEM, "eplb: out of memory");
  }
  return MOEPLACE_OK;
}

/* Step 1: groups onto nodes; log2mlog / mlog2log renumber the experts so
 * that node n holds "middle" experts [n * E/N, (n+1) * E/N). */
static void groups_to_nodes(const double *w, int E, int N, int G, eplb_ws *ws) {
  const int gs = E / G, gpn = G / N;
  for (int g = 0; g < G; g++) {
    ws->gload[g] = 0;
    for (int j = 0; j < gs; j++) ws->gload[g] += w[g * gs + j];
  }
  balanced_packing(ws->gload, G, N, ws->gpack, ws->grank, ws->order, ws->load, ws->items);
  for (int e = 0; e < E; e++) {
    const int g = e / gs;
    ws->log2mlog[e] = (ws->gpack[g] * gpn + ws->grank[g]) * gs + e % gs;
    ws->mlog2log[ws->log2mlog[e]] = e;
  }
}

/* Steps 2 and 3 for node n: replicas of its E/N experts on its P/N slots,
 * then the replicas onto its R/N ranks by load per replica. */
static void place_node(const double *w, int E, int R, int S, int N, int n, eplb_ws *ws,
                       int *phy2log) {
  const int En = E / N, Pn = R * S / N, base_e = n * En, base_p = n * Pn;
  for (int j = 0; j < En; j++) ws->mload[j] = w[ws->mlog2log[base_e + j]];
  replicate(ws->mload, En, Pn, ws->phy2mlog, ws->cnt);
  for (int i = 0; i < Pn; i++) ws->pload[i] = ws->mload[ws->phy2mlog[i]] / ws->cnt[ws->phy2mlog[i]];
  balanced_packing(ws->pload, Pn, R / N, ws->pack, ws->rank, ws->order, ws->load, ws->items);
  for (int i = 0; i < Pn; i++)
    phy2log[base_p + ws->pack[i] * S + ws->rank[i]] = ws->mlog2log[base_e + ws->phy2mlog[i]];
}

int mp_eplb_layer(const double *w, int E, int R, int S, int nodes, int groups, int *phy2log) {
  int N = nodes, G = groups;
  if (N < 1 || G < 1 || G % N) N = G = 1; // EPLB falls back to its global policy
  if ((long)R * S < E || E % G || R % N || E % N)
    return mp_fail(MOEPLACE_ERR_ARG, "eplb: cannot place %d experts (%d groups) on %d ranks x "
                   "%d slots in %d nodes", E, G, R, S, N);
  eplb_ws ws;
  int rc = ws_alloc(&ws, E, R * S);
  if (rc) return rc;
  groups_to_nodes(w, E, N, G, &ws);
  for (int n = 0; n < N; n++) place_node(w, E, R, S, N, n, &ws, phy2log);
  ws_free(&ws);
  return MOEPLACE_OK;
}
