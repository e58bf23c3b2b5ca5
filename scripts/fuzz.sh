#!/bin/sh
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each from
# its seed corpus for its share of SECONDS (default 60 in all):
#   trace      tests/fuzz/fuzz_trace_reader.c    tests/fuzz/corpus/
#   placement  tests/fuzz/fuzz_placement_json.c  tests/fuzz/corpus-placement/
#   topology   tests/fuzz/fuzz_topology.c        tests/fuzz/corpus-topology/
#   scripts/fuzz.sh [SECONDS [TARGET...]]
# New inputs go to scratch corpora; crashes are written to fuzz-out/ and
# make the script exit non-zero (after the other targets have run).
set -eu
src=$(cd "$(dirname "$0")/.." && pwd)
seconds=${1:-60}
[ $# -gt 0 ] && shift
targets=${*:-trace placement topology}
out=${FUZZ_OUT:-$PWD/fuzz-out}
command -v clang >/dev/null || { echo "fuzz.sh: clang not found (apt-get install clang)" >&2; exit 1; }
n=$(echo $targets | wc -w)
share=$((seconds / n))
[ "$share" -ge 1 ] || share=1
mkdir -p "$out"
cflags="-g -O1 -std=gnu11 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I$src -I$src/include -DPACKAGE_VERSION=\"fuzz\""
common="$src/common/error.c"
# Every placement/ source (the solver is split over several files) and the
# common/ files they use.
placement="$src/common/json_file.c $src/common/atomic_file.c $src/common/metrics.c $(ls "$src"/placement/*.c)"
status=0
for t in $targets; do
  case $t in
  # The reader needs only common/: no MPI, BLAS or JSON.
  trace) name=fuzz_trace_reader corpus=corpus
    objs="$common $src/common/line_reader.c $src/common/trace_reader.c $src/common/trace_window.c"
    libs=-lz ;;
  placement) name=fuzz_placement_json corpus=corpus-placement objs="$common $placement" libs="-ljansson -lm" ;;
  topology) name=fuzz_topology corpus=corpus-topology objs="$common $placement" libs="-ljansson -lm" ;;
  *) echo "fuzz.sh: unknown target '$t' (trace, placement, topology)" >&2; exit 2 ;;
  esac
  # shellcheck disable=SC2086
  clang $cflags -o "$out/$name" "$src/tests/fuzz/$name.c" $objs $libs
  mkdir -p "$out/$corpus"
  if (cd "$out" && "./$name" -max_total_time="$share" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 "$corpus" "$src/tests/fuzz/$corpus" 2>"$name.log"); then
    echo "fuzz.sh: $t: $(grep -E 'stat::number_of_executed_units' "$out/$name.log" | tr -s ' ') in ${share}s, no failure"
  else
    tail -40 "$out/$name.log" >&2
    echo "fuzz.sh: $t: the fuzzer found a failure; reproducer in $out (crash-*/oom-*/timeout-*/leak-*)" >&2
    status=1
  fi
done
exit $status
