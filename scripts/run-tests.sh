#!/bin/sh
# Quick start, step 2: the whole test suite.
#   1. unit, tool and MPI tests (`make check`) in ./build
#   2. the core library alone (configure --without-mpi) and its tests in ./build-nompi
#   3. the same as 1 with AddressSanitizer + UndefinedBehaviorSanitizer in ./build-asan
#   4. valgrind (memcheck) over the non-MPI unit tests
#   5. a short libFuzzer run of the trace reader (FUZZ_SECONDS, default 60)
#   6. Slurm batch jobs on a one-node Slurm cluster started for the test
#      (`make check-slurm`; needs root; SKIP_SLURM=1 leaves it out)
#   7. the runtime and the demo across 2 hosts emulated with network
#      namespaces (`make check-multihost`; needs root and permission to create
#      namespaces; SKIP_MULTIHOST=1 leaves it out)
# Exits non-zero when any part fails; prints each part's summary.
set -u
src=$(cd "$(dirname "$0")/.." && pwd)
build=${BUILD_DIR:-$src/build}
asan=${ASAN_BUILD_DIR:-$src/build-asan}
nompi=${NOMPI_BUILD_DIR:-$src/build-nompi}
status=0
export OMPI_MCA_rmaps_base_oversubscribe=1
if [ "$(id -u)" -eq 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi

# make check, printing the failing tests' logs in full.
check() {
  dir=$1
  shift
  if ! make -C "$dir" -j2 check "$@"; then
    for log in $(grep -l -E '^(FAIL|ERROR)' $(find "$dir/tests" -name '*.trs') 2>/dev/null); do
      echo "---- ${log%.trs}.log"
      cat "${log%.trs}.log"
    done
    return 1
  fi
}

part() { echo; echo "===== $*"; }

part "1/7 make check"
{ "$src/scripts/build.sh" "$build" && check "$build"; } || status=1

part "2/7 make check of the core alone (--without-mpi)"
{ "$src/scripts/build.sh" "$nompi" --without-mpi && check "$nompi"; } || status=1

part "3/7 make check with ASan + UBSan"
# Open MPI and hwloc keep some allocations for the life of the process;
# tests/lsan.supp names those libraries so that only moeplace's leaks count.
export LSAN_OPTIONS="suppressions=$src/tests/lsan.supp:print_suppressions=0"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
{ "$src/scripts/build.sh" "$asan" --enable-sanitizers && check "$asan"; } || status=1
unset LSAN_OPTIONS UBSAN_OPTIONS

part "4/7 valgrind memcheck"
for t in $(cat "$src/tests/valgrind-tests.txt"); do
  if [ -x "$build/$t" ]; then
    echo "valgrind $t"
    CK_FORK=no OPENBLAS_NUM_THREADS=1 top_srcdir="$src" valgrind -q --error-exitcode=3 --leak-check=full \
      --errors-for-leak-kinds=definite "$build/$t" >"$build/valgrind.log" 2>&1 ||
      { cat "$build/valgrind.log"; status=1; }
    grep -q "Failures: 0, Errors: 0" "$build/valgrind.log" || { cat "$build/valgrind.log"; status=1; }
  fi
done

part "5/7 fuzzing the trace reader"
FUZZ_OUT="$build/fuzz-out" "$src/scripts/fuzz.sh" "${FUZZ_SECONDS:-60}" || status=1

part "6/7 Slurm batch jobs (make check-slurm)"
if [ "${SKIP_SLURM:-0}" = 1 ]; then
  echo "skipped (SKIP_SLURM=1)"
elif [ "$(id -u)" -ne 0 ]; then
  echo "skipped: starting slurmctld/slurmd needs root"
else
  make -C "$build" check-slurm || status=1
fi

part "7/7 two emulated hosts (make check-multihost)"
if [ "${SKIP_MULTIHOST:-0}" = 1 ]; then
  echo "skipped (SKIP_MULTIHOST=1)"
elif [ "$(id -u)" -ne 0 ]; then
  echo "skipped: creating network namespaces needs root"
elif ! ip netns add mphprobe$$ 2>/dev/null; then
  echo "skipped: network namespaces are not permitted here ('ip netns add' failed)"
else
  ip netns del mphprobe$$
  make -C "$build" check-multihost || status=1
fi

# Summary: Check's own line for every unit-test program, then one line
# counting every test result of the three make check passes.
echo
echo "===== summary"
for log in $(find "$build/tests" "$nompi/tests" "$asan/tests" -name '*.log' 2>/dev/null | sort); do
  line=$(grep -E '^[0-9]+%: Checks: ' "$log" | tail -1)
  [ -n "$line" ] && echo "${log#$src/}: $line"
done
passed=$(cat $(find "$build/tests" "$nompi/tests" "$asan/tests" -name '*.trs' 2>/dev/null) /dev/null | grep -c '^:test-result: \(PASS\|SKIP\|XFAIL\)')
failed=$(cat $(find "$build/tests" "$nompi/tests" "$asan/tests" -name '*.trs' 2>/dev/null) /dev/null | grep -c '^:test-result: \(FAIL\|ERROR\|XPASS\)')
[ "$status" -eq 0 ] || [ "$failed" -gt 0 ] || failed=1 # a failing valgrind or fuzz part
echo "tests: $passed passed, $failed failed"
exit "$status"
