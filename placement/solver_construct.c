/* Constructive placement of a layer from scratch, and the lower bound.
 *
 * Replica counts by marginal gain: every expert starts with one replica;
 * each remaining slot goes to the expert with the largest load per replica
 * w_e / c_e (at most R replicas). This greedy is optimal for min max_e
 * w_e / c_e, which also gives the lower bound's second term.
 *
 * Two starts use them: LPT packing (replicas in decreasing w_e / c_e go to
 * the least loaded rank that has a free slot and does not hold the expert
 * yet), and, when there are spare slots, one replica per expert in snake
 * order followed by the component transfers (solver_transfer.c). */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "placement/solver_internal.h"

/* 1 if expert a's next replica comes before b's: larger w / c first, ties
 * by smaller index (EPLB's argmax), so that tied loads (integer counts
 * often are) get the counts EPLB's construction gives. */
static int count_before(const double *w, const int *c, int a, int b) {
  const double x = w[a] * c[b], y = w[b] * c[a];
  return x > y || (x == y && a < b);
}

/* Max-heap of experts keyed by w[e] / cnt[e] (count_before). */
static void heap_sift_down(int *h, int n, int i, const double *w, const int *c) {
  for (;;) {
    int l = 2 * i + 1, r = l + 1, m = i;
    if (l < n && count_before(w, c, h[l], h[m])) m = l;
    if (r < n && count_before(w, c, h[r], h[m])) m = r;
    if (m == i) return;
    int t = h[i];
    h[i] = h[m];
    h[m] = t;
    i = m;
  }
}

/* counts [E] = the greedy replica counts using `total` replicas (at most
 * R x S; fewer when no expert can use another); returns max w/c. With seq
 * non-NULL, seq [total - E] gets the expert of each extra replica in the
 * order handed out and *nseq their number: the greedy makes the same picks
 * whatever the total, so the counts of a smaller total are one per expert
 * plus a prefix of seq. */
static double replica_counts_seq(const double *w, int E, int R, long total, int *counts, int *heap,
                                 int *seq, int *nseq) {
  for (int e = 0; e < E; e++) {
    counts[e] = 1;
    heap[e] = e;
  }
  int n = E, k = 0;
  for (int i = n / 2 - 1; i >= 0; i--) heap_sift_down(heap, n, i, w, counts);
  long extra = total - E;
  while (extra > 0 && n > 0) {
    int e = heap[0];
    if (counts[e] >= R || w[e] <= 0) { // cannot or need not replicate further
      heap[0] = heap[--n];
      heap_sift_down(heap, n, 0, w, counts);
      continue;
    }
    counts[e]++;
    if (seq) seq[k] = e;
    k++;
    extra--;
    heap_sift_down(heap, n, 0, w, counts);
  }
  if (nseq) *nseq = k;
  double m = 0;
  for (int e = 0; e < E; e++)
    if (w[e] / counts[e] > m) m = w[e] / counts[e];
  return m;
}

static double replica_counts(const double *w, int E, int R, long total, int *counts, int *heap) {
  return replica_counts_seq(w, E, R, total, counts, heap, NULL, NULL);
}

double mp_place_layer_bound(mp_place_layer *st, const double *w) {
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += w[e];
  const double avg = tot / st->R;
  // Fast path: if ceil(w_e / avg) replicas fit, the replica term is <= avg.
  // Their sum is below sum(w_e / avg + 1) = R + E, so R + E <= R x S needs
  // no count (every DeepSeek shape, per node too).
  if (avg > 0 && (long)st->R + st->E <= st->RS) return avg;
  if (avg > 0) {
    long need = 0;
    for (int e = 0; e < st->E; e++) {
      double c = ceil(w[e] / avg * (1 - 1e-12));
      need += c < 1 ? 1 : (long)c;
    }
    if (need <= st->RS) return avg;
  }
  double m = replica_counts(w, st->E, st->R, st->RS, st->iscratch, st->iscratch + st->E);
  return m > avg ? m : avg;
}

/* ---- constructive ------------------------------------------------------ */

#define MP_SORT_SMALL 64

#define MP_SORT_MERGE 512

/* Stable insertion sort of idx [a, b) by key descending (equal keys, -0.0
 * and 0.0 too, keep their input order). */
static void insertion_sort_desc(int *idx, int a, int b, const double *key) {
  for (int i = a + 1; i < b; i++) {
    const int v = idx[i];
    const double kv = key[v];
    int j = i;
    for (; j > a && key[idx[j - 1]] < kv; j--) idx[j] = idx[j - 1];
    idx[j] = v;
  }
}

/* Stable merge sort of idx [n] by key descending (the order of the radix
 * passes: equal keys, -0.0 and 0.0 too, keep their input order): runs of
 * MP_SORT_SMALL / 4 by insertion, then bottom-up merges through tmp [n]. */
static void merge_sort_desc(int *idx, int n, const double *key, int *tmp) {
  const int run = MP_SORT_SMALL / 4;
  for (int a = 0; a < n; a += run) insertion_sort_desc(idx, a, a + run < n ? a + run : n, key);
  int *src = idx, *dst = tmp;
  for (int w = run; w < n; w *= 2) {
    for (int a = 0; a < n; a += 2 * w) {
      const int m = a + w < n ? a + w : n, b = a + 2 * w < n ? a + 2 * w : n;
      int i = a, j = m, k = a;
      while (i < m && j < b) dst[k++] = key[src[j]] > key[src[i]] ? src[j++] : src[i++];
      while (i < m) dst[k++] = src[i++];
      while (j < b) dst[k++] = src[j++];
    }
    int *t = src;
    src = dst;
    dst = t;
  }
  if (src != idx) memcpy(idx, src, (size_t)n * sizeof *idx);
}

/* Sorts idx [n] (n >= 1) by key[idx] descending, ties by smaller index
 * first, for non-negative keys, stable whatever n: up to MP_SORT_SMALL
 * items by insertion (-0.0 equal to 0.0 as below), up to MP_SORT_MERGE by a
 * merge sort, else LSD radix sort on the IEEE bits (which order like the
 * values for non-negative doubles), 8 bits per pass, skipping the passes
 * where every key has the same byte: O(8 n), no comparisons. tmp_idx [n],
 * k0 and k1 [n] are scratch. */
void mp_radix_sort_desc(int *idx, int n, const double *key, int *tmp_idx, uint64_t *k0,
                        uint64_t *k1) {
  if (n <= MP_SORT_SMALL) { // a few items: the 256-bucket passes cost more than insertion
    insertion_sort_desc(idx, 0, n, key);
    return;
  }
  if (n <= MP_SORT_MERGE) { // a few hundred: merging cost less than eight passes
    merge_sort_desc(idx, n, key, tmp_idx);
    return;
  }
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

void mp_construct_lpt(mp_place_layer *st) { mp_construct_lpt_n(st, st->RS); }

/* LPT packing of the replicas rep_e [n] (in that order, each of share
 * w_e / counts[e]) into the cleared state: each to the least loaded rank
 * with a free slot that does not hold its expert yet; one always exists
 * because counts[e] <= R and every slot is counted. The heap pops ranks
 * by (load, index) and sets aside those holding e: the first rank by
 * (load, index) with a free slot that does not hold e. */
#define LPT_SCAN_RANKS 16
static void lpt_pack(mp_place_layer *st, const int *rep_e, int n, const int *counts) {
  const int R = st->R;
  int *rh = st->c_rh, *skip = st->c_skip;
  if (R <= LPT_SCAN_RANKS && st->E <= 64) { // a few ranks: a sorted list finds the heap's pick
    uint64_t held[LPT_SCAN_RANKS] = {0};     // bit e: the rank holds e
    int ord[LPT_SCAN_RANKS], no = 0;         // the ranks with a free slot by (load, index)
    for (int r = 0; r < R; r++) {
      if (st->nfree[r] <= 0) continue;
      int u = no++;
      for (; u > 0 && st->load[ord[u - 1]] > st->load[r]; u--) ord[u] = ord[u - 1];
      ord[u] = r;
    }
    for (int t = 0; t < n; t++) {
      const int e = rep_e[t];
      const uint64_t bit = (uint64_t)1 << e;
      int k = 0;
      while (k < no && (held[ord[k]] & bit)) k++;
      if (k == no) continue; // cannot happen: counts[e] <= R and every slot is counted
      const int b = ord[k];
      held[b] |= bit;
      mp_st_put(st, b * st->S + st->S - st->nfree[b], e, st->w[e] / counts[e]);
      if (st->nfree[b] == 0) { // full: out of the list
        for (no--; k < no; k++) ord[k] = ord[k + 1];
        continue;
      }
      const double *ld = st->load, lb = ld[b]; // b's load rose: it moves towards the end
      for (; k + 1 < no && (ld[ord[k + 1]] < lb || (ld[ord[k + 1]] == lb && ord[k + 1] < b)); k++)
        ord[k] = ord[k + 1];
      ord[k] = b;
    }
    return;
  }
  int nh = R;
  for (int r = 0; r < R; r++) rh[r] = r;
  for (int t = 0; t < n; t++) {
    int e = rep_e[t], ns = 0;
    while (nh > 0) {
      int r = rh[0];
      rh[0] = rh[--nh];
      rheap_down(rh, nh, 0, st->load);
      if (mp_st_rank_holds(st, r, e)) {
        skip[ns++] = r;
        continue;
      }
      mp_st_put(st, mp_st_free_slot(st, r), e, st->w[e] / counts[e]);
      if (st->nfree[r] > 0) skip[ns++] = r;
      break;
    }
    for (int k = 0; k < ns; k++) {
      rh[nh] = skip[k];
      rheap_up(rh, nh++, st->load);
    }
  }
}

void mp_construct_lpt_n(mp_place_layer *st, long total) {
  const int E = st->E, R = st->R;
  int *counts = st->c_counts, *reps = st->c_reps, *ord = st->c_ord;
  double *key = st->c_key;
  mp_st_clear(st);
  replica_counts(st->w, E, R, total, counts, st->c_eheap);
  // the replicas by w_e / c_e, ties by expert: sorting the E experts and
  // listing each one's replicas together gives the order of the stable sort
  // of the replicas listed by expert, on fewer items
  for (int e = 0; e < E; e++) {
    key[e] = st->w[e] / counts[e];
    ord[e] = e;
  }
  if (E <= MP_SORT_MERGE) // random keys: merging beats insertion from a few dozen items
    merge_sort_desc(ord, E, key, st->c_rtmp);
  else
    mp_radix_sort_desc(ord, E, key, st->c_rtmp, st->c_rk0, st->c_rk1);
  int n = 0;
  for (int t = 0; t < E; t++)
    for (int c = 0; c < counts[ord[t]]; c++) reps[n++] = ord[t]; // the experts in packing order
  lpt_pack(st, reps, n, counts);
}

/* 1 if expert a comes before b in the LPT order: larger w / c first (key
 * [E]), ties by smaller index (the stable sort of mp_construct_lpt_n on
 * replicas listed by expert). */
static int lpt_before(const double *key, int a, int b) {
  return key[a] > key[b] || (key[a] == key[b] && a < b);
}

void mp_lpt_totals_init(mp_place_layer *st, mp_lpt_totals *lt) {
  const int E = st->E;
  int *counts = st->c_counts, *eord = st->c_eheap;
  double *key = st->c_key;
  replica_counts_seq(st->w, E, st->R, st->RS, counts, eord, st->c_reps, &lt->nseq);
  lt->total = E + lt->nseq;
  for (int e = 0; e < E; e++) key[e] = st->w[e] / counts[e];
  for (int t = 0; t < E; t++) { // insertion sort: E <= 512 (the multistart's layers), once per layer
    int u = t;
    while (u > 0 && lpt_before(key, t, eord[u - 1])) {
      eord[u] = eord[u - 1];
      u--;
    }
    eord[u] = t;
  }
}

void mp_construct_lpt_total(mp_place_layer *st, mp_lpt_totals *lt, long total) {
  int *counts = st->c_counts, *eord = st->c_eheap, *rep = st->c_ord;
  double *key = st->c_key;
  while (lt->total > total && lt->total > st->E) { // take back the last extra replica
    const int e = st->c_reps[--lt->total - st->E];
    counts[e]--; // its key grows: it moves towards the front
    key[e] = st->w[e] / counts[e];
    int u = 0;
    while (eord[u] != e) u++;
    while (u > 0 && lpt_before(key, e, eord[u - 1])) {
      eord[u] = eord[u - 1];
      u--;
    }
    eord[u] = e;
  }
  int n = 0;
  for (int t = 0; t < st->E; t++)
    for (int c = 0; c < counts[eord[t]]; c++) rep[n++] = eord[t];
  mp_st_clear(st);
  lpt_pack(st, rep, n, counts);
}

/* Construction for when there are spare slots (at least R - 1 beyond one
 * per expert): one replica per expert in snake order over the ranks, then
 * the component transfers bring the ranks to the mean T = total / R as far
 * as the free slots allow. */
void mp_construct_transfer(mp_place_layer *st) {
  const int E = st->E, R = st->R;
  int *ord = st->c_ord;
  mp_st_clear(st);
  double tot = 0;
  for (int e = 0; e < E; e++) {
    ord[e] = e;
    tot += st->w[e];
  }
  mp_radix_sort_desc(ord, E, st->w, st->c_rtmp, st->c_rk0, st->c_rk1);
  // Snake order over the ranks (0..R-1, R-1..0, ...) of the experts in
  // decreasing load: O(E), every rank gets ceil or floor of E / R experts
  // (so one slot per rank stays free when R (S - 1) >= E), and the
  // transfers below remove whatever imbalance is left.
  for (int t = 0; t < E; t++) {
    int round = t / R, pos = t % R, r = round & 1 ? R - 1 - pos : pos;
    mp_st_put(st, mp_st_free_slot(st, r), ord[t], st->w[ord[t]]);
  }
  mp_transfer_components(st, tot / R);
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
        if (st->nfree[k] > 0 && !mp_st_rank_holds(st, k, e) && (q < 0 || st->load[k] < st->load[q]))
          q = k;
    if (q < 0) {
      heap[0] = heap[--n];
      heap_sift_down(heap, n, 0, st->w, counts);
      continue;
    }
    mp_st_put(st, mp_st_free_slot(st, q), e, 0);
    counts[e]++;
    spare--;
    heap_sift_down(heap, n, 0, st->w, counts);
  }
}
