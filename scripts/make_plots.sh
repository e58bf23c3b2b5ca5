#!/bin/sh
# Makes every plot of docs/RESULTS.md from one trace into a folder:
#   scripts/make_plots.sh [TRACE] [OUTDIR]      (run from the build directory)
# TRACE defaults to the bundled pycode trace, OUTDIR to ./plots. Needs the
# built tools in the current directory and Debian's python3-matplotlib.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
trace=${1:-$src/data/pycode-L4-E16-top2-4k.csv.gz}
out=${2:-plots}
py=/usr/bin/python3
mkdir -p "$out"
name=$(basename "$trace" | sed 's/\.csv.*//')
echo "make_plots: forecasting ($name)"
./moeplace-predict --trace "$trace" --horizon 1000 --json "$out/$name-predict.json" \
  --series "$out/$name-series.csv" --series-layer 0 --quiet
$py "$src/scripts/plot_loads.py" "$trace" "$out/$name-predict.json" "$out/$name-loads.png"
$py "$src/scripts/plot_predictions.py" "$out/$name-series.csv" "$out/$name-predicted.png"
for shape in "4 1 5" "8 2 5"; do
  set -- $shape
  tag="$name-${1}x${3}-${2}node"
  echo "make_plots: replaying on $1 ranks x $3 slots, $2 node(s)"
  ./moeplace-replay --trace "$trace" --ranks "$1" --nodes "$2" --slots "$3" --interval 500 \
    --json "$out/$tag-replay.json" --timeline "$out/$tag-timeline.csv" --quiet >/dev/null
  mkdir -p "$out/$tag"
  $py "$src/scripts/plot_replay.py" "$out/$tag-replay.json" "$out/$tag-timeline.csv" "$out/$tag"
done
echo "make_plots: plots in $out/"
