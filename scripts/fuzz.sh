#!/bin/sh
# Builds the libFuzzer target for the trace reader with clang (ASan + UBSan)
# and runs it for SECONDS seconds (default 60) from the seed corpus.
#   scripts/fuzz.sh [SECONDS]
# New inputs go to a scratch corpus; crashes are written to fuzz-out/ and
# make the script exit non-zero.
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
out=${FUZZ_OUT:-$PWD/fuzz-out}
command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang)" >&2; exit 1; }
mkdir -p "$out/corpus"
cflags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$src -I$src/include -DPACKAGE_VERSION=\"fuzz\""
# The reader needs only common/: no MPI, BLAS or JSON.
clang $cflags -o "$out/fuzz_trace_reader" "$src/tests/fuzz/fuzz_trace_reader.c" \
  "$src/common/error.c" "$src/common/line_reader.c" "$src/common/trace_reader.c" \
  "$src/common/trace_window.c" -lz
cd "$out"
./fuzz_trace_reader -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 corpus "$src/tests/fuzz/corpus" 2>fuzz.log || {
  tail -40 fuzz.log >&2
  echo "fuzz.sh: the fuzzer found a failure; reproducer in $out (crash-*/timeout-*)" >&2
  exit 1
}
grep -E "stat::number_of_executed_units|stat::peak_rss" fuzz.log
echo "fuzz.sh: no failure in ${seconds}s"
