#!/bin/sh
# moeplace-demo on a valid trace whose counts are near 2^64 (issue 14, item
# B): the demo computes every token, so counts past its limit are refused
# with exit 2 naming the trace, step, layer and expert, on both ranks, with
# no undefined behaviour (the sanitizer build runs this too) and no abort.
set -u
: "${top_builddir:=.}" "${MPIRUN:=mpirun}"
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}fast_unwind_on_malloc=0"
dir=$(mktemp -d "${TMPDIR:-/tmp}/demo_bad.XXXXXX")
trap 'rm -rf "$dir"' EXIT
# 1 layer x 4 experts, 20 steps; expert e2 gets 2^64 - 1 tokens at step 3.
{
  echo "step,layer,e0,e1,e2,e3"
  for s in $(seq 0 19); do
    if [ "$s" = 3 ]; then echo "$s,0,5,6,18446744073709551615,7"; else echo "$s,0,5,6,7,8"; fi
  done
} >"$dir/huge.csv"
timeout 60 "$MPIRUN" --oversubscribe -np 2 "$top_builddir/moeplace-demo" --trace "$dir/huge.csv" \
  --steps 20 --d-model 8 --d-ff 16 --interval 10 --json "$dir/out.json" >"$dir/out" 2>"$dir/err"
status=$?
fail=0
if [ "$status" != 2 ]; then
  echo "FAIL: exit status $status, expected 2"
  fail=1
fi
if ! grep -q "huge.csv: step 3 layer 0 expert e2: 18446744073709551615 tokens" "$dir/err"; then
  echo "FAIL: the message does not name the trace, step, layer and expert"
  fail=1
fi
if grep -q "runtime error\|AddressSanitizer" "$dir/err"; then
  echo "FAIL: undefined behaviour or memory error"
  fail=1
fi
[ -e "$dir/out.json" ] && { echo "FAIL: a JSON was written"; fail=1; }
sed 's/^/  /' "$dir/err" | head -20
[ "$fail" = 0 ] && echo "demo_bad_trace ok"
exit $fail
