/* The per-layer placement solver.
 *
 * 1. Replica counts by marginal gain: every expert starts with one replica;
 *    each remaining slot goes to the expert with the largest load per
 *    replica w_e / c_e (at most R replicas). This greedy is optimal for
 *    min max_e w_e / c_e, which also gives the lower bound's second term.
 * 2. LPT packing: replicas in decreasing w_e / c_e go to the least loaded
 *    rank that has a free slot and does not hold the expert yet.
 * 3. Shares by water-filling: for one expert, given the other load on its
 *    ranks, its tokens are poured so the lowest ranks rise to a common level.
 *    Sweeping all replicated experts is block-coordinate descent on the sum
 *    of squared rank loads; the achievable rank-load vectors of a fixed
 *    assignment form the base polytope of a polymatroid, whose min-norm point
 *    also minimises the max load, so the sweeps converge to the optimal
 *    shares of the assignment.
 * 4. Local search from the busiest rank: give one of its experts a replica
 *    on a light rank (taking a free slot or evicting a spare replica of
 *    another expert), or swap a replica with one on a light rank. A change
 *    is kept only if the max load drops by more than lambda x its migration
 *    cost plus min_gain.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/timer.h"
#include "placement/solver.h"
#include "placement/topology.h"

#define WF_MAX_PASSES 30
/* Gap to the bound at which a layer is good enough: searching further costs
 * more time than it gains (0.1% of the layer time). */
#define MP_PLACE_GOOD_GAP 1e-3
#define WF_TOL 1e-7 // relative to the mean rank load

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
  if (!st->c_rtmp || !st->c_rk0 || !st->c_rk1 || !st->t_int || !st->t_dbl || !st->h_key || !st->h_val || !st->h_stamp) {
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
  free(st->h_key);
  free(st->h_val);
  free(st->h_stamp);
  memset(st, 0, sizeof *st);
}

/* ---- elementary state operations ------------------------------------- */

static void st_clear(mp_place_layer *st) {
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

static void st_put(mp_place_layer *st, int i, int e, double x) {
  st->slot_e[i] = e;
  st->slot_x[i] = x;
  st->next[i] = st->head[e];
  st->head[e] = i;
  st->cnt[e]++;
  st->nfree[i / st->S]--;
  st->load[i / st->S] += x;
}

/* Empties slot i; returns the tokens it carried. */
static double st_take(mp_place_layer *st, int i) {
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

static int st_rank_holds(const mp_place_layer *st, int r, int e) {
  const int *s = st->slot_e + (size_t)r * st->S;
  for (int k = 0; k < st->S; k++)
    if (s[k] == e) return 1;
  return 0;
}

static int st_free_slot(const mp_place_layer *st, int r) {
  for (int k = 0; k < st->S; k++)
    if (st->slot_e[r * st->S + k] < 0) return r * st->S + k;
  return -1;
}

static void st_save(mp_place_layer *st) {
  memcpy(st->sv_slot_e, st->slot_e, (size_t)st->RS * sizeof(int));
  memcpy(st->sv_slot_x, st->slot_x, (size_t)st->RS * sizeof(double));
  memcpy(st->sv_next, st->next, (size_t)st->RS * sizeof(int));
  memcpy(st->sv_load, st->load, (size_t)st->R * sizeof(double));
  memcpy(st->sv_nfree, st->nfree, (size_t)st->R * sizeof(int));
  memcpy(st->sv_head, st->head, (size_t)st->E * sizeof(int));
  memcpy(st->sv_cnt, st->cnt, (size_t)st->E * sizeof(int));
}

static void st_restore(mp_place_layer *st) {
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

double mp_place_layer_max(const mp_place_layer *st) {
  double m = 0;
  for (int r = 0; r < st->R; r++)
    if (st->load[r] > m) m = st->load[r];
  return m;
}


/* ---- water-filling ----------------------------------------------------- */

/* Re-splits expert e's tokens over its replicas so that the lowest of its
 * ranks rise to a common level. Returns the largest change of a slot. */
static double waterfill_expert(mp_place_layer *st, int e) {
  const int c = st->cnt[e];
  if (c <= 1) return 0;
  int *sl = st->iscratch;
  double *b = st->dscratch; // base load of each replica's rank without e
  int n = 0;
  for (int i = st->head[e]; i >= 0; i = st->next[i]) {
    double base = st->load[i / st->S] - st->slot_x[i];
    // insertion sort by base: c is small
    int k = n++;
    while (k > 0 && b[k - 1] > base) {
      b[k] = b[k - 1];
      sl[k] = sl[k - 1];
      k--;
    }
    b[k] = base;
    sl[k] = i;
  }
  const double w = st->w[e];
  double acc = 0, lam = 0;
  for (int k = 0; k < n; k++) {
    acc += b[k];
    lam = (w + acc) / (k + 1);
    if (k + 1 == n || lam <= b[k + 1]) break;
  }
  double change = 0;
  for (int k = 0; k < n; k++) {
    double x = lam > b[k] ? lam - b[k] : 0;
    int i = sl[k];
    double d = x - st->slot_x[i];
    if (fabs(d) > change) change = fabs(d);
    st->slot_x[i] = x;
    st->load[i / st->S] = b[k] + x;
  }
  return change;
}

/* Sweeps every replicated expert until no slot changes by more than tol. */
static void waterfill_all(mp_place_layer *st, double tol, int max_passes) {
  for (int pass = 0; pass < max_passes; pass++) {
    double ch = 0;
    for (int e = 0; e < st->E; e++)
      if (st->cnt[e] > 1) {
        double c = waterfill_expert(st, e);
        if (c > ch) ch = c;
      }
    if (ch <= tol) break;
  }
}

/* Sweeps the replicated experts of ranks ra and rb (and so their neighbours). */
static void waterfill_ranks(mp_place_layer *st, int ra, int rb, int passes) {
  for (int pass = 0; pass < passes; pass++)
    for (int t = 0; t < 2; t++) {
      int r = t ? rb : ra;
      if (r < 0) continue;
      for (int k = 0; k < st->S; k++) {
        int e = st->slot_e[r * st->S + k];
        if (e >= 0 && st->cnt[e] > 1) waterfill_expert(st, e);
      }
    }
}

/* ---- replica counts and the lower bound -------------------------------- */

/* Max-heap of experts keyed by w[e] / cnt[e]. */
static void heap_sift_down(int *h, int n, int i, const double *w, const int *c) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && w[h[l]] * c[h[m]] > w[h[m]] * c[h[l]]) m = l;
    if (r < n && w[h[r]] * c[h[m]] > w[h[m]] * c[h[r]]) m = r;
    if (m == i) return;
    int t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* counts [E] = the greedy replica counts using every slot; returns max w/c. */
static double replica_counts(const double *w, int E, int R, int S, int *counts, int *heap) {
  for (int e = 0; e < E; e++) {
    counts[e] = 1;
    heap[e] = e;
  }
  int n = E;
  for (int i = n / 2 - 1; i >= 0; i--) heap_sift_down(heap, n, i, w, counts);
  long extra = (long)R * S - E;
  while (extra > 0 && n > 0) {
    int e = heap[0];
    if (counts[e] >= R || w[e] <= 0) { // cannot or need not replicate further
      heap[0] = heap[--n];
      heap_sift_down(heap, n, 0, w, counts);
      continue;
    }
    counts[e]++;
    extra--;
    heap_sift_down(heap, n, 0, w, counts);
  }
  double m = 0;
  for (int e = 0; e < E; e++)
    if (w[e] / counts[e] > m) m = w[e] / counts[e];
  return m;
}

double mp_place_layer_bound(mp_place_layer *st, const double *w) {
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  const double avg = tot / st->R;
  // Fast path: if ceil(w_e / avg) replicas fit, the replica term is <= avg.
  if (avg > 0) {
    long need = 0;
    for (int e = 0; e < st->E; e++) {
      double c = ceil(w[e] / avg * (1 - 1e-12));
      need += c < 1 ? 1 : (long)c;
    }
    if (need <= st->RS) return avg;
  }
  double m = replica_counts(w, st->E, st->R, st->S, st->iscratch, st->iscratch + st->E);
  return m > avg ? m : avg;
}

/* ---- constructive ------------------------------------------------------ */

/* Sorts idx [n] (n >= 1) by key[idx] descending, ties by smaller index
 * first, for non-negative keys: LSD radix sort on the IEEE bits (which order
 * like the values for non-negative doubles), 8 bits per pass, skipping the
 * passes where every key has the same byte. Stable, O(8 n), no comparisons.
 * tmp_idx [n], k0 and k1 [n] are scratch. */
static void radix_sort_desc(int *idx, int n, const double *key, int *tmp_idx, uint64_t *k0,
                            uint64_t *k1) {
  for (int i = 0; i < n; i++) {
    double v = key[idx[i]];
    uint64_t b;
    if (v == 0) v = 0; // -0.0 sorts as 0.0
    memcpy(&b, &v, sizeof b);
    k0[i] = ~b; // ascending in ~bits = descending in value
  }
  int *src_i = idx, *dst_i = tmp_idx;
  uint64_t *src_k = k0, *dst_k = k1;
  for (int shift = 0; shift < 64; shift += 8) {
    int cnt[256] = {0};
    for (int i = 0; i < n; i++) cnt[(src_k[i] >> shift) & 255]++;
    if (cnt[(src_k[0] >> shift) & 255] == n) continue; // all equal: nothing to do
    int pos = 0;
    for (int b = 0; b < 256; b++) {
      int c = cnt[b];
      cnt[b] = pos;
      pos += c;
    }
    for (int i = 0; i < n; i++) {
      int d = cnt[(src_k[i] >> shift) & 255]++;
      dst_k[d] = src_k[i];
      dst_i[d] = src_i[i];
    }
    int *ti = src_i;
    src_i = dst_i;
    dst_i = ti;
    uint64_t *tk = src_k;
    src_k = dst_k;
    dst_k = tk;
  }
  if (src_i != idx) memcpy(idx, src_i, (size_t)n * sizeof *idx);
}

/* Min-heap of ranks keyed by load. */
static void rheap_down(int *h, int n, int i, const double *load) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && (load[h[l]] < load[h[m]] || (load[h[l]] == load[h[m]] && h[l] < h[m]))) m = l;
    if (r < n && (load[h[r]] < load[h[m]] || (load[h[r]] == load[h[m]] && h[r] < h[m]))) m = r;
    if (m == i) return;
    int t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}
static void rheap_up(int *h, int i, const double *load) {
  while (i > 0) {
    int p = (i - 1) / 2;
    if (load[h[p]] < load[h[i]] || (load[h[p]] == load[h[i]] && h[p] < h[i])) return;
    int t = h[i];
    h[i] = h[p];
    h[p] = t;
    i = p;
  }
}

static void construct(mp_place_layer *st) {
  const int E = st->E, R = st->R;
  int *counts = st->c_counts, *reps = st->c_reps, *ord = st->c_ord, *rh = st->c_rh,
      *skip = st->c_skip;
  double *key = st->c_key;
  st_clear(st);
  replica_counts(st->w, E, R, st->S, counts, st->c_eheap);
  int n = 0;
  for (int e = 0; e < E; e++)
    for (int c = 0; c < counts[e]; c++) {
      reps[n] = e;
      key[n] = st->w[e] / counts[e];
      ord[n] = n;
      n++;
    }
  radix_sort_desc(ord, n, key, st->c_rtmp, st->c_rk0, st->c_rk1);
  int nh = R;
  for (int r = 0; r < R; r++) rh[r] = r;
  for (int t = 0; t < n; t++) {
    int e = reps[ord[t]], ns = 0;
    // least loaded rank with a free slot that does not hold e yet; one
    // always exists because counts[e] <= R and every slot is counted
    while (nh > 0) {
      int r = rh[0];
      rh[0] = rh[--nh];
      rheap_down(rh, nh, 0, st->load);
      if (st_rank_holds(st, r, e)) {
        skip[ns++] = r;
        continue;
      }
      st_put(st, st_free_slot(st, r), e, key[ord[t]]);
      if (st->nfree[r] > 0) skip[ns++] = r;
      break;
    }
    for (int k = 0; k < ns; k++) {
      rh[nh] = skip[k];
      rheap_up(rh, nh++, st->load);
    }
  }
}

/* McNaughton-style construction for when there are spare slots (at least
 * R - 1 beyond one per expert): LPT of one replica per expert, then the
 * busiest rank hands tokens of one of its experts to the least loaded rank
 * that has a free slot, exactly down to the mean T = total / R (relocating
 * the replica when all of its tokens go). Every step saturates a rank or
 * empties a replica, so it ends after O(R + spare) steps, usually with
 * every rank at T. */
/* Transfers between components. Ranks linked by a split expert form a
 * component whose load can be moved freely inside it (by shifting the split
 * expert's shares), so what matters is each component's excess over
 * T x size. The most over-loaded component hands tokens of its largest
 * replica to a new replica in the most under-loaded component that has a
 * free slot; the two merge. Each split merges two components, so R - 1
 * spare slots are enough in principle (McNaughton's wrap-around, with the
 * no-duplicate rule). The split experts form a forest over the ranks;
 * a post-order pass over each tree then sets the shares exactly so that
 * every rank of a component gets the component's mean. */
static int cur_rank_holds(const mp_place_layer *st, int r, int e);

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

static void transfer_components(mp_place_layer *st, double T) {
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
          if (st->nfree[q] == 0 || st_rank_holds(st, q, e)) continue;
          if (st->cur && cur_rank_holds(st, q, e)) {
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
      st_take(st, best);
      st_put(st, st_free_slot(st, bq), e, a);
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
    int j = st_free_slot(st, bq);
    st_put(st, j, e, a);
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

static void construct_transfer(mp_place_layer *st) {
  const int E = st->E, R = st->R, S = st->S;
  int *ord = st->c_ord, *rh = st->c_rh, *skip = st->c_skip;
  st_clear(st);
  double tot = 0;
  for (int e = 0; e < E; e++) {
    ord[e] = e;
    tot += st->w[e];
  }
  radix_sort_desc(ord, E, st->w, st->c_rtmp, st->c_rk0, st->c_rk1);
  // Snake order over the ranks (0..R-1, R-1..0, ...) of the experts in
  // decreasing load: O(E), every rank gets ceil or floor of E / R experts
  // (so one slot per rank stays free when R (S - 1) >= E), and the
  // transfers below remove whatever imbalance is left.
  (void)rh;
  (void)skip;
  (void)S;
  for (int t = 0; t < E; t++) {
    int round = t / R, pos = t % R, r = round & 1 ? R - 1 - pos : pos;
    st_put(st, st_free_slot(st, r), ord[t], st->w[ord[t]]);
  }
  transfer_components(st, tot / R);
  // Balanced: leftover slots stay empty (a replica there would get a zero
  // share; a free slot lets the next rebalance add a replica without
  // evicting one). Otherwise they get replicas of the heaviest experts per
  // replica, which water-filling then uses where the transfers got stuck.
  if (mp_place_layer_max(st) <= tot / R * (1 + 1e-9)) return;
  int *counts = st->c_counts, *heap = st->c_eheap, n = 0;
  for (int e = 0; e < E; e++) {
    counts[e] = st->cnt[e];
    heap[n++] = e;
  }
  for (int i = n / 2 - 1; i >= 0; i--) heap_sift_down(heap, n, i, st->w, counts);
  int spare = 0;
  for (int r = 0; r < R; r++) spare += st->nfree[r];
  while (spare > 0 && n > 0) {
    int e = heap[0], q = -1;
    if (st->w[e] > 0 && counts[e] < R)
      for (int k = 0; k < R; k++)
        if (st->nfree[k] > 0 && !st_rank_holds(st, k, e) && (q < 0 || st->load[k] < st->load[q]))
          q = k;
    if (q < 0) {
      heap[0] = heap[--n];
      heap_sift_down(heap, n, 0, st->w, counts);
      continue;
    }
    st_put(st, st_free_slot(st, q), e, 0);
    counts[e]++;
    spare--;
    heap_sift_down(heap, n, 0, st->w, counts);
  }
}

/* ---- migration cost ---------------------------------------------------- */

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

static int cur_rank_holds(const mp_place_layer *st, int r, int e) {
  const int *s = st->cur + (size_t)r * st->S;
  for (int k = 0; k < st->S; k++)
    if (s[k] == e) return 1;
  return 0;
}

/* Cost of e arriving at rank r: 0 if r held it, else bytes x cheapest class. */
static double move_cost(const mp_place_layer *st, int e, int r, int *cls) {
  *cls = MOEPLACE_LINK_SAME_RANK;
  if (!st->cur || cur_rank_holds(st, r, e)) return 0;
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
static double slot_bytes(const mp_place_layer *st, int i) {
  int e = st->slot_e[i];
  if (!st->cur || e < 0 || cur_rank_holds(st, i / st->S, e)) return 0;
  return st->expert_bytes;
}
static double slot_cost(const mp_place_layer *st, int i) {
  int e = st->slot_e[i], c;
  if (e < 0) return 0;
  return move_cost(st, e, i / st->S, &c);
}

void mp_place_layer_moves(const mp_place_layer *st, int64_t *moves, double *bytes,
                          double *cross_bytes, double *cost) {
  *moves = 0;
  *bytes = *cross_bytes = *cost = 0;
  if (!st->cur) return;
  for (int i = 0; i < st->RS; i++) {
    int e = st->slot_e[i], c;
    if (e < 0 || cur_rank_holds(st, i / st->S, e)) continue;
    double cc = move_cost(st, e, i / st->S, &c);
    (*moves)++;
    *bytes += st->expert_bytes;
    *cost += cc;
    if (c == MOEPLACE_LINK_OTHER_NODE) *cross_bytes += st->expert_bytes;
  }
}

/* ---- local search ------------------------------------------------------ */

typedef struct cand {
  int kind;      // 1: replicate into slot j; 2: swap slots i and j
  int i, j;      // i: slot on the busiest rank; j: target slot
  double est;    // estimated gain minus lambda x cost
} cand;

#define NCAND 8

static void cand_push(cand *best, int *nb, cand c) {
  int k;
  if (*nb < NCAND) {
    k = (*nb)++;
  } else {
    if (best[NCAND - 1].est >= c.est) return;
    k = NCAND - 1;
  }
  best[k] = c;
  while (k > 0 && best[k - 1].est < best[k].est) {
    cand t = best[k];
    best[k] = best[k - 1];
    best[k - 1] = t;
    k--;
  }
}

/* One improving change from the busiest rank; returns 1 if one was kept. */
/* Total excess of the ranks over the mean T: the max load is at most
 * T + excess, and unlike the max it drops with every useful change even
 * when several ranks share the top (the max alone has plateaus). */
static double total_excess(const mp_place_layer *st, double T) {
  double x = 0;
  for (int r = 0; r < st->R; r++)
    if (st->load[r] > T) x += st->load[r] - T;
  return x;
}

/* One improving change that takes load off rank rs; 1 if one was kept.
 * Mmax is the layer's max load (which must not rise), T the mean and X0
 * the total excess before the change. */
static int improve_from(mp_place_layer *st, const mp_place_search *sp, int rs, double Mmax,
                        double T, double X0, double *bytes_used) {
  const int S = st->S, R = st->R;
  const double M = st->load[rs];
  cand best[NCAND];
  int nb = 0;
  for (int a = 0; a < S; a++) {
    int i = rs * S + a, b = st->slot_e[i];
    if (b < 0 || st->slot_x[i] <= 0) continue;
    const double xi = st->slot_x[i];
    for (int q = 0; q < R; q++) {
      if (q == rs) continue;
      const double Lq = st->load[q];
      if (Lq >= M) continue;
      const int q_has_b = st_rank_holds(st, q, b);
      int cls;
      // costs only matter through lambda (and move_cost scans replicas)
      const int priced = sp->lambda > 0 && st->cur;
      const double cb = q_has_b || !priced ? 0 : sp->lambda * move_cost(st, b, q, &cls);
      for (int k = 0; k < S; k++) {
        int j = q * S + k, a2 = st->slot_e[j];
        if (!q_has_b && (a2 < 0 || (a2 != b && st->cnt[a2] > 1))) {
          // replicate b into slot j (evicting a spare replica of a2)
          double base = Lq - st->slot_x[j];
          // tokens that can flow from rs to q without raising q above T
          double d = base < T ? (T - base < M - T ? T - base : M - T) : 0;
          if (d > xi) d = xi;
          double est = d - cb + (a2 >= 0 && priced ? sp->lambda * slot_cost(st, j) : 0);
          if (d > 0) cand_push(best, &nb, (cand){1, i, j, est});
        }
        if (!q_has_b && a2 >= 0 && a2 != b && st->slot_x[j] < xi &&
            !st_rank_holds(st, rs, a2)) {
          // swap b (on rs) with a2 (on q)
          double xj = st->slot_x[j];
          double m1 = M - xi + xj, m2 = Lq - xj + xi;
          double nm = m1 > m2 ? m1 : m2;
          int c2;
          double cost = !priced ? 0
                                : cb + sp->lambda * move_cost(st, a2, rs, &c2) -
                                      sp->lambda * (slot_cost(st, i) + slot_cost(st, j));
          if (nm < M) cand_push(best, &nb, (cand){2, i, j, M - nm - cost});
        }
      }
    }
  }
  for (int c = 0; c < nb; c++) {
    if (best[c].est <= sp->min_gain) break;
    const int i = best[c].i, j = best[c].j, q = j / S;
    double bytes_before = slot_bytes(st, i) + slot_bytes(st, j);
    double cost_before = slot_cost(st, i) + slot_cost(st, j);
    st_save(st);
    double bytes_after, cost_after;
    if (best[c].kind == 1) {
      int b = st->slot_e[i], a2 = st->slot_e[j];
      bytes_before = slot_bytes(st, j);
      cost_before = slot_cost(st, j);
      if (a2 >= 0) {
        double x = st_take(st, j);
        // the evicted replica's tokens go to a2's other replicas
        int h = st->head[a2];
        st->slot_x[h] += x;
        st->load[h / S] += x;
        waterfill_expert(st, a2);
      }
      st_put(st, j, b, 0);
      waterfill_expert(st, b);
      bytes_after = slot_bytes(st, j);
      cost_after = slot_cost(st, j);
    } else {
      int b = st->slot_e[i], a2 = st->slot_e[j];
      double xi = st_take(st, i), xj = st_take(st, j);
      st_put(st, j, b, xi);
      st_put(st, i, a2, xj);
      bytes_after = slot_bytes(st, i) + slot_bytes(st, j);
      cost_after = slot_cost(st, i) + slot_cost(st, j);
    }
    waterfill_ranks(st, rs, q, 2);
    const double dbytes = bytes_after - bytes_before;
    const double nm = mp_place_layer_max(st);
    const double gain = X0 - total_excess(st, T) - sp->lambda * (cost_after - cost_before);
    const int within_budget =
        !sp->budget || *sp->budget < 0 || dbytes <= 0 || *bytes_used + dbytes <= *sp->budget;
    if (gain > sp->min_gain && nm <= Mmax && within_budget) {
      *bytes_used += dbytes;
      return 1;
    }
    st_restore(st);
  }
  return 0;
}

/* Tries the most loaded ranks in turn (the top one may be stuck while the
 * next ones can still shed load, which lowers the total excess). */
#define LS_SOURCES 4
static int improve_once(mp_place_layer *st, const mp_place_search *sp, double *bytes_used) {
  const int R = st->R;
  int top[LS_SOURCES], nt = 0;
  double T = 0;
  for (int r = 0; r < R; r++) {
    T += st->load[r];
    // keep the LS_SOURCES most loaded ranks, in decreasing load
    int k = nt < LS_SOURCES ? nt++ : LS_SOURCES - 1;
    if (k == LS_SOURCES - 1 && nt == LS_SOURCES && r >= LS_SOURCES &&
        st->load[top[k]] >= st->load[r])
      continue;
    top[k] = r;
    while (k > 0 && st->load[top[k - 1]] < st->load[top[k]]) {
      int t = top[k];
      top[k] = top[k - 1];
      top[k - 1] = t;
      k--;
    }
  }
  T /= R;
  const double Mmax = st->load[top[0]], X0 = total_excess(st, T);
  for (int k = 0; k < nt; k++) {
    if (st->load[top[k]] <= T) break;
    if (improve_from(st, sp, top[k], Mmax, T, X0, bytes_used)) return 1;
  }
  return 0;
}

static void local_search(mp_place_layer *st, const mp_place_search *sp, double bound,
                         double *bytes_used) {
  for (int it = 0; it < sp->max_iter; it++) {
    // close enough to the bound: further search costs more time than it gains
    if (mp_place_layer_max(st) <= bound * (1 + MP_PLACE_GOOD_GAP)) break;
    if (sp->deadline > 0 && (it & 7) == 7 && mp_now_s() > sp->deadline) break;
    if (!improve_once(st, sp, bytes_used)) break;
  }
  waterfill_all(st, WF_TOL * (bound > 0 ? bound : 1), WF_MAX_PASSES);
}

void mp_place_layer_fresh(mp_place_layer *st, const double *w, const mp_place_search *sp) {
  st->w = w;
  const int *cur = st->cur;
  st->cur = NULL; // a fresh placement ignores migration
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  double bound = mp_place_layer_bound(st, w);
  if ((long)st->RS - st->E >= st->R - 1) {
    construct_transfer(st);
    waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
    // the transfers can get stuck when light ranks run out of free slots:
    // then the replicate-then-LPT start may be better
    const double m1 = mp_place_layer_max(st);
    if (m1 > bound * (1 + 4 * MP_PLACE_GOOD_GAP)) {
      st_save(st);
      construct(st);
      waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
      if (mp_place_layer_max(st) >= m1) st_restore(st);
    }
  } else {
    construct(st);
    waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
  }
  mp_place_search fs = *sp;
  fs.lambda = 0;
  fs.budget = NULL;
  double used = 0;
  local_search(st, &fs, bound, &used);
  st->cur = cur;
}

void mp_place_layer_from_current(mp_place_layer *st, const double *w, const mp_place_search *sp) {
  st->w = w;
  st_clear(st);
  // start with equal shares, then water-fill
  for (int i = 0; i < st->RS; i++) {
    int e = st->cur[i];
    if (e >= 0) st_put(st, i, e, 0);
  }
  for (int e = 0; e < st->E; e++)
    for (int i = st->head[e]; i >= 0; i = st->next[i]) {
      st->slot_x[i] = w[e] / st->cnt[e];
      st->load[i / st->S] += st->slot_x[i];
    }
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  double bound = mp_place_layer_bound(st, w);
  waterfill_all(st, WF_TOL * (tot > 0 ? tot / st->R : 1), WF_MAX_PASSES);
  double used = 0;
  mp_place_search ms = *sp;
  if (sp->budget && *sp->budget >= 0) {
    // local_search checks bytes_used against the remaining budget
    local_search(st, &ms, bound, &used);
    *sp->budget -= used;
  } else {
    ms.budget = NULL;
    local_search(st, &ms, bound, &used);
  }
}

void mp_place_layer_repair(mp_place_layer *st, const double *w) {
  st->w = w;
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  const double T = tot / st->R;
  // spare replicas the current loads leave idle free their slots (no bytes)
  for (int i = 0; i < st->RS; i++) {
    int e = st->slot_e[i];
    if (e >= 0 && st->cnt[e] > 1 && st->slot_x[i] <= 1e-12 * (T > 0 ? T : 1)) st_take(st, i);
  }
  transfer_components(st, T);
  waterfill_all(st, WF_TOL * (T > 0 ? T : 1), WF_MAX_PASSES);
}

void mp_place_layer_home(mp_place_layer *st, const double *w) {
  const int E = st->E, R = st->R, S = st->S;
  st->w = w;
  st_clear(st);
  double tot = 0;
  int *ord = st->c_ord;
  for (int e = 0; e < E; e++) {
    ord[e] = e;
    tot += w[e];
  }
  radix_sort_desc(ord, E, w, st->c_rtmp, st->c_rk0, st->c_rk1);
  const int keep = (long)R * (S - 1) >= E ? 1 : 0;
  // heaviest first, each expert to the least loaded of its current ranks
  // with room; an expert whose ranks are all full waits for the second pass
  int *late = st->c_reps, nlate = 0;
  for (int t = 0; t < E; t++) {
    int e = ord[t], b = -1;
    for (int i = st->cur_head[e]; i >= 0; i = st->cur_next[i]) {
      int r = i / S;
      if (st->nfree[r] > keep && (b < 0 || st->load[r] < st->load[b])) b = r;
    }
    if (b < 0) {
      late[nlate++] = e;
      continue;
    }
    st_put(st, st_free_slot(st, b), e, w[e]);
  }
  for (int t = 0; t < nlate; t++) { // these move: to the least loaded rank with room
    int e = late[t], b = -1;
    for (int r = 0; r < R; r++)
      if (st->nfree[r] > keep && (b < 0 || st->load[r] < st->load[b])) b = r;
    if (b < 0)
      for (int r = 0; r < R; r++)
        if (st->nfree[r] > 0 && (b < 0 || st->load[r] < st->load[b])) b = r;
    st_put(st, st_free_slot(st, b), e, w[e]);
  }
  transfer_components(st, tot / R);
  waterfill_all(st, WF_TOL * (tot > 0 ? tot / R : 1), WF_MAX_PASSES);
}

void mp_place_layer_align(mp_place_layer *st) {
  if (!st->cur) return;
  const int S = st->S;
  int *e2 = st->iscratch;
  double *x2 = st->dscratch;
  for (int r = 0; r < st->R; r++) {
    int *se = st->slot_e + r * S;
    const int *ce = st->cur + (size_t)r * S;
    int kept = 0;
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
          kept++;
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
      if (se[m] >= 0) st_take(st, r * S + m);
    for (int m = 0; m < S; m++)
      if (e2[m] >= 0) st_put(st, r * S + m, e2[m], x2[m]);
    (void)kept;
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
    else if (sum[e] > 0)
      share[i] = st->slot_x[i] / sum[e];
    else
      share[i] = 1.0 / st->cnt[e];
  }
}

/* ---- exact references for small instances ------------------------------ */

double mp_place_assignment_optimum(const double *w, int E, int R, int S, const int *phy2log) {
  if (R > 16) return -1;
  // mask[e]: ranks holding e. Max-flow/min-cut (Hall): the best max load is
  // max over rank subsets A of (load of experts held only inside A) / |A|.
  int mask[64];
  if (E > 64) return -1;
  for (int e = 0; e < E; e++) mask[e] = 0;
  for (int i = 0; i < R * S; i++)
    if (phy2log[i] >= 0) mask[phy2log[i]] |= 1 << (i / S);
  double best = 0;
  for (int A = 1; A < (1 << R); A++) {
    double s = 0;
    for (int e = 0; e < E; e++)
      if (mask[e] && (mask[e] & ~A) == 0) s += w[e];
    double v = s / __builtin_popcount((unsigned)A);
    if (v > best) best = v;
  }
  return best;
}

/* Branch and bound over the rank sets of each expert (shares are then
 * optimal by the formula above). Slots matter only through capacity. */
typedef struct exact_ctx {
  const double *w;
  int E, R, S;
  int mask[8];
  int used[4];
  double best;
} exact_ctx;

static double subset_value(const exact_ctx *c, int upto) {
  // optimum of the experts assigned so far: a valid lower bound for the
  // complete assignment (adding experts never lowers any subset's value)
  double best = 0;
  for (int A = 1; A < (1 << c->R); A++) {
    double s = 0;
    for (int e = 0; e < upto; e++)
      if ((c->mask[e] & ~A) == 0) s += c->w[e];
    double v = s / __builtin_popcount((unsigned)A);
    if (v > best) best = v;
  }
  return best;
}

static void exact_rec(exact_ctx *c, int e) {
  if (e > 0 && subset_value(c, e) >= c->best) return;
  if (e == c->E) {
    c->best = subset_value(c, e);
    return;
  }
  for (int m = 1; m < (1 << c->R); m++) {
    int ok = 1;
    for (int r = 0; r < c->R; r++)
      if ((m >> r & 1) && c->used[r] == c->S) ok = 0;
    if (!ok) continue;
    // slots left for the remaining experts (one each at least)
    int left = 0;
    for (int r = 0; r < c->R; r++) left += c->S - c->used[r] - (m >> r & 1);
    if (left < c->E - e - 1) continue;
    for (int r = 0; r < c->R; r++) c->used[r] += m >> r & 1;
    c->mask[e] = m;
    exact_rec(c, e + 1);
    for (int r = 0; r < c->R; r++) c->used[r] -= m >> r & 1;
  }
}

double mp_place_exact(const double *w, int E, int R, int S) {
  if (R > 4 || E > 8 || R * S < E) return -1;
  exact_ctx c = {.w = w, .E = E, .R = R, .S = S, .best = INFINITY};
  exact_rec(&c, 0);
  return c.best;
}
