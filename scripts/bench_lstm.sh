#!/bin/sh
# Runs the LSTM benchmark (bench/bench_lstm, built by `make check`) and the
# same-size PyTorch reference (scripts/bench_lstm_torch.py) in the same run,
# and prints the ratios torch time / C time (> 1: the C code is faster),
# from the minimum over the repeats of each.
#   scripts/bench_lstm.sh [BUILD_DIR=.] [LAYERS=64] [EXPERTS=256] [BATCH=64] [REPEATS=5]
# C: OpenBLAS with 1 thread and with its default; torch: 1 thread, its
# default, and one thread per core. Figures: docs/BENCHMARKS.md.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
build=${1:-.}
[ $# -gt 0 ] && shift
args="${1:-64} ${2:-256} ${3:-64} ${4:-5}"
py=${PYTHON3:-/usr/bin/python3}
bench="$build/bench/bench_lstm"
if [ ! -x "$bench" ]; then
  echo "bench_lstm.sh: $bench not found (run 'make check' in the build directory first)" >&2
  exit 2
fi
# The minimum of the repeats (least disturbed by other load) of a named figure.
ms() { sed -n "s/^.*$1[^:]*: min \([0-9.]*\) ms.*$/\1/p" | head -1; }
c1=$(OPENBLAS_NUM_THREADS=1 "$bench" $args); echo "$c1"
cd_=$("$bench" $args); echo "$cd_"
for tt in 1 0 "$(nproc)"; do
  p=$("$py" "$here/bench_lstm_torch.py" --threads "$tt" $args); echo "$p"
  pt=$(echo "$p" | ms train_step); pf=$(echo "$p" | ms "forecast forward")
  for c in c1 cd_; do
    eval "out=\$$c"
    ct=$(echo "$out" | ms train_step); cf=$(echo "$out" | ms forecast)
    echo "  ratio torch($([ "$tt" = 0 ] && echo default || echo "$tt") thr)/C(OpenBLAS $([ $c = c1 ] && echo 1 || echo default) thr):" \
      "train_step $(echo "$pt $ct" | awk '{printf "%.2f", $1/$2}')," \
      "forecast $(echo "$pf $cf" | awk '{printf "%.2f", $1/$2}')"
  done
done
