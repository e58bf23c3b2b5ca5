/* The formulas of docs/metrics.md, one home each, for every part of the
 * library and its tools (pure C, no MPI, no allocation):
 *
 *   proportions  counts [n] -> proportions [n]
 *   imbalance    sum over layers of max rank load / sum over layers of mean
 *                rank load ("Balance" in metrics.md)
 *   mape         mean of |p - a| / a over the entries with a >= 1e-6, and
 *                mae_pp beside it ("Forecast error" in metrics.md)
 *
 * Accumulating forms (mp_imbalance_sums, mp_forecast_error) let a caller sum
 * over layers, steps or origins and take the ratio once at the end, as the
 * definitions do. */
#ifndef MOEPLACE_COMMON_METRICS_H
#define MOEPLACE_COMMON_METRICS_H

#include <stdint.h>

/* ---- proportions -------------------------------------------------------- */

/* p[n] = counts[n] / sum(counts). A window with no tokens at all (sum 0)
 * gives the uniform vector, 1/n each: with no information no expert is
 * preferred (metrics.md does not define 0/0; this is the project's rule,
 * the one every part of moeplace uses). */
/* Exported under a moeplace_ name (not in any public header) because the
 * runtime in libmoeplace-mpi uses it too (see common/error.h). */
#define mp_proportions_from_counts moeplace_private_proportions_from_counts
void mp_proportions_from_counts(const uint64_t *counts, int n, double *p);

/* Same for token totals held as doubles (sums or differences of counts):
 * tokens[n] >= 0. */
void mp_proportions_from_tokens(const double *tokens, int n, double *p);

/* ---- imbalance ---------------------------------------------------------- */

/* The two sums of metrics.md's imbalance, over the layers added so far. */
typedef struct mp_imbalance_sums {
  double max_sum;  /* sum over layers of the busiest rank's tokens */
  double mean_sum; /* sum over layers of (the layer's tokens / ranks) */
} mp_imbalance_sums;

/* Adds one layer: rank_load[ranks] = tokens each rank processes in that
 * layer; layer_tokens = all the layer's tokens (the sum of its expert loads;
 * passed apart so that the mean stays right even when a placement leaves an
 * expert without a replica). ranks >= 1. */
void mp_imbalance_add_layer(mp_imbalance_sums *s, const double *rank_load, int ranks,
                            double layer_tokens);

/* max_sum / mean_sum; 1.0 (perfect) when there are no tokens at all
 * (mean_sum <= 0), so that an idle step does not poison an average. */
double mp_imbalance_ratio(double max_sum, double mean_sum);

/* ---- mape and mae_pp ---------------------------------------------------- */

/* Actuals below this are left out of mape and counted as skipped. */
#define MP_MAPE_MIN_ACTUAL 1e-6

/* Running sums of the forecast error (zero-initialise to start). */
typedef struct mp_forecast_error {
  double ape;      /* sum of |p - a| / a over the entries with a >= MP_MAPE_MIN_ACTUAL */
  int64_t n_ape;   /* how many entries that is */
  double ae;       /* sum of |p - a| over all entries */
  int64_t n_ae;    /* all entries */
  int64_t skipped; /* entries with a < MP_MAPE_MIN_ACTUAL (mape_skipped) */
} mp_forecast_error;

/* Adds n entries: predicted pred[n] against actual[n] (proportions). */
void mp_forecast_error_add(mp_forecast_error *s, const double *pred, const double *actual, int n);

/* mape in percent: 100 * ape / n_ape; NAN when no entry counted. */
double mp_mape(const mp_forecast_error *s);

/* mae in percentage points: 100 * ae / n_ae; NAN when no entry counted. */
double mp_mae_pp(const mp_forecast_error *s);

#endif
