/* Load proportion vectors: repairing forecasts so that every predictor
 * returns a valid one, and checking them. (Counts -> proportions, the
 * metrics.md formula, lives in common/metrics.h.) */
#ifndef MOEPLACE_PREDICT_PROPORTIONS_H
#define MOEPLACE_PREDICT_PROPORTIONS_H

#include <stdint.h>

/* Makes p[n] a valid proportion vector in place: non-finite and negative
 * entries become 0, then the vector is scaled to sum to 1. A vector with
 * nothing left (all zero) becomes uniform, 1/n each: with no information,
 * no expert is preferred. */
void mp_normalize_proportions(double *p, int n);

/* 1 when p[n] is finite, non-negative and sums to 1 within tol. */
int mp_is_proportion_vector(const double *p, int n, double tol);

#endif
