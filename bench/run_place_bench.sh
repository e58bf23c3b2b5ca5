#!/bin/sh
# Placement benchmark: moeplace's solver (bench_place, both share policies)
# and the EPLB reference (scripts/eplb_reference.py, numpy and torch
# backends) on the same lognormal loads in one run, then the speed and
# balance ratios. Then node-limited expert groups (DeepSeek-V3 shapes 32x9
# and 64x5 on 4 and 8 nodes, 4 and 8 groups): moeplace with and without
# groups against EPLB's hierarchical policy, scored with equal shares (EPLB's
# routers) and moeplace's shares, groups split over nodes counted. With
# EPLB_DIR set to a checkout of github.com/deepseek-ai/EPLB, also DeepSeek's
# own EPLB on the same loads and on the re-created inputs of EPLB's and
# vLLM's tests (scripts/eplb_compare.py).
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
GSHAPES="ds32x9-n4-g4:32:9:4:4 ds32x9-n4-g8:32:9:4:8 ds32x9-n8-g8:32:9:8:8 ds64x5-n4-g4:64:5:4:4 ds64x5-n4-g8:64:5:4:8 ds64x5-n8-g8:64:5:8:8"
SHAPES="deepseek-32x9:32:9:4:8 deepseek-32x9-8nodes:32:9:8:8 deepseek-64x5:64:5:8:8 deepseek-64x5-4nodes:64:5:4:4 deepseek-64x5-2nodes:64:5:2:8"
echo "== EPLB reference (numpy)"
# shellcheck disable=SC2086
"$PY" "$SRC/scripts/eplb_reference.py" "$OUT/loads.txt" $SHAPES $GSHAPES --repeat 3 | tee "$OUT/np.txt"
if "$PY" -c "import torch" 2>/dev/null; then
  echo "== EPLB reference (torch CPU, one thread, as EPLB runs)"
  "$PY" "$SRC/scripts/eplb_reference.py" "$OUT/loads.txt" $SHAPES --repeat 1 --backend torch |
    tee "$OUT/torch.txt"
else
  : >"$OUT/torch.txt"
fi
: >"$OUT/real.txt"
if [ -n "${EPLB_DIR:-}" ] && [ -f "$EPLB_DIR/eplb.py" ]; then
  echo "== DeepSeek's EPLB ($EPLB_DIR/eplb.py, torch CPU, one thread)"
  # shellcheck disable=SC2086
  "$PY" "$SRC/scripts/eplb_reference.py" "$OUT/loads.txt" $GSHAPES --repeat 1 --backend real \
    --eplb-dir "$EPLB_DIR" | tee "$OUT/real.txt"
fi
echo "== shares even (equal splits, as EPLB routes) vs EPLB global, same loads"
cat "$OUT/np.txt" "$OUT/torch.txt" | awk -v cfile="$OUT/c.txt" '
  BEGIN { while ((getline l < cfile) > 0) { split(l, f, " ");
            if (f[1] == "RESULT-EVEN") { ms[f[2]] = f[5]; imb[f[2]] = f[7] } } }
  $1 ~ /^EPLB/ && $3 == "global" && ($2 in ms) { n = $2; printf "%-22s %-6s EPLB global %8.1f ms imb %s | moeplace even %.3f ms imb %s | %s, speedup %.0fx\n",
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
  $1 ~ /^EPLB/ && ($2 in ms) { n = $2; printf "%-22s %-8s %-12s EPLB %8.1f ms imb %s dup %-4s | moeplace %.3f ms imb %s (greedy-LPT %s, bound %s) | speedup %.0fx\n",
                 n, substr($1, 6), $3, $5, $7, $9, ms[n], imb[n], gr[n], lb[n], $5 / ms[n] }'
echo "== node-limited groups: moeplace (groups) vs EPLB hierarchical; imbalance with equal shares (eq) and moeplace's shares (w)"
cat "$OUT/np.txt" "$OUT/real.txt" | awk -v cfile="$OUT/c.txt" '
  BEGIN { while ((getline l < cfile) > 0) { split(l, f, " ");
            if (f[1] == "RESULTG") { ms[f[2]] = f[4]; w[f[2]] = f[6]; eq[f[2]] = f[8]; sp[f[2]] = f[10];
                                     nw[f[2]] = f[12]; ne[f[2]] = f[14] } } }
  $1 ~ /^EPLB/ && $3 == "hierarchical" && ($2 in ms) {
    n = $2; printf "%-14s %-10s EPLB %8.1f ms eq %s split %s | moeplace %6.2f ms eq %s w %s split %s | cost of groups (moeplace) eq %+.1f%% w %+.1f%% | speedup %.0fx\n",
      n, substr($1, 6), $5, $7, $11, ms[n], eq[n], w[n], sp[n], 100 * (eq[n] / ne[n] - 1), 100 * (w[n] / nw[n] - 1), $5 / ms[n] }'
echo "== node-limited groups with --shares even (as EPLB's routers split) vs EPLB hierarchical, equal shares"
cat "$OUT/np.txt" "$OUT/real.txt" | awk -v cfile="$OUT/c.txt" '
  BEGIN { while ((getline l < cfile) > 0) { split(l, f, " ");
            if (f[1] == "RESULTG-EVEN") { ms[f[2]] = f[4]; eq[f[2]] = f[6]; sp[f[2]] = f[8] } } }
  $1 ~ /^EPLB/ && $3 == "hierarchical" && ($2 in ms) {
    n = $2; printf "%-14s %-10s EPLB %8.1f ms eq %s | moeplace even %6.2f ms eq %s split %s | %s, speedup %.0fx\n",
      n, substr($1, 6), $5, $7, ms[n], eq[n], sp[n], (eq[n] <= $7 + 1e-9 ? "not worse" : "WORSE"), $5 / ms[n] }'
