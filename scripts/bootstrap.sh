#!/bin/sh
# Quick start, step 1: install what is missing, build moeplace in ./build,
# and run the main job (moeplace-demo under mpirun) on the bundled trace.
#   scripts/bootstrap.sh
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build}
"$src/scripts/install-deps.sh"
"$src/scripts/build.sh" "$build"
cd "$build"
echo "== main job: make demo (moeplace-demo under mpirun on the bundled trace, static vs moeplace)"
make demo
echo "== figures written to $build/demo.json"
