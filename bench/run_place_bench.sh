#!/bin/sh
# Placement benchmark: moeplace's solver (bench_place, both share policies)
# and the EPLB reference (scripts/eplb_reference.py, numpy and torch
# backends) on the same lognormal loads in one run, then the speed and
# balance ratios; with EPLB_DIR set to a checkout of
# github.com/deepseek-ai/EPLB, also DeepSeek's own EPLB on the same loads and
# on the re-created inputs of EPLB's and vLLM's tests (scripts/eplb_compare.py).
#   [EPLB_DIR=DIR] bench/run_place_bench.sh [BUILD_DIR]   (default: /tmp/build-placement)
set -eu
SRC=$(cd "$(dirname "$0")/.." && pwd)
BUILD=${1:-/tmp/build-placement}
PY=${PYTHON3:-/usr/bin/python3}
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
make -C "$BUILD" -s bench/bench_place >/dev/null
TRACES=""
for t in /work/shared/traces/pycode-L4-E16-top2.csv.gz /work/shared/traces/perl-L4-E8-top1.csv.gz; do
  [ -f "$t" ] || t="$SRC/data/$(basename "$t" .csv.gz)-4k.csv.gz"
  [ -f "$t" ] && TRACES="$TRACES --trace $t"
done
echo "== moeplace (C, one core)"
# shellcheck disable=SC2086
"$BUILD/bench/bench_place" --loads-out "$OUT/loads.txt" $TRACES | tee "$OUT/c.txt"
SHAPES="deepseek-32x9:32:9:4:8 deepseek-32x9-8nodes:32:9:8:8 deepseek-64x5:64:5:8:8 deepseek-64x5-4nodes:64:5:4:4 deepseek-64x5-2nodes:64:5:2:8"
echo "== EPLB reference (numpy)"
"$PY" "$SRC/scripts/eplb_reference.py" "$OUT/loads.txt" $SHAPES --repeat 3 | tee "$OUT/np.txt"
if "$PY" -c "import torch" 2>/dev/null; then
  echo "== EPLB reference (torch CPU, one thread, as EPLB runs)"
  "$PY" "$SRC/scripts/eplb_reference.py" "$OUT/loads.txt" $SHAPES --repeat 1 --backend torch |
    tee "$OUT/torch.txt"
else
  : >"$OUT/torch.txt"
fi
echo "== shares even (equal splits, as EPLB routes) vs EPLB global, same loads"
cat "$OUT/np.txt" "$OUT/torch.txt" | awk -v cfile="$OUT/c.txt" '
  BEGIN { while ((getline l < cfile) > 0) { split(l, f, " ");
            if (f[1] == "RESULT-EVEN") { ms[f[2]] = f[5]; imb[f[2]] = f[7] } } }
  $1 ~ /^EPLB/ && $3 == "global" { n = $2; printf "%-22s %-6s EPLB global %8.1f ms imb %s | moeplace even %.3f ms imb %s | %s, speedup %.0fx\n",
                 n, substr($1, 6), $5, $7, ms[n], imb[n], (imb[n] <= $7 + 1e-9 ? "not worse" : "WORSE"), $5 / ms[n] }'
if [ -n "${EPLB_DIR:-}" ]; then
  export PYTHONPATH="$SRC/python${PYTHONPATH:+:$PYTHONPATH}" MOEPLACE_LIBDIR="$BUILD/.libs"
  echo "== DeepSeek's EPLB ($EPLB_DIR, torch CPU, one thread) on the same loads"
  "$PY" "$SRC/scripts/eplb_compare.py" loads "$OUT/loads.txt" $SHAPES --eplb-dir "$EPLB_DIR"
  echo "== inputs of EPLB's and vLLM's tests, scored with equal splits"
  "$PY" "$SRC/scripts/eplb_compare.py" cases --eplb-dir "$EPLB_DIR"
fi
echo "== ratios (EPLB time / moeplace time; imbalances side by side)"
cat "$OUT/np.txt" "$OUT/torch.txt" | awk -v cfile="$OUT/c.txt" '
  BEGIN { while ((getline l < cfile) > 0) { split(l, f, " ");
            if (f[1] == "RESULT") { ms[f[2]] = f[5]; imb[f[2]] = f[7]; gr[f[2]] = f[9]; lb[f[2]] = f[11] } } }
  $1 ~ /^EPLB/ { n = $2; printf "%-22s %-8s %-12s EPLB %8.1f ms imb %s dup %-4s | moeplace %.3f ms imb %s (greedy-LPT %s, bound %s) | speedup %.0fx\n",
                 n, substr($1, 6), $3, $5, $7, $9, ms[n], imb[n], gr[n], lb[n], $5 / ms[n] }'
