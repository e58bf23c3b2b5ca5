/* Relabelling a fresh placement's ranks to the current placement.
 *
 * A fresh placement ignores the current one (st->cur is NULL while it is
 * built), and its solver sees no topology: it fixes which experts share a
 * rank, not which rank that is. Any permutation of its ranks has the same
 * rank loads, but the migration it needs depends on the labels: a fresh
 * layer whose "rank 0" content lands on the rank that holds most of those
 * experts now keeps them in place. mp_place_layer_relabel picks the
 * permutation of least migration cost (bytes x link class, mp_move_cost),
 * an assignment problem over R x R: exactly by the Hungarian method with
 * potentials (Kuhn-Munkres, O(R^3)) up to RELABEL_EXACT_RANKS ranks,
 * greedily above. The costs are gathered sparsely: a replica costs less
 * than its far (other-node) price only on the ranks of a node that holds
 * its expert now. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdlib.h>

#include "placement/solver_internal.h"
#include "placement/topology.h"

/* Minimum-cost perfect matching of rows to columns of cost [n][n]: writes
 * col_of [n] (row b -> column col_of[b]). Scratch: u, v [n + 1], minv [n + 1]
 * doubles; p, way [n + 1], used [n + 1] ints. Rows and columns are 1-based
 * inside (0 is the virtual start), as in the textbook form. */
static void assign_min_cost(int n, const double *cost, double *u, double *v, double *minv, int *p,
                            int *way, int *used, int *col_of) {
  for (int j = 0; j <= n; j++) u[j] = v[j] = 0, p[j] = 0, way[j] = 0;
  for (int i = 1; i <= n; i++) {
    p[0] = i;
    int j0 = 0;
    for (int j = 0; j <= n; j++) minv[j] = INFINITY, used[j] = 0;
    do { // grow an alternating tree from row i until a free column is reached
      used[j0] = 1;
      const int i0 = p[j0];
      double delta = INFINITY;
      int j1 = 0;
      for (int j = 1; j <= n; j++) {
        if (used[j]) continue;
        const double cur = cost[(size_t)(i0 - 1) * n + (j - 1)] - u[i0] - v[j];
        if (cur < minv[j]) minv[j] = cur, way[j] = j0;
        if (minv[j] < delta) delta = minv[j], j1 = j;
      }
      for (int j = 0; j <= n; j++) {
        if (used[j]) u[p[j]] += delta, v[j] -= delta;
        else minv[j] -= delta;
      }
      j0 = j1;
    } while (p[j0] != 0);
    do { // flip the augmenting path
      const int j1 = way[j0];
      p[j0] = p[j1];
      j0 = j1;
    } while (j0);
  }
  for (int j = 1; j <= n; j++) col_of[p[j] - 1] = j - 1;
}

/* Above this many ranks the assignment is greedy (assign_greedy): the
 * exact method is O(R^3), about 3 ms per layer at 128 ranks. */
#define RELABEL_EXACT_RANKS 128

/* Node rank lists of the layer's topology: first [nodes], next [R]. */
typedef struct node_lists {
  int *first, *next;
} node_lists;

/* Per-rank scratch of price_expert: best [R] (an expert's cheapest
 * arrival per rank), seen [R] (zero between calls), list [R]; mark [R]
 * (zero between calls) for bin_savings. */
typedef struct save_scratch {
  double *best;
  int *seen, *mark, *list;
} save_scratch;

/* What a replica of each expert saves on the ranks of its holders' nodes
 * against its far price (other node), where it saves anything: expert e's
 * are rank[k], save[k] for k in [start[e], start[e + 1]). Computed once per
 * layer: an expert of c replicas sits in about c bins of the fresh
 * placement, so pricing it per bin cost c times as much (1024 ranks on one
 * node, 16 experts: 64x). */
typedef struct expert_prices {
  int *start, *rank; // [E + 1], [n]
  double *save;      // [n]
  size_t n, cap;
} expert_prices;

/* Appends expert e's savings (its price on a rank: mp_move_cost's rule,
 * the cheapest link from a holder, 0 on a holder), in the order its holders
 * and their nodes' ranks are met. Returns -1 without memory. */
static int price_expert(const mp_place_layer *st, const node_lists *nl, int e, expert_prices *ep,
                        save_scratch *sc) {
  const moeplace_topology *t = st->topo;
  const double xb = st->expert_bytes, far = xb * (t ? t->cost[MOEPLACE_LINK_OTHER_NODE] : 1.0);
  int nl2 = 0;
  for (int h = st->cur_head[e]; h >= 0; h = st->cur_next[h]) {
    const int hr = h / st->S;
    for (int r = t ? nl->first[t->node[hr]] : hr; r >= 0; r = t ? nl->next[r] : -1) {
      const double c = r == hr ? 0 : xb * t->cost[mp_place_link_class(t, hr, r)];
      if (!sc->seen[r]) sc->seen[r] = 1, sc->best[r] = c, sc->list[nl2++] = r;
      else if (c < sc->best[r]) sc->best[r] = c;
    }
  }
  int rc = 0;
  for (int m = 0; m < nl2; m++) {
    const int r = sc->list[m];
    sc->seen[r] = 0;
    if (sc->best[r] >= far || rc) continue;
    if (ep->n == ep->cap) {
      size_t cap = ep->cap ? 2 * ep->cap : 1024;
      int *rk = realloc(ep->rank, cap * sizeof *rk);
      if (rk) ep->rank = rk;
      double *sv = realloc(ep->save, cap * sizeof *sv);
      if (sv) ep->save = sv;
      if (!rk || !sv) {
        rc = -1;
        continue;
      }
      ep->cap = cap;
    }
    ep->rank[ep->n] = r;
    ep->save[ep->n++] = far - sc->best[r];
  }
  return rc;
}

/* What bin b's replicas save on each rank r against the price they have far
 * from every current holder (on another node): save [R] (zero on entry and
 * outside the listed ranks), non-zero only on the ranks of a holder's node,
 * listed in near [*nn]. */
static void bin_savings(const mp_place_layer *st, const expert_prices *ep, int b, double *save,
                        int *near, int *nn, save_scratch *sc) {
  const int *bin = st->slot_e + (size_t)b * st->S;
  *nn = 0;
  for (int k = 0; k < st->S; k++) {
    if (bin[k] < 0) continue;
    for (int m = ep->start[bin[k]]; m < ep->start[bin[k] + 1]; m++) {
      const int r = ep->rank[m];
      if (!sc->mark[r]) sc->mark[r] = 1, near[(*nn)++] = r;
      save[r] += ep->save[m];
    }
  }
  for (int m = 0; m < *nn; m++) sc->mark[near[m]] = 0;
}

/* A rank a bin could go to, with its saving (the greedy's candidates). */
typedef struct relabel_pair {
  double save;
  int r;
} relabel_pair;

/* Scratch of one relabelling. */
typedef struct relabel_work {
  double *save, *cost, *u, *v, *minv; // [R], [R][R] (exact), [R + 1] x 3
  int *near, *to, *p, *way, *used, *first, *next;
  save_scratch sc;
  relabel_pair *pairs; // greedy: bin b's candidates are pairs [start[b] .. start[b + 1])
  int *start;          // [R + 1]
  size_t npairs, cap;
} relabel_work;

/* Greedy assignment: bins in decreasing order of their best saving, each
 * to its best rank still free; bins left over take the ranks left over, in
 * order. O(pairs + R log R). Returns the saving. */
static double assign_greedy(const mp_place_layer *st, relabel_work *w) {
  const int R = st->R;
  int *ord = w->way, *taken = w->used;
  double *key = w->u;
  for (int b = 0; b < R; b++) {
    ord[b] = b;
    key[b] = 0;
    taken[b] = 0;
    w->to[b] = -1;
    for (int k = w->start[b]; k < w->start[b + 1]; k++) key[b] = fmax(key[b], w->pairs[k].save);
  }
  mp_radix_sort_desc(ord, R, key, st->c_rtmp, st->c_rk0, st->c_rk1);
  double saved = 0;
  for (int n = 0; n < R; n++) {
    const int b = ord[n];
    int best = -1;
    for (int k = w->start[b]; k < w->start[b + 1]; k++)
      if (!taken[w->pairs[k].r] && (best < 0 || w->pairs[k].save > w->pairs[best].save)) best = k;
    if (best < 0) continue;
    w->to[b] = w->pairs[best].r;
    taken[w->to[b]] = 1;
    saved += w->pairs[best].save;
  }
  for (int b = 0, r = 0; b < R; b++) {
    if (w->to[b] >= 0) continue;
    while (taken[r]) r++;
    w->to[b] = r;
    taken[r] = 1;
  }
  return saved;
}

/* Appends a greedy candidate; -1 without memory. */
static int push_pair(relabel_work *w, double save, int r) {
  if (w->npairs == w->cap) {
    size_t cap = w->cap ? 2 * w->cap : 1024;
    relabel_pair *p = realloc(w->pairs, cap * sizeof *p);
    if (!p) return -1;
    w->pairs = p;
    w->cap = cap;
  }
  w->pairs[w->npairs++] = (relabel_pair){save, r};
  return 0;
}

/* The rank of each bin (to [R]), the saving of that labelling and of the
 * present one. Returns -1 without memory. */
static int best_labels(const mp_place_layer *st, relabel_work *w, double *saved, double *saved_now) {
  const int R = st->R, exact = R <= RELABEL_EXACT_RANKS;
  node_lists nl = {w->first, w->next};
  const moeplace_topology *t = st->topo;
  if (t) {
    for (int n = 0; n < t->nodes; n++) nl.first[n] = -1;
    for (int r = R - 1; r >= 0; r--) {
      nl.next[r] = nl.first[t->node[r]];
      nl.first[t->node[r]] = r;
    }
  }
  expert_prices ep = {malloc(((size_t)st->E + 1) * sizeof *ep.start), NULL, NULL, 0, 0};
  int rc = ep.start ? 0 : -1;
  for (int e = 0; e < st->E && !rc; e++) {
    ep.start[e] = (int)ep.n;
    rc = price_expert(st, &nl, e, &ep, &w->sc);
  }
  if (!rc) ep.start[st->E] = (int)ep.n;
  *saved_now = 0;
  for (int b = 0; b < R && !rc; b++) {
    int nn;
    bin_savings(st, &ep, b, w->save, w->near, &nn, &w->sc);
    *saved_now += w->save[b];
    if (exact)
      for (int r = 0; r < R; r++) w->cost[(size_t)b * R + r] = -w->save[r];
    else
      w->start[b] = (int)w->npairs;
    for (int m = 0; m < nn; m++) {
      const int r = w->near[m];
      if (!exact && w->save[r] > 0 && !rc) rc = push_pair(w, w->save[r], r);
      w->save[r] = 0;
    }
  }
  free(ep.start);
  free(ep.rank);
  free(ep.save);
  if (rc) return -1;
  if (!exact) {
    w->start[R] = (int)w->npairs;
    *saved = assign_greedy(st, w);
    return 0;
  }
  assign_min_cost(R, w->cost, w->u, w->v, w->minv, w->p, w->way, w->used, w->to);
  *saved = 0;
  for (int b = 0; b < R; b++) *saved -= w->cost[(size_t)b * R + w->to[b]];
  return 0;
}

void mp_place_layer_relabel(mp_place_layer *st) {
  const int R = st->R, S = st->S;
  if (!st->cur || R < 2) return;
  const int exact = R <= RELABEL_EXACT_RANKS, nodes = st->topo ? st->topo->nodes : 1;
  const size_t R1 = (size_t)R + 1;
  relabel_work w = {0};
  // doubles: save [R], best [R], cost [R][R] (exact), u, v, minv [R + 1];
  // ints: near, to [R], p, way, used [R + 1], next, list [R], first [nodes],
  // start [R + 1]; seen, mark [R]
  double *dbl = calloc(2 * (size_t)R + (exact ? (size_t)R * R : 0) + 3 * R1, sizeof *dbl);
  int *in = malloc((4 * (size_t)R + 4 * R1 + (size_t)nodes) * sizeof *in);
  int *zero = calloc(2 * (size_t)R, sizeof *zero);
  double saved = 0, saved_now = 0;
  if (dbl && in && zero) {
    w.save = dbl;
    w.sc.best = w.save + R;
    w.cost = w.sc.best + R;
    w.u = w.cost + (exact ? (size_t)R * R : 0);
    w.v = w.u + R1;
    w.minv = w.v + R1;
    w.near = in;
    w.to = w.near + R;
    w.p = w.to + R;
    w.way = w.p + R1;
    w.used = w.way + R1;
    w.next = w.used + R1;
    w.sc.list = w.next + R;
    w.start = w.sc.list + R;
    w.first = w.start + R1;
    w.sc.seen = zero;
    w.sc.mark = zero + R;
    if (best_labels(st, &w, &saved, &saved_now)) saved = saved_now; // no memory: keep
  }
  if (saved > saved_now) { // else the labels stay (an optimisation only)
    int *e2 = st->iscratch;
    double *x2 = st->dscratch;
    for (int i = 0; i < st->RS; i++) e2[i] = st->slot_e[i], x2[i] = st->slot_x[i];
    mp_st_clear(st);
    for (int b = 0; b < R; b++) // bin b's slots to rank to[b], in their order
      for (int k = 0; k < S; k++)
        if (e2[b * S + k] >= 0) mp_st_put(st, w.to[b] * S + k, e2[b * S + k], x2[b * S + k]);
  }
  free(dbl);
  free(in);
  free(zero);
  free(w.pairs);
}
