#!/bin/sh
# Quick start, step 1: install what is missing, build moeplace in ./build,
# and run the main job on the bundled trace.
#   scripts/bootstrap.sh
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build}
"$src/scripts/install-deps.sh"
"$src/scripts/build.sh" "$build"
cd "$build"
echo "== main job: moeplace-trace stats on the bundled trace"
./moeplace-trace stats --json "$build/stats.json" "$src/data/pycode-L4-E16-top2-4k.csv.gz"
echo "== JSON written to $build/stats.json"
