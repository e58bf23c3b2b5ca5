#include "predict/proportions.h"

#include <math.h>

void mp_normalize_proportions(double *p, int n) {
  double sum = 0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(p[i]) || p[i] < 0) p[i] = 0;
    sum += p[i];
  }
  if (!(sum > 0) || !isfinite(sum)) {
    for (int i = 0; i < n; i++) p[i] = 1.0 / n;
    return;
  }
  for (int i = 0; i < n; i++) p[i] /= sum;
}

int mp_is_proportion_vector(const double *p, int n, double tol) {
  double sum = 0;
  for (int i = 0; i < n; i++) {
    if (!isfinite(p[i]) || p[i] < 0) return 0;
    sum += p[i];
  }
  return fabs(sum - 1.0) <= tol;
}
