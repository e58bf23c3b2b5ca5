/* Local search from the busiest ranks: give one of a rank's experts a
 * replica on a light rank (taking a free slot or evicting a spare replica of
 * another expert), or swap a replica with one on a light rank. A change is
 * kept only if the total excess over the mean drops by more than lambda x
 * its migration cost plus min_gain, the max load does not rise, and the
 * byte budget allows it; otherwise the state snapshot undoes it. */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <math.h>

#include "common/timer.h"
#include "placement/solver_internal.h"

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
                        double T, double X0, int relaxed, double *bytes_used) {
  const int S = st->S, R = st->R;
  const double M = st->load[rs];
  cand best[NCAND];
  int nb = 0;
  // flex [R]: tokens each rank holds in replicas of split experts, which
  // water-filling may move to their other replicas after a swap
  double *flex = st->c_key; // the constructions' scratch, unused during a search
  for (int r = 0; r < R; r++) {
    flex[r] = 0;
    for (int k = 0; k < S; k++) {
      const int e = st->slot_e[r * S + k];
      if (e >= 0 && st->cnt[e] > 1) flex[r] += st->slot_x[r * S + k];
    }
  }
  for (int a = 0; a < S; a++) {
    int i = rs * S + a, b = st->slot_e[i];
    if (b < 0 || st->slot_x[i] <= 0) continue;
    const double xi = st->slot_x[i];
    for (int q = 0; q < R; q++) {
      if (q == rs) continue;
      const double Lq = st->load[q];
      if (Lq >= M) continue;
      const int q_has_b = mp_st_rank_holds(st, q, b);
      int cls;
      // costs only matter through lambda (and mp_move_cost scans replicas)
      const int priced = sp->lambda > 0 && st->cur;
      const double cb = q_has_b || !priced ? 0 : sp->lambda * mp_move_cost(st, b, q, &cls);
      for (int k = 0; k < S; k++) {
        int j = q * S + k, a2 = st->slot_e[j];
        if (!q_has_b && (a2 < 0 || (a2 != b && st->cnt[a2] > 1))) {
          // replicate b into slot j (evicting a spare replica of a2)
          double base = Lq - st->slot_x[j];
          // tokens that can flow from rs to q without raising q above T
          double d = base < T ? (T - base < M - T ? T - base : M - T) : 0;
          if (d > xi) d = xi;
          double est = d - cb + (a2 >= 0 && priced ? sp->lambda * mp_slot_cost(st, j) : 0);
          if (d > 0) cand_push(best, &nb, (cand){1, i, j, est});
        }
        if (!q_has_b && a2 >= 0 && a2 != b && (relaxed || st->slot_x[j] < xi) &&
            !mp_st_rank_holds(st, rs, a2)) {
          // swap b (on rs) with a2 (on q)
          double xj = st->slot_x[j];
          double m1 = M - xi + xj, m2 = Lq - xj + xi;
          // a rank above M may shed its split replicas' tokens to their
          // other replicas (an optimistic estimate: the change itself is
          // evaluated water-filled below); relaxed, also rs, so that a
          // larger replica may come in
          const double sb = st->cnt[b] > 1 ? xi : 0, sa = st->cnt[a2] > 1 ? xj : 0;
          if (m2 >= M) m2 = fmax(m2 - (flex[q] - sa + (relaxed ? sb : 0)), T);
          if (relaxed && m1 >= M) m1 = fmax(m1 - (flex[rs] - sb + sa), T);
          double nm = m1 > m2 ? m1 : m2;
          int c2;
          double cost = !priced ? 0
                                : cb + sp->lambda * mp_move_cost(st, a2, rs, &c2) -
                                      sp->lambda * (mp_slot_cost(st, i) + mp_slot_cost(st, j));
          if (nm < M) cand_push(best, &nb, (cand){2, i, j, M - nm - cost});
        }
      }
    }
  }
  for (int c = 0; c < nb; c++) {
    if (best[c].est <= sp->min_gain) break;
    const int i = best[c].i, j = best[c].j, q = j / S;
    double bytes_before = mp_slot_bytes(st, i) + mp_slot_bytes(st, j);
    double cost_before = mp_slot_cost(st, i) + mp_slot_cost(st, j);
    mp_st_save(st);
    double bytes_after, cost_after;
    if (best[c].kind == 1) {
      int b = st->slot_e[i], a2 = st->slot_e[j];
      bytes_before = mp_slot_bytes(st, j);
      cost_before = mp_slot_cost(st, j);
      if (a2 >= 0) {
        double x = mp_st_take(st, j);
        // the evicted replica's tokens go to a2's other replicas
        int h = st->head[a2];
        st->slot_x[h] += x;
        st->load[h / S] += x;
        mp_waterfill_expert(st, a2);
      }
      mp_st_put(st, j, b, 0);
      mp_waterfill_expert(st, b);
      bytes_after = mp_slot_bytes(st, j);
      cost_after = mp_slot_cost(st, j);
    } else {
      int b = st->slot_e[i], a2 = st->slot_e[j];
      double xi = mp_st_take(st, i), xj = mp_st_take(st, j);
      mp_st_put(st, j, b, xi);
      mp_st_put(st, i, a2, xj);
      bytes_after = mp_slot_bytes(st, i) + mp_slot_bytes(st, j);
      cost_after = mp_slot_cost(st, i) + mp_slot_cost(st, j);
    }
    mp_waterfill_ranks(st, rs, q, 2);
    const double dbytes = bytes_after - bytes_before;
    const double nm = mp_place_layer_max(st);
    const double gain = X0 - total_excess(st, T) - sp->lambda * (cost_after - cost_before);
    const int within_budget =
        !sp->budget || *sp->budget < 0 || dbytes <= 0 || *bytes_used + dbytes <= *sp->budget;
    if (gain > sp->min_gain && nm <= Mmax && within_budget) {
      *bytes_used += dbytes;
      return 1;
    }
    mp_st_restore(st);
  }
  return 0;
}

/* Tries the most loaded ranks in turn (the top one may be stuck while the
 * next ones can still shed load, which lowers the total excess). */
#define LS_SOURCES 4
static int improve_once(mp_place_layer *st, const mp_place_search *sp, double *bytes_used) {
  const int R = st->R;
  int top[LS_SOURCES];
  const int nt = mp_place_top_loaded(st, LS_SOURCES, top);
  double T = 0;
  for (int r = 0; r < R; r++) T += st->load[r];
  T /= R;
  const double Mmax = st->load[top[0]], X0 = total_excess(st, T);
  // relaxed swaps (a larger replica coming in, split replicas re-filled)
  // only once the usual changes are exhausted: tried first, they lead the
  // search to worse local optima (mean gap to the exact optimum 0.035%
  // instead of 0.016% on 3000 small instances)
  for (int relaxed = 0; relaxed < 2; relaxed++)
    for (int k = 0; k < nt; k++) {
      if (st->load[top[k]] <= T) break;
      if (improve_from(st, sp, top[k], Mmax, T, X0, relaxed, bytes_used)) return 1;
    }
  return 0;
}

void mp_local_search(mp_place_layer *st, const mp_place_search *sp, double bound,
                     double *bytes_used) {
  for (int it = 0; it < sp->max_iter; it++) {
    // close enough to the bound: further search costs more time than it gains
    if (mp_place_layer_max(st) <= bound * (1 + MP_PLACE_GOOD_GAP)) break;
    if (sp->deadline > 0 && (it & 7) == 7 && mp_now_s() > sp->deadline) break;
    if (!improve_once(st, sp, bytes_used)) break;
  }
  mp_waterfill_all(st, WF_TOL * (bound > 0 ? bound : 1), WF_MAX_PASSES);
}
