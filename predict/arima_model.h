/* ARIMA(p,d,q) for one series, fitted by exact Gaussian maximum likelihood
 * (Kalman filter on the ARMA state space, variance concentrated out), the
 * same objective as statsmodels' ARIMA(...).fit() (state space method). The
 * optimiser is GSL's Nelder-Mead simplex (nmsimplex2) over unconstrained
 * parameters mapped onto the stationary / invertible region (Monahan's
 * transform, as statsmodels does), so every fitted model can be forecast.
 *
 * Model (statsmodels' conventions): with w_t = y_t (d = 0) or y_t - y_{t-1}
 * (d = 1), and x_t = w_t - mean (d = 0) or w_t (d = 1, no drift):
 *     x_t = phi_1 x_{t-1} + ... + phi_p x_{t-p} + e_t + theta_1 e_{t-1} + ...
 * Orders are limited to p <= MP_ARIMA_MAX_P, d <= 1, q <= MP_ARIMA_MAX_Q. */
#ifndef MOEPLACE_PREDICT_ARIMA_MODEL_H
#define MOEPLACE_PREDICT_ARIMA_MODEL_H

#define MP_ARIMA_MAX_P 2
#define MP_ARIMA_MAX_Q 2

typedef struct mp_arima_fit {
  int p, d, q;
  double mean;                                   /* d = 0: the series mean; 0 for d = 1 */
  double phi[MP_ARIMA_MAX_P];                    /* AR coefficients */
  double theta[MP_ARIMA_MAX_Q];                  /* MA coefficients */
  double sigma2;                                 /* innovation variance */
  double loglik;                                 /* exact log-likelihood of w */
  double aic;                                    /* -2 loglik + 2 (parameters incl. sigma2) */
  int n_eff;                                     /* observations in the likelihood (n - d) */
  int iterations;                                /* optimiser iterations used */
  int degenerate;                                /* constant series: forecasts the last value */
  double u[1 + MP_ARIMA_MAX_P + MP_ARIMA_MAX_Q]; /* optimum, unconstrained (warm starts) */
} mp_arima_fit;

typedef struct mp_arima_opts {
  double tol;   /* simplex size at which Nelder-Mead stops (unconstrained, standardised units) */
  int max_iter; /* iteration cap of the optimiser (all rounds) */
  int restarts; /* extra Nelder-Mead rounds from the point found */
} mp_arima_opts;

/* Fits one order to y[n] (oldest first). Needs n >= p + q + d + 3. */
int mp_arima_fit_order(const double *y, int n, int p, int d, int q, const mp_arima_opts *opts,
                       mp_arima_fit *out);

/* KPSS level-stationarity statistic of y[n] (Bartlett long-run variance
 * with statsmodels' "legacy" lag ceil(12 (n/100)^(1/4)). Values above
 * MP_ARIMA_KPSS_CRIT_5 (5% level) reject stationarity. */
#define MP_ARIMA_KPSS_CRIT_5 0.463
double mp_arima_kpss(const double *y, int n);

/* Order selection, as forecast::auto.arima does: d is the number of
 * differences (at most dmax, 0 or 1) the KPSS test asks for (AIC values of
 * models with different d are not comparable: their likelihoods are of
 * different data), then p <= pmax, q <= qmax by the lowest AIC. */
int mp_arima_select(const double *y, int n, int pmax, int dmax, int qmax, const mp_arima_opts *opts,
                    mp_arima_fit *best);

/* Warm starts for repeated selections on a sliding series: the optimum of
 * each order from the previous selection, used as the next starting point
 * (a small simplex around it instead of a cold start). Zero-initialise. */
typedef struct mp_arima_warm {
  unsigned char have[2][MP_ARIMA_MAX_P + 1][MP_ARIMA_MAX_Q + 1];
  double u[2][MP_ARIMA_MAX_P + 1][MP_ARIMA_MAX_Q + 1][1 + MP_ARIMA_MAX_P + MP_ARIMA_MAX_Q];
} mp_arima_warm;

int mp_arima_select_warm(const double *y, int n, int pmax, int dmax, int qmax,
                         const mp_arima_opts *opts, mp_arima_warm *warm, mp_arima_fit *best);

/* Point forecasts of y_{n+1} .. y_{n+h} from the model, after running the
 * filter over y[n] with the fitted parameters: out[h]. */
int mp_arima_forecast(const mp_arima_fit *fit, const double *y, int n, int h, double *out);
/* The mean of those h forecasts into *mean, with no buffer of h values (a
 * horizon of an interval of 1e9 steps is only a long loop). */
int mp_arima_forecast_mean(const mp_arima_fit *fit, const double *y, int n, int h, double *mean);

#endif
