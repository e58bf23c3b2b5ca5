/* The runtime's built-in placer, used when no placement engine is linked in
 * (see docs/RUNTIME.md). Per layer:
 *   1. replicas: every expert gets one; each spare slot goes to the expert
 *      with the largest load per replica (at most one replica per rank);
 *   2. packing: replicas, heaviest first, go to the least loaded rank with a
 *      free slot that does not hold the expert yet (LPT);
 *   3. shares: each replicated expert's load is water-filled over its
 *      replicas' ranks given the rest of their load, a few sweeps;
 *   4. relabelling: new rank contents are matched to old ranks by the number
 *      of experts they already hold, and experts keep their slot on a rank,
 *      so that only what must move moves. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/internal.h"

typedef struct replica {
  int expert;
  double load;
} replica;

static int cmp_replica_desc(const void *a, const void *b) {
  const replica *x = a, *y = b;
  if (x->load != y->load) return x->load < y->load ? 1 : -1;
  return x->expert - y->expert;
}

/* Level t with sum_i max(0, t - base[i]) = amount; fills give[i]. */
static void water_fill(int k, const double *base, double amount, double *give) {
  double lo = base[0], hi;
  for (int i = 1; i < k; i++)
    if (base[i] < lo) lo = base[i];
  hi = lo + amount;
  for (int i = 0; i < k; i++)
    if (base[i] + amount > hi) hi = base[i] + amount;
  for (int it = 0; it < 60; it++) {
    double mid = 0.5 * (lo + hi), sum = 0.0;
    for (int i = 0; i < k; i++) sum += mid > base[i] ? mid - base[i] : 0.0;
    if (sum > amount) hi = mid;
    else lo = mid;
  }
  double sum = 0.0;
  for (int i = 0; i < k; i++) sum += give[i] = lo > base[i] ? lo - base[i] : 0.0;
  // Distribute the bisection's residue evenly so the shares sum exactly.
  for (int i = 0; i < k; i++) give[i] += (amount - sum) / k;
}

/* Scratch of one layer; shapes: count [E], reps [G], holds [R][E], nheld [R],
 * load [R], newr [R][S] (expert per slot of an unlabelled new rank),
 * rep_load [R][S], perm [R], used [R], where [R][S] (old-labelled global
 * slot of each new slot). */
typedef struct scratch {
  int *count, *holds, *nheld, *newr, *perm, *used, *where;
  replica *reps;
  double *load, *rep_load;
} scratch;

static void place_layer(int E, int R, int S, const double *p, const int *cur, int *out_se,
                        double *out_sh, scratch *w) {
  int G = R * S;
  // 1. replica counts
  for (int e = 0; e < E; e++) w->count[e] = 1;
  for (int spare = G - E; spare > 0; spare--) {
    int best = -1;
    for (int e = 0; e < E; e++)
      if (w->count[e] < R && (best < 0 || p[e] / w->count[e] > p[best] / w->count[best]))
        best = e;
    if (best < 0) break;
    w->count[best]++;
  }
  int nrep = 0;
  for (int e = 0; e < E; e++)
    for (int c = 0; c < w->count[e]; c++) w->reps[nrep++] = (replica){e, p[e] / w->count[e]};
  qsort(w->reps, (size_t)nrep, sizeof *w->reps, cmp_replica_desc);

  // 2. LPT packing into unlabelled new ranks
  memset(w->nheld, 0, (size_t)R * sizeof *w->nheld);
  memset(w->load, 0, (size_t)R * sizeof *w->load);
  memset(w->holds, 0, (size_t)R * E * sizeof *w->holds);
  for (int g = 0; g < G; g++) w->newr[g] = -1;
  for (int i = 0; i < nrep; i++) {
    int e = w->reps[i].expert, best = -1;
    for (int r = 0; r < R; r++)
      if (w->nheld[r] < S && !w->holds[(size_t)r * E + e] &&
          (best < 0 || w->load[r] < w->load[best]))
        best = r;
    if (best < 0) {
      w->count[e]--; // an extra replica no rank can take (count stays >= 1)
      continue;
    }
    w->newr[(size_t)best * S + w->nheld[best]++] = e;
    w->holds[(size_t)best * E + e] = 1;
    w->load[best] += w->reps[i].load;
  }
  for (int g = 0; g < G; g++) {
    int e = w->newr[g];
    w->rep_load[g] = e >= 0 ? p[e] / w->count[e] : 0.0;
  }

  // 3. water-fill each replicated expert over its replicas' ranks
  enum { MAXK = 256 };
  int idx[MAXK];
  double base[MAXK], give[MAXK];
  for (int sweep = 0; sweep < 8; sweep++) {
    for (int e = 0; e < E; e++) {
      if (w->count[e] < 2 || w->count[e] > MAXK) continue;
      int k = 0;
      for (int g = 0; g < G && k < MAXK; g++)
        if (w->newr[g] == e) {
          idx[k] = g;
          base[k] = w->load[g / S] - w->rep_load[g];
          k++;
        }
      water_fill(k, base, p[e], give);
      for (int i = 0; i < k; i++) {
        w->load[idx[i] / S] += give[i] - w->rep_load[idx[i]];
        w->rep_load[idx[i]] = give[i];
      }
    }
  }

  // 4. relabel: new rank a becomes old rank perm[a], greedily by overlap
  for (int a = 0; a < R; a++) w->perm[a] = -1;
  memset(w->used, 0, (size_t)R * sizeof *w->used);
  for (int round = 0; round < R; round++) {
    int ba = -1, bb = -1, bo = -1;
    for (int a = 0; a < R; a++) {
      if (w->perm[a] >= 0) continue;
      for (int b = 0; b < R; b++) {
        if (w->used[b]) continue;
        int ov = 0;
        for (int s = 0; s < S; s++) {
          int e = w->newr[(size_t)a * S + s];
          if (e >= 0)
            for (int t = 0; t < S; t++) ov += cur[(size_t)b * S + t] == e;
        }
        if (ov > bo) {
          bo = ov;
          ba = a;
          bb = b;
        }
      }
    }
    w->perm[ba] = bb;
    w->used[bb] = 1;
  }
  // slots: an expert already on its (relabelled) rank keeps its slot
  for (int g = 0; g < G; g++) {
    out_se[g] = -2; // not yet assigned
    w->where[g] = -1;
  }
  for (int a = 0; a < R; a++) {
    int b = w->perm[a];
    for (int s = 0; s < S; s++) {
      int e = w->newr[(size_t)a * S + s];
      if (e < 0) continue;
      for (int t = 0; t < S; t++)
        if (cur[(size_t)b * S + t] == e && out_se[(size_t)b * S + t] == -2) {
          out_se[(size_t)b * S + t] = e;
          w->where[(size_t)a * S + s] = b * S + t;
          break;
        }
    }
    for (int s = 0; s < S; s++) {
      int e = w->newr[(size_t)a * S + s];
      if (e < 0 || w->where[(size_t)a * S + s] >= 0) continue;
      for (int t = 0; t < S; t++)
        if (out_se[(size_t)b * S + t] == -2) {
          out_se[(size_t)b * S + t] = e;
          w->where[(size_t)a * S + s] = b * S + t;
          break;
        }
    }
  }
  for (int g = 0; g < G; g++) {
    if (out_se[g] == -2) out_se[g] = -1;
    out_sh[g] = 0.0;
  }
  for (int g = 0; g < G; g++) {
    int e = w->newr[g], to = w->where[g];
    if (e < 0 || to < 0) continue;
    double sh = p[e] > 0.0 ? w->rep_load[g] / p[e] : 1.0 / w->count[e];
    out_sh[to] = sh > 0.0 ? sh : 0.0;
  }
  // Renormalise so that every expert's shares sum to 1 exactly.
  for (int e = 0; e < E; e++) {
    double sum = 0.0;
    for (int g = 0; g < G; g++)
      if (out_se[g] == e) sum += out_sh[g];
    for (int g = 0; g < G; g++)
      if (out_se[g] == e) out_sh[g] = sum > 0.0 ? out_sh[g] / sum : 1.0 / w->count[e];
  }
}

int mp_rt_place(int L, int E, int R, int S, const double *p, const int *cur, int *out_se,
                double *out_sh) {
  int G = R * S;
  scratch w;
  w.count = malloc((size_t)E * sizeof *w.count);
  w.holds = malloc((size_t)R * E * sizeof *w.holds);
  w.nheld = malloc((size_t)R * sizeof *w.nheld);
  w.newr = malloc((size_t)G * sizeof *w.newr);
  w.perm = malloc((size_t)R * sizeof *w.perm);
  w.used = malloc((size_t)R * sizeof *w.used);
  w.where = malloc((size_t)G * sizeof *w.where);
  w.reps = malloc((size_t)G * sizeof *w.reps);
  w.load = malloc((size_t)R * sizeof *w.load);
  w.rep_load = malloc((size_t)G * sizeof *w.rep_load);
  int status = MOEPLACE_OK;
  if (!w.count || !w.holds || !w.nheld || !w.newr || !w.perm || !w.used || !w.where ||
      !w.reps || !w.load || !w.rep_load) {
    status = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory in the built-in placer");
  } else {
    for (int l = 0; l < L; l++)
      place_layer(E, R, S, p + (size_t)l * E, cur + (size_t)l * G, out_se + (size_t)l * G,
                  out_sh + (size_t)l * G, &w);
  }
  free(w.count);
  free(w.holds);
  free(w.nheld);
  free(w.newr);
  free(w.perm);
  free(w.used);
  free(w.where);
  free(w.reps);
  free(w.load);
  free(w.rep_load);
  return status;
}
