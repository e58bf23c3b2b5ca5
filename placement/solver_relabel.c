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
 * its expert now, and the same on every rank of one NUMA domain but its
 * holders (struct domains). */
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

/* Domains: the ranks of one (node, package, NUMA) label triple. A replica
 * arriving at a rank that does not hold its expert costs the same on every
 * rank of a domain (the link class depends only on those labels), so the
 * savings of a bin are one figure per domain plus extras on the ranks that
 * hold its experts now: O(replicas + domains) per bin instead of one figure
 * per rank (R^2 for a node of R ranks). */
typedef struct domains {
  int D;              // domains; 0 without a topology (every arrival is far)
  int *of;            // [R] domain of each rank
  int *first, *next;  // [D], [R]: each domain's ranks, ascending
  int *node_first;    // [nodes + 1]: the domains of node n are node_first[n] .. [n + 1] - 1
} domains;

typedef struct rank_key {
  int node, package, numa, r;
} rank_key;

/* Orders by node, package, NUMA label, then rank; 0 only for one rank. */
static int cmp_rank_key(const void *pa, const void *pb) {
  const rank_key *a = pa, *b = pb;
  if (a->node != b->node) return a->node < b->node ? -1 : 1;
  if (a->package != b->package) return a->package < b->package ? -1 : 1;
  if (a->numa != b->numa) return a->numa < b->numa ? -1 : 1;
  return (a->r > b->r) - (a->r < b->r);
}

static int same_domain(const rank_key *a, const rank_key *b) {
  return a->node == b->node && a->package == b->package && a->numa == b->numa;
}

/* Fills dm (arrays sized R, R, R, nodes + 1 by the caller) from the
 * topology. Returns -1 without memory. */
static int find_domains(const moeplace_topology *t, int R, domains *dm) {
  dm->D = 0;
  if (!t) return 0;
  rank_key *k = malloc((size_t)R * sizeof *k);
  if (!k) return -1;
  for (int r = 0; r < R; r++) k[r] = (rank_key){t->node[r], t->package[r], t->numa[r], r};
  qsort(k, (size_t)R, sizeof *k, cmp_rank_key);
  for (int n = 0; n <= t->nodes; n++) dm->node_first[n] = -1;
  int *last = NULL; // the tail of the current domain's rank list
  for (int i = 0; i < R; i++) {
    const int r = k[i].r;
    if (i == 0 || !same_domain(&k[i - 1], &k[i])) {
      if (dm->node_first[k[i].node] < 0) dm->node_first[k[i].node] = dm->D;
      last = &dm->first[dm->D++];
    }
    dm->of[r] = dm->D - 1;
    *last = r;
    last = &dm->next[r];
    *last = -1;
  }
  dm->node_first[t->nodes] = dm->D;
  for (int n = t->nodes - 1; n >= 0; n--) // nodes without ranks: an empty range
    if (dm->node_first[n] < 0) dm->node_first[n] = dm->node_first[n + 1];
  free(k);
  return 0;
}

/* What a replica of each expert saves against its far price (other node):
 * on the non-holder ranks of domain dom[k], save[k] for k in [dstart[e],
 * dstart[e + 1]); on the holder rank rank[k], extra[k] more than its
 * domain's figure, for k in [hstart[e], hstart[e + 1]). Once per layer. */
typedef struct expert_prices {
  int *dstart, *hstart;  // [E + 1] each
  int *dom, *rank;       // [nd], [nh]
  double *save, *extra;  // [nd], [nh]
  size_t nd, nh, dcap, hcap;
} expert_prices;

/* Grows one of the two entry lists to hold one more; -1 without memory. */
static int grow_entries(int **idx, double **val, size_t n, size_t *cap) {
  if (n < *cap) return 0;
  size_t c = *cap ? 2 * *cap : 1024;
  int *i = realloc(*idx, c * sizeof *i);
  if (i) *idx = i;
  double *v = realloc(*val, c * sizeof *v);
  if (v) *val = v;
  if (!i || !v) return -1;
  *cap = c;
  return 0;
}

/* Per-domain and per-rank scratch: best [D] (zero-marked by seen [D],
 * listed in list [D]); dsave [D], dmark [D], dlist [D]; rsave [R],
 * rmark [R], rlist [R]. The marks and sums are zero between calls. */
typedef struct save_scratch {
  double *best, *dsave, *rsave;
  int *seen, *list, *dmark, *dlist, *rmark, *rlist;
} save_scratch;

/* A rank of domain d other than h, -1 if h is its only rank. */
static int other_rank(const domains *dm, int d, int h) {
  const int r = dm->first[d];
  return r != h ? r : dm->next[r];
}

/* Appends expert e's entries (mp_move_cost's rule: the cheapest link from
 * a holder, 0 on a holder). Returns -1 without memory. */
static int price_expert(const mp_place_layer *st, const domains *dm, int e, expert_prices *ep,
                        save_scratch *sc) {
  const moeplace_topology *t = st->topo;
  const double xb = st->expert_bytes, far = xb * (t ? t->cost[MOEPLACE_LINK_OTHER_NODE] : 1.0);
  int nl = 0, rc = 0;
  for (int h = st->cur_head[e]; h >= 0 && dm->D; h = st->cur_next[h]) {
    const int hr = h / st->S, n = t->node[hr];
    for (int d = dm->node_first[n]; d < dm->node_first[n + 1]; d++) {
      const int r = other_rank(dm, d, hr);
      if (r < 0) continue;
      const double c = xb * t->cost[mp_place_link_class(t, hr, r)];
      if (!sc->seen[d]) sc->seen[d] = 1, sc->best[d] = c, sc->list[nl++] = d;
      else if (c < sc->best[d]) sc->best[d] = c;
    }
  }
  for (int m = 0; m < nl && !rc; m++) {
    const int d = sc->list[m];
    if (sc->best[d] >= far) continue;
    if ((rc = grow_entries(&ep->dom, &ep->save, ep->nd, &ep->dcap))) break;
    ep->dom[ep->nd] = d;
    ep->save[ep->nd++] = far - sc->best[d];
  }
  for (int h = st->cur_head[e]; h >= 0 && !rc; h = st->cur_next[h]) {
    const int hr = h / st->S, d = dm->D ? dm->of[hr] : -1;
    if ((rc = grow_entries(&ep->rank, &ep->extra, ep->nh, &ep->hcap))) break;
    ep->rank[ep->nh] = hr; // saves far; its domain's figure (if any) is far - best[d]
    ep->extra[ep->nh++] = d >= 0 && sc->seen[d] && sc->best[d] < far ? sc->best[d] : far;
  }
  for (int m = 0; m < nl; m++) sc->seen[sc->list[m]] = 0;
  return rc;
}

/* Bin b's savings: dsave [D] on the non-holder ranks of each domain listed
 * in dlist [*nd], rsave [R] more on the holder ranks listed in rlist [*nr]
 * (both zero elsewhere; the caller zeroes the listed entries after use). */
static void bin_savings(const mp_place_layer *st, const expert_prices *ep, int b, int *nd,
                        int *nr, save_scratch *sc) {
  const int *bin = st->slot_e + (size_t)b * st->S;
  *nd = *nr = 0;
  for (int k = 0; k < st->S; k++) {
    const int e = bin[k];
    if (e < 0) continue;
    for (int m = ep->dstart[e]; m < ep->dstart[e + 1]; m++) {
      const int d = ep->dom[m];
      if (!sc->dmark[d]) sc->dmark[d] = 1, sc->dlist[(*nd)++] = d;
      sc->dsave[d] += ep->save[m];
    }
    for (int m = ep->hstart[e]; m < ep->hstart[e + 1]; m++) {
      const int r = ep->rank[m];
      if (!sc->rmark[r]) sc->rmark[r] = 1, sc->rlist[(*nr)++] = r;
      sc->rsave[r] += ep->extra[m];
    }
  }
}

/* A greedy candidate of a bin: rank r >= 0, or any free rank of domain
 * -1 - r, with its saving. */
typedef struct relabel_pair {
  double save;
  int r;
} relabel_pair;

/* Scratch of one relabelling. */
typedef struct relabel_work {
  double *cost, *u, *v, *minv; // [R][R] (exact), [R + 1] x 3
  int *to, *p, *way, *used;     // [R], [R + 1] x 3
  int *dfree, *dnext;           // [D] free ranks left in each domain, the next one to try
  domains dm;
  save_scratch sc;
  relabel_pair *pairs; // greedy: bin b's candidates are pairs [start[b] .. start[b + 1])
  int *start;          // [R + 1]
  size_t npairs, cap;
} relabel_work;

/* Takes rank r for bin b. */
static void take_rank(relabel_work *w, int b, int r) {
  w->to[b] = r;
  w->used[r] = 1;
  if (w->dm.D) w->dfree[w->dm.of[r]]--;
}

/* Greedy assignment: bins in decreasing order of their best saving, each
 * to its best rank still free (a holder rank before a domain of the same
 * saving); bins left over take the ranks left over, in order.
 * O(pairs + R log R). Returns the saving. */
static double assign_greedy(const mp_place_layer *st, relabel_work *w) {
  const int R = st->R;
  int *ord = w->way;
  double *key = w->u;
  for (int d = 0; d < w->dm.D; d++) w->dfree[d] = 0, w->dnext[d] = w->dm.first[d];
  for (int b = 0; b < R; b++) {
    ord[b] = b;
    key[b] = 0;
    w->used[b] = 0;
    w->to[b] = -1;
    if (w->dm.D) w->dfree[w->dm.of[b]]++;
    for (int k = w->start[b]; k < w->start[b + 1]; k++) key[b] = fmax(key[b], w->pairs[k].save);
  }
  mp_radix_sort_desc(ord, R, key, st->c_rtmp, st->c_rk0, st->c_rk1);
  double saved = 0;
  for (int n = 0; n < R; n++) {
    const int b = ord[n];
    int best = -1;
    for (int k = w->start[b]; k < w->start[b + 1]; k++) {
      const relabel_pair *c = &w->pairs[k];
      if (c->r >= 0 ? w->used[c->r] : !w->dfree[-1 - c->r]) continue;
      if (best < 0 || c->save > w->pairs[best].save ||
          (c->save == w->pairs[best].save && c->r >= 0 && w->pairs[best].r < 0))
        best = k;
    }
    if (best < 0) continue;
    int r = w->pairs[best].r;
    if (r < 0) { // the domain's first free rank (ranks are only ever taken)
      int *nx = &w->dnext[-1 - r];
      while (w->used[*nx]) *nx = w->dm.next[*nx];
      r = *nx;
    }
    take_rank(w, b, r);
    saved += w->pairs[best].save;
  }
  for (int b = 0, r = 0; b < R; b++) {
    if (w->to[b] >= 0) continue;
    while (w->used[r]) r++;
    take_rank(w, b, r);
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

/* Bin b's row of the exact cost matrix (its saving on every rank, negated),
 * or its greedy candidates; then zeroes its savings. Returns its saving on
 * its present rank b, or -1 without memory (savings are >= 0). */
static double bin_row(const mp_place_layer *st, relabel_work *w, int b, int exact, int nd,
                      int nr) {
  save_scratch *sc = &w->sc;
  const int R = st->R, *of = w->dm.of, D = w->dm.D;
  const double now = (D ? sc->dsave[of[b]] : 0) + sc->rsave[b];
  int rc = 0;
  if (exact)
    for (int r = 0; r < R; r++) w->cost[(size_t)b * R + r] = -((D ? sc->dsave[of[r]] : 0) + sc->rsave[r]);
  else
    w->start[b] = (int)w->npairs;
  for (int m = 0; m < nr; m++) {
    const int r = sc->rlist[m];
    const double s = (D ? sc->dsave[of[r]] : 0) + sc->rsave[r];
    if (!exact && s > 0 && !rc) rc = push_pair(w, s, r);
  }
  for (int m = 0; m < nd; m++) {
    const int d = sc->dlist[m];
    if (!exact && sc->dsave[d] > 0 && !rc) rc = push_pair(w, sc->dsave[d], -1 - d);
  }
  for (int m = 0; m < nr; m++) sc->rsave[sc->rlist[m]] = 0, sc->rmark[sc->rlist[m]] = 0;
  for (int m = 0; m < nd; m++) sc->dsave[sc->dlist[m]] = 0, sc->dmark[sc->dlist[m]] = 0;
  return rc ? -1 : now;
}

/* The rank of each bin (to [R]), the saving of that labelling and of the
 * present one. Returns -1 without memory. */
static int best_labels(const mp_place_layer *st, relabel_work *w, double *saved, double *saved_now) {
  const int R = st->R, exact = R <= RELABEL_EXACT_RANKS;
  expert_prices ep = {0};
  ep.dstart = malloc(((size_t)st->E + 1) * sizeof *ep.dstart);
  ep.hstart = malloc(((size_t)st->E + 1) * sizeof *ep.hstart);
  int rc = ep.dstart && ep.hstart ? find_domains(st->topo, R, &w->dm) : -1;
  for (int e = 0; e < st->E && !rc; e++) {
    ep.dstart[e] = (int)ep.nd;
    ep.hstart[e] = (int)ep.nh;
    rc = price_expert(st, &w->dm, e, &ep, &w->sc);
  }
  if (!rc) ep.dstart[st->E] = (int)ep.nd, ep.hstart[st->E] = (int)ep.nh;
  *saved_now = 0;
  for (int b = 0; b < R && !rc; b++) {
    int nd, nr;
    bin_savings(st, &ep, b, &nd, &nr, &w->sc);
    const double now = bin_row(st, w, b, exact, nd, nr);
    if (now < 0) rc = -1;
    else *saved_now += now;
  }
  free(ep.dstart);
  free(ep.hstart);
  free(ep.dom);
  free(ep.rank);
  free(ep.save);
  free(ep.extra);
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
  const size_t R1 = (size_t)R + 1, Rz = (size_t)R;
  relabel_work w = {0};
  // doubles: cost [R][R] (exact), u, v, minv [R + 1]; best, dsave [R] (D <= R), rsave [R]
  // ints: to [R], p, way, used [R + 1], dfree, dnext [R], domains: of, first, next [R],
  // node_first [nodes + 1], start [R + 1], seen, list, dlist, rlist [R];
  // zeroed: dmark, rmark [R]
  double *dbl = calloc((exact ? Rz * R : 0) + 3 * R1 + 3 * Rz, sizeof *dbl);
  int *in = malloc((11 * Rz + 4 * R1 + (size_t)nodes + 1) * sizeof *in);
  int *zero = calloc(2 * Rz, sizeof *zero);
  double saved = 0, saved_now = 0;
  if (dbl && in && zero) {
    w.cost = dbl;
    w.u = w.cost + (exact ? Rz * R : 0);
    w.v = w.u + R1;
    w.minv = w.v + R1;
    w.sc.best = w.minv + R1;
    w.sc.dsave = w.sc.best + Rz;
    w.sc.rsave = w.sc.dsave + Rz;
    w.to = in;
    w.p = w.to + Rz;
    w.way = w.p + R1;
    w.used = w.way + R1;
    w.dfree = w.used + R1;
    w.dnext = w.dfree + Rz;
    w.dm.of = w.dnext + Rz;
    w.dm.first = w.dm.of + Rz;
    w.dm.next = w.dm.first + Rz;
    w.start = w.dm.next + Rz;
    w.sc.seen = w.start + R1;
    w.sc.list = w.sc.seen + Rz;
    w.sc.dlist = w.sc.list + Rz;
    w.sc.rlist = w.sc.dlist + Rz;
    w.dm.node_first = w.sc.rlist + Rz;
    w.sc.dmark = zero;
    w.sc.rmark = zero + R;
    for (int i = 0; i < R; i++) w.sc.seen[i] = 0;
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
