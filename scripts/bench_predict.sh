#!/bin/sh
# Forecast cost of every predictor for a large model (64 layers x 256 experts
# by default) and, in the same run on the same series, statsmodels' ARIMA.
# Usage (from the build directory): scripts/bench_predict.sh [LAYERS EXPERTS [STATSMODELS_SERIES]]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
L=${1:-64}
E=${2:-256}
N=${3:-32}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
./moeplace-predict --bench --layers "$L" --experts "$E" --horizon 1000 --window 10 \
  --bench-series "$tmp/series.csv" --bench-count "$N" | tee "$tmp/c.txt"
/usr/bin/python3 "$here/bench_arima_statsmodels.py" "$tmp/series.csv" 100 | tee "$tmp/py.txt"
c_us=$(awk '$1 == "arima" { print $5 }' "$tmp/c.txt")
w_us=$(awk '$1 == "arima" { print $6 }' "$tmp/c.txt")
py_ms=$(sed -n 's/.*, \([0-9.]*\) ms per series/\1/p' "$tmp/py.txt")
awk -v c="$c_us" -v w="$w_us" -v p="$py_ms" -v n=$((L * E)) 'BEGIN {
  printf "arima select+fit+forecast per series, cold: moeplace %.1f us, statsmodels %.1f ms: %.0fx faster\n", c, p, 1000 * p / c
  printf "arima refit (warm start) per series: moeplace %.1f us: %.0fx faster than statsmodels cold\n", w, 1000 * p / w
  printf "statsmodels for all %d series (extrapolated): %.0f s\n", n, n * p / 1000 }'
