/* Transfers between components, the balancing step shared by the fresh,
 * home and repair placements.
 *
 * Ranks linked by a split expert form a component whose load can be moved
 * freely inside it (by shifting the split expert's shares), so what matters
 * is each component's excess over T x size. The most over-loaded component
 * hands tokens of its largest replica to a new replica in the most
 * under-loaded component that has a free slot; the two merge. Each split
 * merges two components, so R - 1 spare slots are enough in principle
 * (McNaughton's wrap-around, with the no-duplicate rule). The split experts
 * form a forest over the ranks; a post-order pass over each tree then sets
 * the shares exactly so that every rank of a component gets the component's
 * mean. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include "placement/solver_internal.h"

/* Lazy max-heap of (key, component root, stamp): entries whose stamp is no
 * longer the root's current stamp are skipped when popped. */
typedef struct lheap {
  double *key;
  int *val, *stamp, n;
} lheap;

static void lheap_push(lheap *h, double key, int val, int stamp) {
  int i = h->n++;
  while (i > 0) {
    int p = (i - 1) / 2;
    if (h->key[p] >= key) break;
    h->key[i] = h->key[p];
    h->val[i] = h->val[p];
    h->stamp[i] = h->stamp[p];
    i = p;
  }
  h->key[i] = key;
  h->val[i] = val;
  h->stamp[i] = stamp;
}

static void lheap_pop(lheap *h) {
  double k = h->key[--h->n];
  int v = h->val[h->n], sm = h->stamp[h->n], i = 0;
  for (;;) {
    int l = 2 * i + 1, m = l;
    if (l >= h->n) break;
    if (l + 1 < h->n && h->key[l + 1] > h->key[l]) m = l + 1;
    if (h->key[m] <= k) break;
    h->key[i] = h->key[m];
    h->val[i] = h->val[m];
    h->stamp[i] = h->stamp[m];
    i = m;
  }
  h->key[i] = k;
  h->val[i] = v;
  h->stamp[i] = sm;
}

void mp_transfer_components(mp_place_layer *st, double T) {
  const int R = st->R, S = st->S;
  int *par = st->t_int, *nxt = par + R, *tail = nxt + R, *csize = tail + R, *cfree = csize + R;
  int *ea = cfree + R, *eb = ea + R, *adj_head = eb + R, *adj_nxt = adj_head + R; // [2R]
  int *order = adj_nxt + 2 * R, *pedge = order + R, *stack = pedge + R;
  int *rep = stack + R, *stamp = rep + R; // heaviest rank of a component; version
  double *cload = st->t_dbl;
  const double eps = 1e-12 * (T > 0 ? T : 1);
  lheap over = {st->h_key, st->h_val, st->h_stamp, 0};
  lheap under = {st->h_key + st->hcap, st->h_val + st->hcap, st->h_stamp + st->hcap, 0};
  for (int r = 0; r < R; r++) {
    par[r] = r;
    nxt[r] = -1;
    tail[r] = r;
    csize[r] = 1;
    cfree[r] = st->nfree[r];
    cload[r] = st->load[r];
    rep[r] = r;
    stamp[r] = 0;
    double d = cload[r] - T;
    if (d > eps) lheap_push(&over, d, r, 0);
    else if (-d > eps && cfree[r] > 0) lheap_push(&under, -d, r, 0);
  }
  int nedge = 0;
  // (re)files a component in the heap its balance calls for
  #define FILE_COMP(c)                                                    \
    do {                                                                  \
      double d_ = cload[c] - T * csize[c];                                \
      stamp[c]++;                                                         \
      if (d_ > eps && over.n < st->hcap) lheap_push(&over, d_, c, stamp[c]); \
      else if (-d_ > eps && cfree[c] > 0 && under.n < st->hcap)           \
        lheap_push(&under, -d_, c, stamp[c]);                             \
    } while (0)
  for (int guard = 0; guard < 2 * R + st->RS; guard++) {
    while (over.n > 0 && (par[over.val[0]] != over.val[0] || over.stamp[0] != stamp[over.val[0]]))
      lheap_pop(&over);
    while (under.n > 0 &&
           (par[under.val[0]] != under.val[0] || under.stamp[0] != stamp[under.val[0]]))
      lheap_pop(&under);
    if (over.n == 0 || under.n == 0) break;
    const int co = over.val[0], cu = under.val[0];
    const double ex = over.key[0], df = under.key[0];
    // the largest replica on co's heaviest rank whose expert a free rank of
    // cu lacks
    // (with a current placement, a rank that holds the expert now is
    // preferred: that split moves nothing)
    int best = -1, bq = -1, free_best = -1, free_q = -1;
    {
      const int r = rep[co];
      for (int k = 0; k < S; k++) {
        int i = r * S + k, e = st->slot_e[i];
        if (e < 0 || st->slot_x[i] <= 0) continue;
        for (int q = cu; q >= 0; q = nxt[q]) {
          if (st->nfree[q] == 0 || mp_st_rank_holds(st, q, e)) continue;
          if (st->cur && mp_cur_rank_holds(st, q, e)) {
            if (free_best < 0 || st->slot_x[i] > st->slot_x[free_best]) free_best = i, free_q = q;
          } else if (best < 0 || st->slot_x[i] > st->slot_x[best]) {
            best = i;
            bq = q;
          }
          if (!st->cur) break;
        }
      }
    }
    if (free_best >= 0) best = free_best, bq = free_q;
    if (best < 0) { // this pair cannot trade: set the under component aside
      lheap_pop(&under);
      continue;
    }
    lheap_pop(&over);
    lheap_pop(&under);
    const int e = st->slot_e[best], r = best / S;
    double a = ex < df ? ex : df;
    if (a >= st->slot_x[best]) { // relocate the whole replica: no link
      a = st->slot_x[best];
      mp_st_take(st, best);
      mp_st_put(st, mp_st_free_slot(st, bq), e, a);
      cload[co] -= a;
      cload[cu] += a;
      cfree[co]++;
      cfree[cu]--;
      if (st->load[bq] > st->load[rep[cu]]) rep[cu] = bq;
      if (r == rep[co])
        for (int m = co; m >= 0; m = nxt[m])
          if (st->load[m] > st->load[rep[co]]) rep[co] = m;
      FILE_COMP(co);
      FILE_COMP(cu);
      continue;
    }
    st->slot_x[best] -= a;
    st->load[r] -= a;
    int j = mp_st_free_slot(st, bq);
    mp_st_put(st, j, e, a);
    ea[nedge] = best;
    eb[nedge] = j;
    nedge++;
    // merge cu into co
    for (int m = cu; m >= 0; m = nxt[m]) par[m] = co;
    nxt[tail[co]] = cu;
    tail[co] = tail[cu];
    csize[co] += csize[cu];
    cfree[co] += cfree[cu] - 1;
    cload[co] += cload[cu];
    if (st->load[rep[cu]] > st->load[rep[co]]) rep[co] = rep[cu];
    FILE_COMP(co);
  }
  #undef FILE_COMP
  if (nedge == 0) return;
  // shares along each tree: children push their excess over the mean to
  // their parent through the split expert linking them
  for (int r = 0; r < R; r++) adj_head[r] = -1;
  for (int k = 0; k < nedge; k++) {
    int ra = ea[k] / S, rb = eb[k] / S;
    adj_nxt[2 * k] = adj_head[ra];
    adj_head[ra] = 2 * k;
    adj_nxt[2 * k + 1] = adj_head[rb];
    adj_head[rb] = 2 * k + 1;
  }
  for (int r = 0; r < R; r++) pedge[r] = -2; // unvisited
  for (int root = 0; root < R; root++) {
    if (par[root] != root || csize[root] == 1) continue;
    const double avg = cload[root] / csize[root];
    int n = 0, sp = 0;
    stack[sp++] = root;
    pedge[root] = -1;
    while (sp > 0) {
      int v = stack[--sp];
      order[n++] = v;
      for (int h = adj_head[v]; h >= 0; h = adj_nxt[h]) {
        int k = h >> 1, u = (h & 1 ? ea[k] : eb[k]) / S; // the other end
        if (pedge[u] != -2) continue;
        pedge[u] = h ^ 1; // the half-edge seen from u
        stack[sp++] = u;
      }
    }
    for (int t = n - 1; t > 0; t--) {
      int v = order[t], h = pedge[v], k = h >> 1;
      int sv = h & 1 ? eb[k] : ea[k], sp2 = h & 1 ? ea[k] : eb[k]; // slot on v, on parent
      double move = st->load[v] - avg;
      if (move > st->slot_x[sv]) move = st->slot_x[sv];
      if (move < -st->slot_x[sp2]) move = -st->slot_x[sp2];
      st->slot_x[sv] -= move;
      st->slot_x[sp2] += move;
      st->load[v] -= move;
      st->load[sp2 / S] += move;
    }
  }
}
