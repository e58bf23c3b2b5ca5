#!/bin/sh
# Log compiler of the runtime's MPI tests (TEST_EXTENSIONS .mpi): for
# tests/runtime/CASE.mpi, runs `tests/test_runtime_mpi CASE` under the MPI
# launcher with 2 and then 4 ranks (oversubscribed: the machine may have fewer
# cores). The cases are listed once, in RUNTIME_MPI_TESTS (runtime/Makefile.inc).
# A hang is a failure: every run is bounded by a timeout.
#   runtime_mpi.sh tests/runtime/CASE.mpi
set -u
: "${top_builddir:=.}" "${MPIRUN:=mpirun}" "${MPI_IMPL:=openmpi}"
case=$(basename "$1" .mpi)
prog="$top_builddir/tests/test_runtime_mpi"
case "$1" in  # tests/rtapi/CASE.mpi: the trainer API's cases
  */rtapi/*) prog="$top_builddir/tests/test_rtapi_mpi" ;;
esac
[ -x "$prog" ] || { echo "missing $prog"; exit 99; }
if [ "$MPIRUN" = no ]; then
  echo "no MPI launcher (mpirun/mpiexec) was found by configure: install one (Debian/Ubuntu: apt-get install openmpi-bin) and re-run configure"
  exit 99
fi
if [ "$(id -u)" = 0 ]; then
  export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
fi
export OMPI_MCA_rmaps_base_oversubscribe=1 OPENBLAS_NUM_THREADS=1
# In a sanitizer build, Open MPI leaks in components it unloads at
# MPI_Finalize (a bare MPI_Init/MPI_Finalize program reports ~116 KB). The
# fast unwinder stops at those unloaded modules, leaving one-frame stacks no
# suppression can name; the slow one reaches the Open MPI library frames that
# tests/lsan.supp names (set by scripts/run-tests.sh), so moeplace's own
# leaks still fail the test.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}fast_unwind_on_malloc=0"
export LSAN_OPTIONS="${LSAN_OPTIONS:+$LSAN_OPTIONS:}fast_unwind_on_malloc=0"

# Launcher options: Open MPI refuses more ranks than cores unless told and
# forwards environment variables with -x; MPICH's Hydra oversubscribes by
# default and forwards with -genv.
over=""
case "$MPI_IMPL" in
  openmpi) over=--oversubscribe ;;
esac
if [ "$case" = topology_env ]; then
  # hwloc's own environment variable selects a synthetic machine.
  synth="pack:2 numa:1 core:2 pu:1"
  case "$MPI_IMPL" in
    openmpi) set -- -x HWLOC_SYNTHETIC="$synth" ;;
    *) set -- -genv HWLOC_SYNTHETIC "$synth" ;;
  esac
elif [ "$case" = decider_cpus ] && [ "$MPI_IMPL" = openmpi ] &&
     [ "$(getconf _NPROCESSORS_ONLN)" -gt 1 ]; then
  # every rank on CPU 0: the decision thread must move to the others
  set -- --cpu-set 0 --bind-to core:overload-allowed
else
  set --
fi
status=0
for np in 2 4; do
  echo "== $case with $np ranks"
  # shellcheck disable=SC2086 # $over is empty or one option
  if ! timeout 60 "$MPIRUN" $over -np "$np" "$@" "$prog" "$case"; then
    echo "FAIL: $case with $np ranks"
    status=1
  fi
done
exit $status
