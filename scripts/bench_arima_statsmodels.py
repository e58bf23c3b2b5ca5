#!/usr/bin/python3
"""statsmodels baseline for the ARIMA benchmark (docs/BENCHMARKS.md).

Reads the series `moeplace-predict --bench --bench-series FILE` wrote (one
column per series, oldest first) and does, per series, what moeplace's arima
predictor does at a refit: d from the KPSS test (nlags="legacy", 5% level),
then ARIMA(p,d,q) for p <= 2, q <= 1 by exact likelihood (statsmodels'
default state-space fit), the lowest AIC kept, and the mean of its forecasts
over the horizon. Prints the mean wall time per series.

Usage: scripts/bench_arima_statsmodels.py SERIES.csv [HORIZON_WINDOWS]
"""
import sys
import time
import warnings

import numpy as np
from statsmodels.tsa.arima.model import ARIMA
from statsmodels.tsa.stattools import kpss


def fit_forecast(y, h):
    d = 1 if kpss(y, regression="c", nlags="legacy")[0] > 0.463 else 0
    best = None
    for p in range(3):
        for q in range(2):
            res = ARIMA(y, order=(p, d, q), trend="c" if d == 0 else "n").fit()
            if best is None or res.aic < best.aic:
                best = res
    return float(np.mean(best.forecast(h)))


def main():
    path = sys.argv[1]
    h = int(sys.argv[2]) if len(sys.argv) > 2 else 100
    data = np.loadtxt(path, delimiter=",", skiprows=1, ndmin=2)
    warnings.simplefilter("ignore")
    t0 = time.perf_counter()
    for j in range(data.shape[1]):
        fit_forecast(data[:, j], h)
    dt = time.perf_counter() - t0
    n = data.shape[1]
    print("statsmodels ARIMA (KPSS d, p<=2, q<=1 by AIC, forecast %d): %d series of %d windows, "
          "%.1f ms per series" % (h, n, data.shape[0], 1e3 * dt / n))


if __name__ == "__main__":
    main()
