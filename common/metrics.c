/* docs/metrics.md's formulas: see common/metrics.h. */
#include "common/metrics.h"

#include <math.h>

/* ---- proportions -------------------------------------------------------- */

void mp_proportions_from_counts(const uint64_t *counts, int n, double *p) {
  // sum: the window's tokens, in long double so that the division does not
  // lose the small experts of a very large window.
  long double sum = 0;
  for (int i = 0; i < n; i++) sum += (long double)counts[i];
  // no tokens: uniform (see the header)
  if (sum <= 0) {
    for (int i = 0; i < n; i++) p[i] = 1.0 / n;
    return;
  }
  // p[i] = counts[i] / sum
  for (int i = 0; i < n; i++) p[i] = (double)((long double)counts[i] / sum);
}

void mp_proportions_from_tokens(const double *tokens, int n, double *p) {
  // sum: the window's tokens
  double sum = 0;
  for (int i = 0; i < n; i++) sum += tokens[i];
  // no tokens: uniform (see the header)
  if (!(sum > 0)) {
    for (int i = 0; i < n; i++) p[i] = 1.0 / n;
    return;
  }
  // p[i] = tokens[i] / sum
  for (int i = 0; i < n; i++) p[i] = tokens[i] / sum;
}

/* ---- imbalance ---------------------------------------------------------- */

void mp_imbalance_add_layer(mp_imbalance_sums *s, const double *rank_load, int ranks,
                            double layer_tokens) {
  // the busiest rank of this layer: rank_load[ranks]
  double mx = 0;
  for (int r = 0; r < ranks; r++)
    if (rank_load[r] > mx) mx = rank_load[r];
  // numerator: sum over layers of max rank load
  s->max_sum += mx;
  // denominator: sum over layers of mean rank load = layer tokens / ranks
  s->mean_sum += layer_tokens / ranks;
}

double mp_imbalance_ratio(double max_sum, double mean_sum) {
  // metrics.md "imbalance"; no tokens at all counts as perfect balance
  return mean_sum > 0 ? max_sum / mean_sum : 1.0;
}

/* ---- mape and mae_pp ---------------------------------------------------- */

void mp_forecast_error_add(mp_forecast_error *s, const double *pred, const double *actual, int n) {
  for (int i = 0; i < n; i++) {
    // absolute error of entry i, into mae_pp always
    const double err = fabs(pred[i] - actual[i]);
    s->ae += err;
    s->n_ae++;
    // relative error into mape, unless the actual is (nearly) zero
    if (actual[i] >= MP_MAPE_MIN_ACTUAL) {
      s->ape += err / actual[i];
      s->n_ape++;
    } else {
      s->skipped++;
    }
  }
}

double mp_mape(const mp_forecast_error *s) {
  // metrics.md "mape": the mean of |p - a| / a, in percent
  return s->n_ape ? 100.0 * s->ape / (double)s->n_ape : NAN;
}

double mp_mae_pp(const mp_forecast_error *s) {
  // metrics.md "mae_pp": the mean of |p - a|, in percentage points
  return s->n_ae ? 100.0 * s->ae / (double)s->n_ae : NAN;
}
