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

/* The components of one run: a union of ranks (par: root of each rank's
 * component; nxt/tail: the ranks of a component as a list from its root)
 * with its size, free slots, load, heaviest rank (rep) and heap stamp; the
 * splits made so far (ea/eb: the two slots of split k) and the two heaps of
 * components above and below T x size. Arrays live in st->t_int/t_dbl. */
typedef struct comps {
  mp_place_layer *st;
  double T, eps;
  int *par, *nxt, *tail, *csize, *cfree, *ea, *eb, *rep, *stamp;
  int *adj_head, *adj_nxt, *order, *pedge, *stack; // the tree pass: [R], [2R], [R] x 3
  double *cload;
  lheap over, under;
  int nedge;
} comps;

/* Every rank its own component, filed by its balance. */
static void comps_init(comps *c, mp_place_layer *st, double T) {
  const int R = st->R;
  c->st = st;
  c->T = T;
  c->eps = 1e-12 * (T > 0 ? T : 1);
  c->par = st->t_int;
  c->nxt = c->par + R;
  c->tail = c->nxt + R;
  c->csize = c->tail + R;
  c->cfree = c->csize + R;
  c->ea = c->cfree + R;
  c->eb = c->ea + R;
  c->adj_head = c->eb + R;
  c->adj_nxt = c->adj_head + R; // [2R]
  c->order = c->adj_nxt + 2 * R;
  c->pedge = c->order + R;
  c->stack = c->pedge + R;
  c->rep = c->stack + R;   // heaviest rank of a component
  c->stamp = c->rep + R;   // version of a component's heap entry
  c->cload = st->t_dbl;
  c->over = (lheap){st->h_key, st->h_val, st->h_stamp, 0};
  c->under = (lheap){st->h_key + st->hcap, st->h_val + st->hcap, st->h_stamp + st->hcap, 0};
  c->nedge = 0;
  for (int r = 0; r < R; r++) {
    c->par[r] = r;
    c->nxt[r] = -1;
    c->tail[r] = r;
    c->csize[r] = 1;
    c->cfree[r] = st->nfree[r];
    c->cload[r] = st->load[r];
    c->rep[r] = r;
    c->stamp[r] = 0;
    double d = c->cload[r] - T;
    if (d > c->eps) lheap_push(&c->over, d, r, 0);
    else if (-d > c->eps && c->cfree[r] > 0) lheap_push(&c->under, -d, r, 0);
  }
}

/* (Re)files component k in the heap its balance calls for. */
static void comps_file(comps *c, int k) {
  double d = c->cload[k] - c->T * c->csize[k];
  c->stamp[k]++;
  if (d > c->eps && c->over.n < c->st->hcap) lheap_push(&c->over, d, k, c->stamp[k]);
  else if (-d > c->eps && c->cfree[k] > 0 && c->under.n < c->st->hcap)
    lheap_push(&c->under, -d, k, c->stamp[k]);
}

/* Drops stale entries from the top of h (merged or re-filed components). */
static void comps_top(comps *c, lheap *h) {
  while (h->n > 0 && (c->par[h->val[0]] != h->val[0] || h->stamp[0] != c->stamp[h->val[0]]))
    lheap_pop(h);
}

/* The largest replica on co's heaviest rank whose expert a free rank of cu
 * lacks (with a current placement, a rank that holds the expert now is
 * preferred: that split moves nothing). Returns its slot, -1 if none, and
 * the receiving rank in *bq. */
static int pick_split(const comps *c, int co, int cu, int *bq) {
  const mp_place_layer *st = c->st;
  const int S = st->S, r = c->rep[co];
  int best = -1, free_best = -1, free_q = -1;
  for (int k = 0; k < S; k++) {
    int i = r * S + k, e = st->slot_e[i];
    if (e < 0 || st->slot_x[i] <= 0) continue;
    for (int q = cu; q >= 0; q = c->nxt[q]) {
      if (st->nfree[q] == 0 || mp_st_rank_holds(st, q, e)) continue;
      if (st->cur && mp_cur_rank_holds(st, q, e)) {
        if (free_best < 0 || st->slot_x[i] > st->slot_x[free_best]) free_best = i, free_q = q;
      } else if (best < 0 || st->slot_x[i] > st->slot_x[best]) {
        best = i;
        *bq = q;
      }
      if (!st->cur) break;
    }
  }
  if (free_best >= 0) best = free_best, *bq = free_q;
  return best;
}

/* Moves the whole replica in slot `best` (a tokens) from co to rank bq of
 * cu: no link between the components. */
static void relocate(comps *c, int co, int cu, int best, int bq, double a) {
  mp_place_layer *st = c->st;
  const int e = st->slot_e[best], r = best / st->S;
  mp_st_take(st, best);
  mp_st_put(st, mp_st_free_slot(st, bq), e, a);
  c->cload[co] -= a;
  c->cload[cu] += a;
  c->cfree[co]++;
  c->cfree[cu]--;
  if (st->load[bq] > st->load[c->rep[cu]]) c->rep[cu] = bq;
  if (r == c->rep[co])
    for (int m = co; m >= 0; m = c->nxt[m])
      if (st->load[m] > st->load[c->rep[co]]) c->rep[co] = m;
  comps_file(c, co);
  comps_file(c, cu);
}

/* Splits a tokens of slot `best` off into a new replica on rank bq of cu;
 * the split links the components, cu merges into co. */
static void split_merge(comps *c, int co, int cu, int best, int bq, double a) {
  mp_place_layer *st = c->st;
  const int e = st->slot_e[best], r = best / st->S;
  st->slot_x[best] -= a;
  st->load[r] -= a;
  int j = mp_st_free_slot(st, bq);
  mp_st_put(st, j, e, a);
  c->ea[c->nedge] = best;
  c->eb[c->nedge] = j;
  c->nedge++;
  for (int m = cu; m >= 0; m = c->nxt[m]) c->par[m] = co;
  c->nxt[c->tail[co]] = cu;
  c->tail[co] = c->tail[cu];
  c->csize[co] += c->csize[cu];
  c->cfree[co] += c->cfree[cu] - 1;
  c->cload[co] += c->cload[cu];
  if (st->load[c->rep[cu]] > st->load[c->rep[co]]) c->rep[co] = c->rep[cu];
  comps_file(c, co);
}

/* Sets the shares of the tree rooted at `root` so that every rank gets avg:
 * in post-order, each rank pushes its excess over avg to its parent through
 * the split expert linking them (as far as that replica's tokens allow). */
static void tree_shares(comps *c, int root, double avg) {
  mp_place_layer *st = c->st;
  const int S = st->S;
  int *order = c->order, *pedge = c->pedge, *stack = c->stack, *ea = c->ea, *eb = c->eb;
  int n = 0, sp = 0;
  stack[sp++] = root;
  pedge[root] = -1;
  while (sp > 0) {
    int v = stack[--sp];
    order[n++] = v;
    for (int h = c->adj_head[v]; h >= 0; h = c->adj_nxt[h]) {
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

/* The splits form a forest over the ranks (half-edges 2k, 2k + 1 of split
 * k); each tree of two or more ranks gets its component's mean. */
static void forest_shares(comps *c) {
  const int R = c->st->R, S = c->st->S;
  for (int r = 0; r < R; r++) c->adj_head[r] = -1;
  for (int k = 0; k < c->nedge; k++) {
    int ra = c->ea[k] / S, rb = c->eb[k] / S;
    c->adj_nxt[2 * k] = c->adj_head[ra];
    c->adj_head[ra] = 2 * k;
    c->adj_nxt[2 * k + 1] = c->adj_head[rb];
    c->adj_head[rb] = 2 * k + 1;
  }
  for (int r = 0; r < R; r++) c->pedge[r] = -2; // unvisited
  for (int root = 0; root < R; root++) {
    if (c->par[root] != root || c->csize[root] == 1) continue;
    tree_shares(c, root, c->cload[root] / c->csize[root]);
  }
}

void mp_transfer_components(mp_place_layer *st, double T) {
  comps c;
  comps_init(&c, st, T);
  for (int guard = 0; guard < 2 * st->R + st->RS; guard++) {
    comps_top(&c, &c.over);
    comps_top(&c, &c.under);
    if (c.over.n == 0 || c.under.n == 0) break;
    const int co = c.over.val[0], cu = c.under.val[0];
    const double ex = c.over.key[0], df = c.under.key[0];
    int bq = -1;
    const int best = pick_split(&c, co, cu, &bq);
    if (best < 0) { // this pair cannot trade: set the under component aside
      lheap_pop(&c.under);
      continue;
    }
    lheap_pop(&c.over);
    lheap_pop(&c.under);
    const double a = ex < df ? ex : df;
    if (a >= st->slot_x[best])
      relocate(&c, co, cu, best, bq, st->slot_x[best]);
    else
      split_merge(&c, co, cu, best, bq, a);
  }
  if (c.nedge > 0) forest_shares(&c);
}
