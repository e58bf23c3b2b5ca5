#!/bin/sh
# Runs the runtime's MPI test cases under mpirun with 2 and 4 ranks
# (oversubscribed: the machine may have fewer cores). A hang is a failure:
# every run is bounded by a timeout.
set -u
: "${top_builddir:=.}" "${MPIRUN:=mpirun}"
prog="$top_builddir/tests/test_runtime_mpi"
[ -x "$prog" ] || { echo "missing $prog"; exit 1; }
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
status=0
for np in 2 4; do
  for c in config args topology registration migrate migrate_owned corrupt corrupt_owned \
      migrate_p2p migrate_owned_p2p corrupt_p2p corrupt_owned_p2p shm_reuse shm_full migrate_nodes loop loop_nostate; do
    if ! timeout 60 "$MPIRUN" --oversubscribe -np "$np" "$prog" "$c"; then
      echo "FAIL: $c with $np ranks"
      status=1
    fi
  done
  # hwloc's own environment variable selects a synthetic machine.
  if ! timeout 60 "$MPIRUN" --oversubscribe -np "$np" \
      -x HWLOC_SYNTHETIC="pack:2 numa:1 core:2 pu:1" "$prog" topology_env; then
    echo "FAIL: topology_env with $np ranks"
    status=1
  fi
done
exit $status
