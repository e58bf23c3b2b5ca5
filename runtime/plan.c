/* Placements and migration plans: validity, routing shares, predicted
 * balance, and the list of transfers from one placement to the next. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "runtime/internal.h"

int mp_rt_check_placement(const moeplace_runtime *rt, const int *slot_expert,
                          const double *shares) {
  int L = rt->L, E = rt->E, S = rt->S, R = rt->R, G = rt->G;
  int *seen = calloc((size_t)E * (size_t)R, sizeof *seen); // seen: [E][R] replicas
  double *sum = calloc((size_t)E, sizeof *sum);
  int status = MOEPLACE_OK;
  if (!seen || !sum) {
    status = mp_fail(MOEPLACE_ERR_NOMEM, "out of memory checking a placement");
    goto done;
  }
  for (int l = 0; l < L && status == MOEPLACE_OK; l++) {
    memset(seen, 0, (size_t)E * R * sizeof *seen);
    memset(sum, 0, (size_t)E * sizeof *sum);
    for (int g = 0; g < G; g++) {
      int e = slot_expert[(size_t)l * G + g];
      if (e < -1 || e >= E) {
        status = mp_fail(MOEPLACE_ERR_ARG, "placement: layer %d slot %d holds expert %d, not in [-1, %d)",
                         l, g, e, E);
        break;
      }
      if (e < 0) continue;
      int r = g / S;
      if (seen[(size_t)e * R + r]++) {
        status = mp_fail(MOEPLACE_ERR_ARG, "placement: rank %d holds expert %d of layer %d twice",
                         r, e, l);
        break;
      }
      if (shares) {
        double sh = shares[(size_t)l * G + g];
        if (!(sh >= 0.0 && sh <= 1.0)) {
          status = mp_fail(MOEPLACE_ERR_ARG, "placement: share %g of layer %d slot %d not in [0, 1]",
                           sh, l, g);
          break;
        }
        sum[e] += sh;
      }
    }
    for (int e = 0; e < E && status == MOEPLACE_OK; e++) {
      int n = 0;
      for (int r = 0; r < R; r++) n += seen[(size_t)e * R + r];
      if (n == 0)
        status = mp_fail(MOEPLACE_ERR_ARG, "placement: expert %d of layer %d has no replica", e, l);
      else if (shares && fabs(sum[e] - 1.0) > 1e-6)
        status = mp_fail(MOEPLACE_ERR_ARG, "placement: shares of expert %d of layer %d sum to %g",
                         e, l, sum[e]);
    }
  }
done:
  free(seen);
  free(sum);
  return status;
}

void mp_rt_equal_shares(int L, int G, int E, const int *slot_expert, double *shares) {
  int *count = calloc((size_t)E, sizeof *count);
  if (!count) return; // callers check placements with shares afterwards
  for (int l = 0; l < L; l++) {
    const int *se = slot_expert + (size_t)l * G;
    memset(count, 0, (size_t)E * sizeof *count);
    for (int g = 0; g < G; g++)
      if (se[g] >= 0) count[se[g]]++;
    for (int g = 0; g < G; g++)
      shares[(size_t)l * G + g] = se[g] >= 0 ? 1.0 / count[se[g]] : 0.0;
  }
  free(count);
}

int mp_rt_make_plan(const moeplace_runtime *rt, const int *new_se, mp_rt_transfer **out,
                    int *n_out) {
  int L = rt->L, S = rt->S, R = rt->R, G = rt->G;
  *out = NULL;
  *n_out = 0;
  int cap = 0, n = 0;
  mp_rt_transfer *plan = NULL;
  int *sends = calloc((size_t)R, sizeof *sends); // transfers assigned to each source rank
  if (!sends) return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory building a migration plan");
  for (int l = 0; l < L; l++) {
    const int *old = rt->slot_expert + (size_t)l * G;
    const int *nw = new_se + (size_t)l * G;
    for (int g = 0; g < G; g++) {
      int e = nw[g];
      if (e < 0 || old[g] == e) continue;
      int dst = g / S, best = -1, best_class = 99, best_sends = 0;
      for (int h = 0; h < G; h++) {
        if (old[h] != e) continue;
        int src = h / S;
        int cls = mp_rt_topology_class(&rt->topo, src, dst);
        if (best < 0 || cls < best_class || (cls == best_class && sends[src] < best_sends)) {
          best = h;
          best_class = cls;
          best_sends = sends[src];
        }
      }
      if (best < 0) {
        free(plan);
        free(sends);
        return mp_fail(MOEPLACE_ERR_ARG,
                       "plan: expert %d of layer %d is new in slot %d but held nowhere", e, l, g);
      }
      if (n == cap) {
        cap = cap ? 2 * cap : 64;
        mp_rt_transfer *grown = realloc(plan, (size_t)cap * sizeof *plan);
        if (!grown) {
          free(plan);
          free(sends);
          return mp_fail(MOEPLACE_ERR_NOMEM, "out of memory building a migration plan");
        }
        plan = grown;
      }
      plan[n++] = (mp_rt_transfer){l, e, best / S, best % S, dst, g % S};
      if (best / S != dst) sends[best / S]++;
    }
  }
  free(sends);
  *out = plan;
  *n_out = n;
  return MOEPLACE_OK;
}

double mp_rt_predicted_imbalance(int L, int E, int R, int S, const double *p,
                                 const int *slot_expert, const double *shares) {
  int G = R * S;
  double sum_max = 0.0, sum_mean = 0.0;
  double *load = malloc((size_t)R * sizeof *load);
  if (!load) return NAN;
  for (int l = 0; l < L; l++) {
    memset(load, 0, (size_t)R * sizeof *load);
    double total = 0.0;
    for (int e = 0; e < E; e++) total += p[(size_t)l * E + e];
    for (int g = 0; g < G; g++) {
      int e = slot_expert[(size_t)l * G + g];
      if (e >= 0) load[g / S] += p[(size_t)l * E + e] * shares[(size_t)l * G + g];
    }
    double mx = 0.0;
    for (int r = 0; r < R; r++)
      if (load[r] > mx) mx = load[r];
    sum_max += mx;
    sum_mean += total / R;
  }
  free(load);
  return sum_mean > 0.0 ? sum_max / sum_mean : 1.0;
}
