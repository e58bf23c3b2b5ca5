/* Even shares (MOEPLACE_SHARES_EVEN): every replica of expert e carries
 * exactly w_e / c_e, c_e its replica count, as the routers of vLLM, SGLang
 * and DeepSeek's EPLB maps route. The assignment alone fixes the rank
 * loads, so the solver chooses counts and positions for that objective:
 *
 *   1. counts by marginal gain (the next slot to the largest w_e / c_e,
 *      every useful slot used) and LPT packing of the w_e / c_e items with
 *      the no-duplicate rule and the slot capacity (mp_construct_lpt);
 *   2. local search from the busiest ranks: move a replica to a free slot,
 *      swap two replicas, add a replica (into a free slot, or in place of a
 *      spare replica of another expert), or drop a spare replica; the last
 *      three re-count an expert and so re-split all its replicas. The best
 *      change by the drop of the sum of squared rank loads is kept if no
 *      rank rises above the max; with a current placement a change that
 *      adds moves must also lower the total excess over the mean by more
 *      than its price (migration_weight x cost + min_gain per move).
 *
 * The search stops near the bound, at max_iter changes, at the deadline, and
 * (sp->flat_stop > 0, node-limited groups) after flat_stop changes in a row
 * that left the max rank load unchanged.
 *
 * slot_x of a replica is always w_e / c_e here; even_resplit restores it
 * after a count changes. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "common/timer.h"
#include "placement/solver_internal.h"

void mp_even_resplit(mp_place_layer *st, int e) {
  const double x = st->w[e] / st->cnt[e];
  for (int i = st->head[e]; i >= 0; i = st->next[i]) {
    st->load[i / st->S] += x - st->slot_x[i];
    st->slot_x[i] = x;
  }
}

/* Recomputes every slot and rank load from the counts (no drift from the
 * incremental updates). */
void mp_even_reset_loads(mp_place_layer *st) {
  for (int r = 0; r < st->R; r++) st->load[r] = 0;
  for (int i = 0; i < st->RS; i++) {
    int e = st->slot_e[i];
    st->slot_x[i] = e < 0 ? 0 : st->w[e] / st->cnt[e];
    if (e >= 0) st->load[i / st->S] += st->slot_x[i];
  }
}

void mp_ev_add(mp_even_eval *v, int r, double d) {
  if (!v->mark[r]) { // a recount of an expert of c replicas stays O(c)
    v->mark[r] = 1;
    v->touched[v->nt++] = r;
  }
  v->dl[r] += d;
}

void mp_ev_recount(mp_even_eval *v, const mp_place_layer *st, int e, int c2, int skip) {
  const double d = st->w[e] / c2 - st->w[e] / st->cnt[e];
  for (int i = st->head[e]; i >= 0; i = st->next[i])
    if (i != skip) mp_ev_add(v, i / st->S, d);
}

/* The closed form's slot limit: bit masks of an int, spare[]. */
#define EVEN_MASK_SLOTS 30

/* The search's figures of the state: mean T, max M and the limit. */
typedef struct even_search {
  mp_place_layer *st;
  const mp_place_search *sp;
  double T, M, eps;
  int priced;       // migration matters: a current placement and a price
  double *bytes_used;
  mp_even_eval v;
  // the best change so far
  int kind, i, j, q; // kind 0: none
  double key;
  int *order;        // [R] ranks by increasing load
  // closed-form adds (no current placement, S <= EVEN_MASK_SLOTS): per slot k
  // of the source rank, w_b / (c_b + 1), the drop db of b's replicas and the
  // change of the sum of squares on b's ranks; bit k of mask[q] is set if
  // rank q holds slot k's expert
  int closed;
  double *add_x, *add_d, *add_p; // [S]
  int *mask;                     // [R]
  int spare[EVEN_MASK_SLOTS];    // [S] the receiver's slots holding a spare replica
  int nspare;
} even_search;

#define EVEN_RECEIVERS 4

enum { EV_MOVE = 1, EV_SWAP, EV_ADD, EV_ADDEV, EV_DROP };

/* Scores the change held in s->v with its price and bytes; records it if
 * it is the best acceptable one. Clears s->v. */
static void ev_score(even_search *s, int kind, int i, int j, int q, double price, double dbytes) {
  const mp_place_layer *st = s->st;
  mp_even_eval *v = &s->v;
  double dsq = 0, dx = 0;
  int ok = 1;
  for (int k = 0; k < v->nt; k++) {
    const int r = v->touched[k];
    const double a = st->load[r], b = a + v->dl[r];
    if (b > s->M + s->eps) ok = 0;
    dsq += b * b - a * a;
    dx += (b > s->T ? b - s->T : 0) - (a > s->T ? a - s->T : 0);
    v->dl[r] = 0;
    v->mark[r] = 0;
  }
  v->nt = 0;
  if (!ok) return;
  if (s->priced && price > 0 && -dx <= price) return;
  if (dbytes > 0 && s->sp->budget && *s->sp->budget >= 0 &&
      *s->bytes_used + dbytes > *s->sp->budget)
    return;
  const double key = -dsq - 2 * s->T * price;
  if (key <= s->eps * s->T || key <= s->key) return;
  s->key = key;
  s->kind = kind;
  s->i = i;
  s->j = j;
  s->q = q;
}

/* A change that moves delta tokens from rank r to rank q only (a move or
 * a swap): scored in closed form, without the touched-rank list. */
static void ev_pair(even_search *s, int kind, int i, int j, int q, double delta, double price,
                    double dbytes) {
  const mp_place_layer *st = s->st;
  const double a = st->load[i / st->S], b = st->load[q];
  if (b + delta > s->M + s->eps) return;
  const double key0 = 2 * delta * (a - b) - 2 * delta * delta; // -(change of the sum of squares)
  if (key0 - 2 * s->T * price <= s->key) return;               // cannot be the best
  if (price == 0 && dbytes == 0) { // nothing priced: key0 is the key (ev_score's tests)
    if (key0 <= s->eps * s->T) return;
    s->key = key0;
    s->kind = kind;
    s->i = i;
    s->j = j;
    s->q = q;
    return;
  }
  mp_ev_add(&s->v, i / st->S, -delta);
  mp_ev_add(&s->v, q, delta);
  ev_score(s, kind, i, j, q, price, dbytes);
}

/* The adds of the expert b of source slot i (its k-th) towards rank q
 * without a current placement (nothing priced), scored in closed form
 * instead of through the touched-rank list: b's ranks all fall by db, the
 * change of their sum of squares is precomputed per source slot
 * (even_prepare); for the add in place of a spare replica of a (slot j on
 * q) only a's other ranks rise, by da (plus db where they also hold b);
 * q's slots with a spare replica are listed in s->spare (even_spares).
 * Same changes and keys as ev_towards's generic path. */
static void ev_add_closed(even_search *s, int i, int k, int q) {
  mp_place_layer *st = s->st;
  const int S = st->S, b = st->slot_e[i];
  const double *L = st->load, lim = s->M + s->eps;
  const double xn = s->add_x[k], db = s->add_d[k], pb = s->add_p[k];
  const double lq = L[q];
  if (st->nfree[q] > 0 && lq + xn <= lim) {
    const double key = -(pb + xn * (2 * lq + xn));
    if (key > s->eps * s->T && key > s->key) {
      s->key = key;
      s->kind = EV_ADD;
      s->i = i;
      s->j = -1;
      s->q = q;
    }
  }
  for (int v = 0; v < s->nspare; v++) {
    const int j = q * S + s->spare[v], a = st->slot_e[j];
    if (a == b) continue;
    const double dq = xn - st->slot_x[j];
    if (lq + dq > lim) continue;
    double dsq = pb + dq * (2 * lq + dq);
    if (-dsq <= s->key) continue; // a's ranks only add to the sum of squares
    const double da = st->w[a] / (st->cnt[a] - 1) - st->slot_x[j]; // slot_x: w_a / c_a
    int ok = 1;
    for (int t = st->head[a]; t >= 0 && ok; t = st->next[t]) {
      if (t == j) continue;
      const int r2 = t / S;
      const double base = L[r2] + ((s->mask[r2] >> k) & 1 ? db : 0);
      if (base + da > lim) ok = 0;
      dsq += da * (2 * base + da);
    }
    const double key = -dsq;
    if (!ok || key <= s->eps * s->T || key <= s->key) continue;
    s->key = key;
    s->kind = EV_ADDEV;
    s->i = i;
    s->j = j;
    s->q = q;
  }
}

/* The per-source-slot figures of ev_add_closed for source rank r (set =
 * 1), or clears the masks after (set = 0). */
static void even_prepare(even_search *s, int r, int set) {
  const mp_place_layer *st = s->st;
  const int S = st->S;
  for (int k = 0; k < S; k++) {
    const int i = r * S + k, b = st->slot_e[i];
    if (b < 0) continue;
    double pb = 0;
    const double xn = st->w[b] / (st->cnt[b] + 1), db = xn - st->slot_x[i];
    for (int t = st->head[b]; t >= 0; t = st->next[t]) {
      const int r2 = t / S;
      if (!set) {
        s->mask[r2] = 0;
        continue;
      }
      pb += db * (2 * st->load[r2] + db);
      s->mask[r2] |= 1 << k;
    }
    s->add_x[k] = xn;
    s->add_d[k] = db;
    s->add_p[k] = pb;
  }
}

/* Lists in s->spare the slots of rank q that hold a spare replica (of an
 * expert with more than one), in slot order: the places ev_add_closed can
 * add in, the same for every source slot. */
static void even_spares(even_search *s, int q) {
  const mp_place_layer *st = s->st;
  const int *sl = st->slot_e + (size_t)q * st->S;
  s->nspare = 0;
  for (int u = 0; u < st->S; u++)
    if (sl[u] >= 0 && st->cnt[sl[u]] > 1) s->spare[s->nspare++] = u;
}

/* Candidate changes that take replica slot i (expert b, on rank r) off r
 * or re-count b, towards rank q, with a current placement or without the
 * closed form (s->closed = 0: the adds through the touched-rank list). */
static void ev_towards(even_search *s, int i, int q) {
  mp_place_layer *st = s->st;
  const int S = st->S, r = i / S, b = st->slot_e[i], cb = st->cnt[b];
  const double x = st->slot_x[i];
  if (mp_st_rank_holds(st, q, b)) return;
  double pb = 0, bb = 0, p_i = 0, b_i = 0;
  if (s->priced || st->cur) {
    pb = mp_move_price(s->st, s->sp, b, q, &bb);
    p_i = mp_move_price(s->st, s->sp, b, r, &b_i);
  }
  if (st->nfree[q] > 0) {
    ev_pair(s, EV_MOVE, i, -1, q, x, pb - p_i, bb - b_i);
    if (cb < st->R && st->w[b] > 0) { // add a replica
      mp_ev_recount(&s->v, st, b, cb + 1, -1);
      mp_ev_add(&s->v, q, st->w[b] / (cb + 1));
      ev_score(s, EV_ADD, i, -1, q, pb, bb);
    }
  }
  for (int k = 0; k < S; k++) {
    const int j = q * S + k, a = st->slot_e[j];
    if (a < 0 || a == b) continue;
    const double y = st->slot_x[j];
    double pa = 0, ba = 0, pj = 0, bj = 0;
    if (s->priced || st->cur) pj = mp_move_price(s->st, s->sp, a, q, &bj);
    // without a current placement, ev_pair's cheap tests first: the rank scan last
    if (y < x && (st->cur || (st->load[q] + x - y <= s->M + s->eps &&
                              2 * (x - y) * (st->load[r] - st->load[q] - (x - y)) > s->key)) &&
        !mp_st_rank_holds(st, r, a)) { // swap
      if (s->priced || st->cur) pa = mp_move_price(s->st, s->sp, a, r, &ba);
      ev_pair(s, EV_SWAP, i, j, q, x - y, pb + pa - p_i - pj, bb + ba - b_i - bj);
    }
    if (st->cnt[a] > 1 && cb < st->R && st->w[b] > 0) { // add b in place of a spare a
      mp_ev_recount(&s->v, st, b, cb + 1, -1);
      mp_ev_recount(&s->v, st, a, st->cnt[a] - 1, j);
      mp_ev_add(&s->v, q, st->w[b] / (cb + 1) - y);
      ev_score(s, EV_ADDEV, i, j, q, pb - pj, bb - bj);
    }
  }
}

/* ev_towards without a current placement and with the adds in closed form
 * (s->closed): nothing is priced, so no price or byte is looked up, and the
 * swap's cheap tests run before the rank scan. The same candidates in the
 * same order, so the same keys and the same pick. */
static void ev_towards_closed(even_search *s, int i, int q) {
  mp_place_layer *st = s->st;
  const int S = st->S, r = i / S, b = st->slot_e[i];
  if (mp_st_rank_holds(st, q, b)) return;
  const double x = st->slot_x[i], lr = st->load[r], lq = st->load[q], lim = s->M + s->eps;
  if (st->cnt[b] < st->R && st->w[b] > 0) ev_add_closed(s, i, i - r * S, q);
  if (st->nfree[q] > 0) ev_pair(s, EV_MOVE, i, -1, q, x, 0, 0);
  // a swap moves d in (0, x] from r to q for the key 2 d (lr - lq - d), at
  // most its value at min(x, (lr - lq) / 2): when that cannot beat the
  // best so far (with a margin for rounding), no swap can
  const double dm = x < 0.5 * (lr - lq) ? x : 0.5 * (lr - lq);
  if (2 * dm * (lr - lq - dm) * (1 + 1e-9) <= s->key) return;
  for (int k = 0; k < S; k++) {
    const int j = q * S + k, a = st->slot_e[j];
    if (a < 0 || a == b) continue;
    const double d = x - st->slot_x[j]; // a swap moves d from r to q
    if (d > 0 && lq + d <= lim && 2 * d * (lr - lq - d) > s->key && !mp_st_rank_holds(st, r, a))
      ev_pair(s, EV_SWAP, i, j, q, d, 0, 0);
  }
}

/* Applies the recorded change; the bytes it adds (or frees) go to
 * *bytes_used. */
static void ev_apply(even_search *s) {
  mp_place_layer *st = s->st;
  const int i = s->i, j = s->j, b = st->slot_e[i];
  double before = 0, after = 0;
  if (s->kind == EV_MOVE) {
    before = mp_slot_bytes(st, i);
    const double x = mp_st_take(st, i);
    const int jj = mp_st_free_slot(st, s->q);
    mp_st_put(st, jj, b, x);
    after = mp_slot_bytes(st, jj);
  } else if (s->kind == EV_SWAP) {
    const int a = st->slot_e[j];
    before = mp_slot_bytes(st, i) + mp_slot_bytes(st, j);
    const double x = mp_st_take(st, i), y = mp_st_take(st, j);
    mp_st_put(st, j, b, x);
    mp_st_put(st, i, a, y);
    after = mp_slot_bytes(st, i) + mp_slot_bytes(st, j);
  } else if (s->kind == EV_ADD || s->kind == EV_ADDEV) {
    int jj = j;
    if (s->kind == EV_ADDEV) {
      const int a = st->slot_e[j];
      before = mp_slot_bytes(st, j);
      mp_st_take(st, j);
      mp_even_resplit(st, a);
    } else {
      jj = mp_st_free_slot(st, s->q);
    }
    mp_st_put(st, jj, b, 0);
    mp_even_resplit(st, b);
    after = mp_slot_bytes(st, jj);
  } else { // drop
    before = mp_slot_bytes(st, i);
    mp_st_take(st, i);
    mp_even_resplit(st, b);
  }
  *s->bytes_used += after - before;
}

/* Fills the best change taking load off rank r (or dropping one of its
 * spare replicas); 1 if one was found and applied. */
static int even_improve_rank(even_search *s, int r) {
  mp_place_layer *st = s->st;
  const int S = st->S, R = st->R;
  s->kind = 0;
  s->key = 0;
  for (int k = 0; k < S; k++) {
    const int i = r * S + k, b = st->slot_e[i];
    if (b < 0 || st->slot_x[i] <= 0) continue;
    if (st->cnt[b] > 1 && !(st->spread > 0)) { // drop this replica (noise-aware: never)
      mp_ev_add(&s->v, r, -st->slot_x[i]);
      mp_ev_recount(&s->v, st, b, st->cnt[b] - 1, i);
      double p_i = 0, b_i = 0;
      if (st->cur) p_i = mp_move_price(s->st, s->sp, b, r, &b_i);
      ev_score(s, EV_DROP, i, -1, -1, -p_i, -b_i);
    }
  }
  // receivers from the lightest up: the best changes go there; past the
  // first EVEN_RECEIVERS ranks, only while nothing has been found
  if (s->closed) even_prepare(s, r, 1);
  for (int t = 0; t < R; t++) {
    const int q = s->order[t];
    if (st->load[q] >= st->load[r]) break;
    if (t >= EVEN_RECEIVERS && s->kind) break;
    if (s->closed) even_spares(s, q);
    for (int k = 0; k < S; k++) {
      const int i = r * S + k;
      if (st->slot_e[i] < 0 || !(st->slot_x[i] > 0)) continue;
      if (s->closed)
        ev_towards_closed(s, i, q);
      else
        ev_towards(s, i, q);
    }
  }
  if (s->closed) even_prepare(s, r, 0);
  if (!s->kind) return 0;
  ev_apply(s);
  return 1;
}

#define EVEN_SOURCES 4

/* Re-sorts s->order by increasing load, ties by decreasing rank, so that
 * its tail is the busiest ranks in mp_place_top_loaded's order; s->M is the
 * max load. Insertion sort: one change moves a few ranks, the order stays
 * nearly sorted. */
static void even_sort(even_search *s) {
  const mp_place_layer *st = s->st;
  int *o = s->order;
  for (int t = 1; t < st->R; t++) {
    const int v = o[t];
    const double lv = st->load[v];
    int u = t;
    while (u > 0 && (st->load[o[u - 1]] > lv || (st->load[o[u - 1]] == lv && o[u - 1] < v))) {
      o[u] = o[u - 1];
      u--;
    }
    o[u] = v;
  }
  s->M = st->load[o[st->R - 1]];
}

/* One improving change from one of the EVEN_SOURCES busiest ranks (the
 * order sorted by even_sort). */
static int even_improve(even_search *s) {
  mp_place_layer *st = s->st;
  const int nt = st->R < EVEN_SOURCES ? st->R : EVEN_SOURCES;
  for (int k = 0; k < nt; k++) {
    const int r = s->order[st->R - 1 - k];
    if (st->load[r] <= s->T) break;
    if (even_improve_rank(s, r)) return 1;
  }
  return 0;
}

void mp_even_search(mp_place_layer *st, const mp_place_search *sp, double bound,
                    double *bytes_used) {
  double tot = 0;
  for (int e = 0; e < st->E; e++) tot += st->w[e];
  even_search s = {.st = st,
                   .sp = sp,
                   .T = tot / st->R,
                   .eps = 1e-12 * (tot > 0 ? tot / st->R : 1),
                   .priced = st->cur && (sp->lambda > 0 || sp->min_gain > 0),
                   .bytes_used = bytes_used,
                   .order = st->c_rh,
                   // (add_x, add_d, add_p fit in dscratch [2 max(E, RS)])
                   .closed = !st->cur && st->S <= EVEN_MASK_SLOTS &&
                             st->R + 3 * st->S <= 2 * (st->E > st->RS ? st->E : st->RS),
                   .mask = st->iscratch + st->R,
                   .add_x = st->dscratch + st->R,
                   .add_d = st->dscratch + st->R + st->S,
                   .add_p = st->dscratch + st->R + 2 * st->S,
                   .v = {.dl = st->dscratch, .touched = st->iscratch, .nt = 0,
                         .mark = st->ev_mark}};
  for (int r = 0; r < st->R; r++) {
    s.v.dl[r] = 0;
    s.order[r] = r;
    s.mask[r] = 0;
  }
  const int max_iter = sp->max_iter * MP_EVEN_ITER_FACTOR;
  double good = bound * (1 + MP_PLACE_GOOD_GAP) * (1 + 1e-12);
  if (sp->target > good) good = sp->target;
  double last = INFINITY;
  int flat = 0; // changes in a row that left the max where it was
  for (int it = 0; it < max_iter; it++) {
    even_sort(&s);
    if (s.M <= good) break;
    flat = s.M < last - s.eps ? 0 : flat + 1;
    if (sp->flat_stop > 0 && flat >= sp->flat_stop) break;
    last = s.M;
    if (sp->deadline > 0 && (it & 7) == 7 && mp_now_s() > sp->deadline) break;
    if (!even_improve(&s)) break;
  }
  mp_even_reset_loads(st);
}
