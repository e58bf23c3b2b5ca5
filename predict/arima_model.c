#include "predict/arima_model.h"

#include <gsl/gsl_errno.h>
#include <gsl/gsl_linalg.h>
#include <gsl/gsl_multimin.h>
#include <math.h>
#include <string.h>

#include "common/error.h"

#define MAXR 3 /* state dimension max(p, q + 1) */
#define MAXPAR (1 + MP_ARIMA_MAX_P + MP_ARIMA_MAX_Q)
#define BAD_OBJECTIVE 1e30

/* ---- parameter transform ------------------------------------------------
 * Monahan (1984), as statsmodels' constrain_stationary_univariate: maps any
 * u[n] to the coefficients of a stationary AR(n) polynomial. */
static void constrain_stationary(const double *u, int n, double *out) {
  double y[MAXR][MAXR] = {{0}};
  double r[MAXR];
  for (int k = 0; k < n; k++) r[k] = u[k] / sqrt(1.0 + u[k] * u[k]);
  for (int k = 0; k < n; k++) {
    for (int i = 0; i < k; i++) y[k][i] = y[k - 1][i] + r[k] * y[k - 1][k - i - 1];
    y[k][k] = r[k];
  }
  for (int i = 0; i < n; i++) out[i] = -y[n - 1][i];
}

/* ---- exact likelihood by the Kalman filter -------------------------------
 * State space (Harvey): alpha_{t+1} = T alpha_t + R e_t, x_t = alpha_t[0],
 * T: [r][r] with phi down the first column and ones on the superdiagonal,
 * R = (1, theta_1, ..., theta_{r-1}). The variance is concentrated out
 * (filter run with sigma2 = 1). Returns 0, or -1 when the initial state
 * variance cannot be solved (a non-stationary AR, never produced by the
 * transform) or the prediction variance collapses. */
typedef struct arma_sys {
  int r;
  double T[MAXR][MAXR];
  double R[MAXR];
} arma_sys;

static void arma_build(const double *phi, int p, const double *theta, int q, arma_sys *s) {
  memset(s, 0, sizeof *s);
  s->r = p > q + 1 ? p : q + 1;
  for (int i = 0; i < p; i++) s->T[i][0] = phi[i];
  for (int i = 0; i + 1 < s->r; i++) s->T[i][i + 1] = 1.0;
  s->R[0] = 1.0;
  for (int i = 0; i < q; i++) s->R[i + 1] = theta[i];
}

/* P0 solves P = T P T' + R R' (the stationary state variance):
 * (I - T (x) T) vec(P) = vec(R R'), a system of r^2 <= 9 unknowns (GSL LU). */
static int arma_initial_variance(const arma_sys *s, double P[MAXR][MAXR]) {
  const int r = s->r, m = r * r;
  if (r == 1) {
    double den = 1.0 - s->T[0][0] * s->T[0][0];
    if (!(den > 1e-12)) return -1;
    P[0][0] = s->R[0] * s->R[0] / den;
    return 0;
  }
  double A[MAXR * MAXR * MAXR * MAXR], b[MAXR * MAXR], x[MAXR * MAXR];
  for (int i = 0; i < r; i++)
    for (int j = 0; j < r; j++) {
      int row = i * r + j;
      b[row] = s->R[i] * s->R[j];
      for (int k = 0; k < r; k++)
        for (int l = 0; l < r; l++)
          A[row * m + k * r + l] = (row == k * r + l) - s->T[i][k] * s->T[j][l];
    }
  gsl_matrix_view Av = gsl_matrix_view_array(A, m, m);
  gsl_vector_view bv = gsl_vector_view_array(b, m), xv = gsl_vector_view_array(x, m);
  size_t perm_data[MAXR * MAXR];
  gsl_permutation perm = {(size_t)m, perm_data};
  int sign;
  if (gsl_linalg_LU_decomp(&Av.matrix, &perm, &sign)) return -1;
  for (int i = 0; i < m; i++)
    if (fabs(gsl_matrix_get(&Av.matrix, i, i)) < 1e-12) return -1;
  if (gsl_linalg_LU_solve(&Av.matrix, &perm, &bv.vector, &xv.vector)) return -1;
  for (int i = 0; i < r; i++)
    for (int j = 0; j < r; j++) P[i][j] = x[i * r + j];
  return 0;
}

/* Runs the filter over x[n]. Outputs sum log F_t, sum v_t^2 / F_t and the
 * predicted state a_{n+1|n} (for forecasting). Once P has converged to its
 * steady state R R' (F = 1), the remaining steps need no covariance
 * update: a <- T (a + R v). That makes long series cheap.
 * T is a companion matrix (phi down column 0, ones on the superdiagonal),
 * so T y is phi_i y_0 + y_{i+1} and T P T' costs O(r^2), not O(r^3); the
 * products keep the order of the dense ones (the zero terms dropped), so
 * the results are the same to the bit. */
static int arma_filter(const arma_sys *s, const double *x, int n, double *sum_log_f,
                       double *sum_v2f, double a_end[MAXR]) {
  const int r = s->r;
  double P[MAXR][MAXR] = {{0}}, a[MAXR] = {0};
  if (arma_initial_variance(s, P)) return -1;
  double phi[MAXR], RR[MAXR][MAXR];
  for (int i = 0; i < r; i++) {
    phi[i] = s->T[i][0]; // 0 beyond p
    for (int j = 0; j < r; j++) RR[i][j] = s->R[i] * s->R[j];
  }
  double slog = 0, ssq = 0;
  int t = 0;
  for (; t < n; t++) {
    const double F = P[0][0];
    if (!(F > 1e-10) || !isfinite(F)) return -1;
    const double v = x[t] - a[0];
    slog += log(F);
    ssq += v * v / F;
    // update: a += K v, P -= K P[0,:], K = P[:,0] / F
    double K[MAXR], row0[MAXR];
    for (int i = 0; i < r; i++) {
      K[i] = P[i][0] / F;
      row0[i] = P[0][i];
    }
    for (int i = 0; i < r; i++) {
      a[i] += K[i] * v;
      for (int j = 0; j < r; j++) P[i][j] -= K[i] * row0[j];
    }
    // predict: a <- T a, P <- T P T' + R R'
    double an[MAXR] = {0}, TP[MAXR][MAXR], dev = 0;
    for (int i = 0; i < r; i++) {
      an[i] = phi[i] * a[0] + (i + 1 < r ? a[i + 1] : 0.0);
      for (int j = 0; j < r; j++) TP[i][j] = phi[i] * P[0][j] + (i + 1 < r ? P[i + 1][j] : 0.0);
    }
    for (int i = 0; i < r; i++)
      for (int j = 0; j < r; j++) {
        double acc = RR[i][j] + TP[i][0] * phi[j];
        if (j + 1 < r) acc += TP[i][j + 1];
        P[i][j] = acc;
        const double d = fabs(acc - RR[i][j]);
        if (d > dev) dev = d;
      }
    memcpy(a, an, sizeof a);
    if (dev < 1e-12) {
      t++;
      break;
    }
  }
  for (; t < n; t++) { // steady state: F = 1, K = R
    const double v = x[t] - a[0];
    ssq += v * v;
    double an[MAXR] = {0};
    for (int i = 0; i < r; i++)
      an[i] = phi[i] * (a[0] + s->R[0] * v) + (i + 1 < r ? a[i + 1] + s->R[i + 1] * v : 0.0);
    memcpy(a, an, sizeof a);
  }
  *sum_log_f = slog;
  *sum_v2f = ssq;
  if (a_end) memcpy(a_end, a, sizeof a);
  return 0;
}

/* ---- the objective -------------------------------------------------------- */
typedef struct fit_problem {
  const double *w; /* the (differenced, standardised) series: [n] */
  double *x;       /* scratch: w minus the mean: [n] */
  int n, p, q, has_mean;
} fit_problem;

static void unpack(const fit_problem *fp, const double *u, double *mean, double *phi,
                   double *theta) {
  int o = 0;
  *mean = fp->has_mean ? u[o++] : 0.0;
  if (fp->p) constrain_stationary(u + o, fp->p, phi);
  o += fp->p;
  if (fp->q) {
    // invertible MA: theta = -(a stationary AR polynomial), as statsmodels
    constrain_stationary(u + o, fp->q, theta);
    for (int i = 0; i < fp->q; i++) theta[i] = -theta[i];
  }
}

/* Concentrated log-likelihood of the standardised series. */
static double concentrated_loglik(const fit_problem *fp, double mean, const double *phi,
                                  const double *theta, double *sigma2) {
  for (int t = 0; t < fp->n; t++) fp->x[t] = fp->w[t] - mean;
  arma_sys s;
  arma_build(phi, fp->p, theta, fp->q, &s);
  double slog, ssq;
  if (arma_filter(&s, fp->x, fp->n, &slog, &ssq, NULL)) return -INFINITY;
  const double n = fp->n, s2 = ssq / n;
  if (!(s2 > 0)) return -INFINITY;
  if (sigma2) *sigma2 = s2;
  return -0.5 * n * (log(2 * M_PI) + log(s2) + 1.0) - 0.5 * slog;
}

static double objective(const gsl_vector *v, void *params) {
  const fit_problem *fp = params;
  double u[MAXPAR], mean, phi[MAXR], theta[MAXR];
  for (size_t i = 0; i < v->size; i++) u[i] = gsl_vector_get(v, i);
  unpack(fp, u, &mean, phi, theta);
  double ll = concentrated_loglik(fp, mean, phi, theta, NULL);
  return isfinite(ll) ? -ll / fp->n : BAD_OBJECTIVE;
}

/* Fits order (p,d,q) starting the simplex at u0 (unconstrained,
 * standardised units; NULL: zeros) with initial step step0. */
static int fit_order_from(const double *y, int n, int p, int d, int q, const mp_arima_opts *opts,
                          const double *u0, double step0, mp_arima_fit *out);

int mp_arima_fit_order(const double *y, int n, int p, int d, int q, const mp_arima_opts *opts,
                       mp_arima_fit *out) {
  return fit_order_from(y, n, p, d, q, opts, NULL, 0.5, out);
}

static int fit_order_from(const double *y, int n, int p, int d, int q, const mp_arima_opts *opts,
                          const double *u0, double step0, mp_arima_fit *out) {
  if (!y || !out || !opts) return mp_fail(MOEPLACE_ERR_ARG, "arima: NULL argument");
  if (p < 0 || p > MP_ARIMA_MAX_P || q < 0 || q > MP_ARIMA_MAX_Q || d < 0 || d > 1)
    return mp_fail(MOEPLACE_ERR_ARG, "arima: order (%d,%d,%d) outside p<=%d, d<=1, q<=%d", p, d, q,
                   MP_ARIMA_MAX_P, MP_ARIMA_MAX_Q);
  if (n < p + q + d + 3)
    return mp_fail(MOEPLACE_ERR_ARG, "arima: %d observations are too few for order (%d,%d,%d)", n,
                   p, d, q);
  // w and x below live on the stack (at most 2 x 80 kB)
  if (n > 10000) return mp_fail(MOEPLACE_ERR_ARG, "arima: series of %d values is too long (> 10000)", n);
  memset(out, 0, sizeof *out);
  out->p = p;
  out->d = d;
  out->q = q;
  const int m = n - d;
  out->n_eff = m;
  double w[m], x[m];
  // w: the series the ARMA describes, standardised so that the optimiser's
  // step sizes and tolerance mean the same thing for every series.
  double center = 0, scale = 0;
  for (int t = 0; t < m; t++) w[t] = d ? y[t + 1] - y[t] : y[t];
  if (!d) {
    for (int t = 0; t < m; t++) center += w[t];
    center /= m;
  }
  for (int t = 0; t < m; t++) scale += (w[t] - center) * (w[t] - center);
  scale = sqrt(scale / m);
  if (!(scale > 1e-12 * (fabs(center) + 1e-300)) || !(scale > 1e-300)) {
    // Constant (or, for d = 1, linear with zero steps) series: nothing to
    // fit; the natural forecast is the last value.
    out->degenerate = 1;
    out->mean = center;
    out->aic = -INFINITY;
    return MOEPLACE_OK;
  }
  for (int t = 0; t < m; t++) w[t] = (w[t] - center) / scale;

  fit_problem fp = {w, x, m, p, q, d == 0};
  const int k = fp.has_mean + p + q;
  double u[MAXPAR] = {0};
  if (u0) memcpy(u, u0, sizeof u);
  if (k > 0) {
    gsl_multimin_function f = {objective, (size_t)k, &fp};
    gsl_vector_view xv = gsl_vector_view_array(u, k);
    double stepd[MAXPAR];
    for (int i = 0; i < k; i++) stepd[i] = step0;
    gsl_vector_view sv = gsl_vector_view_array(stepd, k);
    gsl_multimin_fminimizer *mn =
        gsl_multimin_fminimizer_alloc(gsl_multimin_fminimizer_nmsimplex2, k);
    MP_CHECK_ALLOC(mn);
    // GSL's default error handler aborts; a library must not. Failures are
    // detected from return values instead.
    gsl_error_handler_t *old = gsl_set_error_handler_off();
    int it = 0;
    // Nelder-Mead can stall on a flat ridge (near-cancelling AR and MA
    // roots); restarting from the point it stopped at, with a fresh simplex,
    // is the standard remedy.
    for (int round = 0; round <= opts->restarts; round++) {
      gsl_multimin_fminimizer_set(mn, &f, &xv.vector, &sv.vector);
      int status = GSL_CONTINUE;
      while (status == GSL_CONTINUE && it < opts->max_iter) {
        it++;
        if (gsl_multimin_fminimizer_iterate(mn)) break;
        status = gsl_multimin_test_size(gsl_multimin_fminimizer_size(mn), opts->tol);
      }
      for (int i = 0; i < k; i++) u[i] = gsl_vector_get(mn->x, i);
      for (int i = 0; i < k; i++) stepd[i] = 0.1;
    }
    out->iterations = it;
    gsl_multimin_fminimizer_free(mn);
    gsl_set_error_handler(old);
  }
  double mean, phi[MAXR] = {0}, theta[MAXR] = {0}, s2 = 0;
  unpack(&fp, u, &mean, phi, theta);
  double ll = concentrated_loglik(&fp, mean, phi, theta, &s2);
  if (!isfinite(ll))
    return mp_fail(MOEPLACE_ERR_NUMERIC, "arima(%d,%d,%d): likelihood failed", p, d, q);
  memcpy(out->u, u, sizeof out->u);
  out->mean = d ? 0.0 : center + scale * mean;
  memcpy(out->phi, phi, sizeof out->phi);
  memcpy(out->theta, theta, sizeof out->theta);
  out->sigma2 = s2 * scale * scale;
  out->loglik = ll - m * log(scale); // back to the units of y
  out->aic = -2.0 * out->loglik + 2.0 * (k + 1);
  return MOEPLACE_OK;
}

double mp_arima_kpss(const double *y, int n) {
  if (n < 3) return 0;
  double mean = 0;
  for (int t = 0; t < n; t++) mean += y[t];
  mean /= n;
  double s = 0, eta = 0, g0 = 0;
  for (int t = 0; t < n; t++) {
    double e = y[t] - mean;
    s += e;
    eta += s * s;
    g0 += e * e;
  }
  int lags = (int)ceil(12.0 * pow(n / 100.0, 0.25)); // statsmodels rounds up
  if (lags > n - 1) lags = n - 1;
  double lrv = g0;
  for (int l = 1; l <= lags; l++) {
    double g = 0;
    for (int t = l; t < n; t++) g += (y[t] - mean) * (y[t - l] - mean);
    lrv += 2.0 * (1.0 - l / (lags + 1.0)) * g;
  }
  lrv /= n;
  if (!(lrv > 0)) return 0;
  return eta / ((double)n * n) / lrv;
}

int mp_arima_select(const double *y, int n, int pmax, int dmax, int qmax, const mp_arima_opts *opts,
                    mp_arima_fit *best) {
  return mp_arima_select_warm(y, n, pmax, dmax, qmax, opts, NULL, best);
}

int mp_arima_select_warm(const double *y, int n, int pmax, int dmax, int qmax,
                         const mp_arima_opts *opts, mp_arima_warm *warm, mp_arima_fit *best) {
  if (pmax < 0 || pmax > MP_ARIMA_MAX_P || qmax < 0 || qmax > MP_ARIMA_MAX_Q || dmax < 0 ||
      dmax > 1)
    return mp_fail(MOEPLACE_ERR_ARG, "arima: order grid p<=%d, d<=%d, q<=%d not supported", pmax,
                   dmax, qmax);
  int d = dmax > 0 && mp_arima_kpss(y, n) > MP_ARIMA_KPSS_CRIT_5 ? 1 : 0;
  int found = 0;
  for (int p = 0; p <= pmax; p++)
    for (int q = 0; q <= qmax; q++) {
      if (n < p + q + d + 3) continue;
      mp_arima_fit f;
      double *u0 = warm && warm->have[d][p][q] ? warm->u[d][p][q] : NULL;
      // a failed order is just not chosen
      if (fit_order_from(y, n, p, d, q, opts, u0, u0 ? 0.1 : 0.5, &f)) continue;
      if (warm && !f.degenerate) {
        memcpy(warm->u[d][p][q], f.u, sizeof f.u);
        warm->have[d][p][q] = 1;
      }
      if (!found || f.aic < best->aic) *best = f;
      found = 1;
      if (f.degenerate) return MOEPLACE_OK;
    }
  if (!found)
    return mp_fail(MOEPLACE_ERR_NUMERIC, "arima: no order could be fitted to %d observations", n);
  return MOEPLACE_OK;
}

/* Whether every element of the ARMA state a [r] is at most tiny. */
static int state_below(const double *a, int r, double tiny) {
  for (int k = 0; k < r; k++)
    if (!(fabs(a[k]) <= tiny)) return 0;
  return 1;
}

/* The forecasts of y_{n+1} .. y_{n+h} one after the other: into out[h] if
 * out is not NULL, and their sum into *sum if sum is not NULL (so that a
 * mean over a long horizon needs no buffer of h values). */
static int forecast_walk(const mp_arima_fit *fit, const double *y, int n, int h, double *out,
                         double *sum) {
  if (n < 1 || h < 1) return mp_fail(MOEPLACE_ERR_ARG, "arima forecast: n=%d, h=%d", n, h);
  double total = 0;
  if (fit->degenerate) {
    for (int j = 0; out && j < h; j++) out[j] = y[n - 1];
    if (sum) *sum = (double)h * y[n - 1];
    return MOEPLACE_OK;
  }
  const int d = fit->d, m = n - d;
  if (m < 1 || n > 10000)
    return mp_fail(MOEPLACE_ERR_ARG, "arima forecast: series of %d values (1 .. 10000)", n);
  double x[m];
  for (int t = 0; t < m; t++) x[t] = (d ? y[t + 1] - y[t] : y[t]) - fit->mean;
  arma_sys s;
  arma_build(fit->phi, fit->p, fit->theta, fit->q, &s);
  double slog, ssq, a[MAXR];
  if (arma_filter(&s, x, m, &slog, &ssq, a))
    return mp_fail(MOEPLACE_ERR_NUMERIC, "arima forecast: filter failed");
  // x_{n+j} forecasts: first element of T^{j-1} a. A stationary fit's
  // state decays geometrically; once it is below the last bit of the
  // forecast, every later forecast is the same value, so a long horizon's
  // sum (a replay's interval can be 10^9 steps) ends in one product.
  double level = y[n - 1];
  const double tiny = 1e-18 * fmax(fmax(fabs(level), fabs(fit->mean)), 1e-300);
  for (int j = 0; j < h; j++) {
    if (!out && state_below(a, s.r, tiny)) {
      total += (double)(h - j) * (d ? level : fit->mean);
      break;
    }
    double xf = a[0], yj;
    if (d) {
      level += xf;
      yj = level;
    } else {
      yj = fit->mean + xf;
    }
    if (out) out[j] = yj;
    total += yj;
    double an[MAXR] = {0};
    for (int i = 0; i < s.r; i++)
      for (int k = 0; k < s.r; k++) an[i] += s.T[i][k] * a[k];
    memcpy(a, an, sizeof a);
  }
  if (sum) *sum = total;
  return MOEPLACE_OK;
}

int mp_arima_forecast(const mp_arima_fit *fit, const double *y, int n, int h, double *out) {
  return forecast_walk(fit, y, n, h, out, NULL);
}

int mp_arima_forecast_mean(const mp_arima_fit *fit, const double *y, int n, int h, double *mean) {
  double sum = 0;
  int rc = forecast_walk(fit, y, n, h, NULL, &sum);
  if (rc == MOEPLACE_OK) *mean = sum / h;
  return rc;
}
