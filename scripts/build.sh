#!/bin/sh
# Configures (once) and builds moeplace out of tree.
#   scripts/build.sh BUILD_DIR [configure options...]
# A build directory configured with other options is reconfigured.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
build=$1
shift
[ -x "$src/configure" ] || "$src/autogen.sh"
mkdir -p "$build"
cd "$build"
if [ ! -f Makefile ] || [ "$(cat .configure-args 2>/dev/null)" != "$*" ]; then
  "$src/configure" -q "$@"
  echo "$*" >.configure-args
fi
make -j"$(nproc)" >/dev/null
echo "build.sh: built in $build"
