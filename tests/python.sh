#!/bin/sh
# make check: the Python binding's tests (python/tests) with pytest, the
# package from the source tree and the libraries from this build (.libs/).
#   tests/python.sh          every test but the MPI ones
#   tests/python.sh mpi      python/tests/test_*_mpi.py on 2 ranks
# Exits 77 (SKIP, with the reason) when pytest, numpy or (mpi) mpi4py is
# missing, or in a sanitizer build (an ASan library cannot be loaded into
# an uninstrumented python3). pytest collecting nothing is a failure.
set -u
: "${top_builddir:=.}" "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
: "${PYTHON3:=/usr/bin/python3}" "${MPIRUN:=mpirun}" "${MPI_IMPL:=openmpi}"
mode=${1:-core}

skip() { echo "SKIP: $*"; exit 77; }
[ -z "${MOEPLACE_SANITIZERS:-}" ] ||
  skip "sanitizer build: python3 cannot load ASan-instrumented libraries"
[ "$PYTHON3" != no ] && [ -x "$PYTHON3" ] || skip "no python3 (apt-get install python3)"
for m in numpy pytest; do
  "$PYTHON3" -c "import $m" 2>/dev/null || skip "python3 module $m missing (apt-get install python3-$m)"
done

PYTHONPATH="$top_srcdir/python${PYTHONPATH:+:$PYTHONPATH}"
MOEPLACE_LIBDIR="$top_builddir/.libs"
MOEPLACE_ABI_PROG="$top_builddir/tests/python_abi"
MOEPLACE_INCLUDEDIR="$top_srcdir/include"
PYTHONDONTWRITEBYTECODE=1
OPENBLAS_NUM_THREADS=1
export PYTHONPATH MOEPLACE_LIBDIR MOEPLACE_ABI_PROG MOEPLACE_INCLUDEDIR PYTHONDONTWRITEBYTECODE \
  OPENBLAS_NUM_THREADS
[ -x "$MOEPLACE_ABI_PROG" ] || { echo "missing $MOEPLACE_ABI_PROG"; exit 99; }
tests="$top_srcdir/python/tests"
run="$tests/run_pytest.py"
cd "${TMPDIR:-/tmp}" || exit 99  # pytest's tmp_path and any stray file stay out of the trees

case "$mode" in
  core)
    exec "$PYTHON3" "$run" "$tests" --ignore-glob="$tests/*_mpi.py" ;;
  mpi)
    "$PYTHON3" -c "import mpi4py" 2>/dev/null ||
      skip "python3 module mpi4py missing (apt-get install python3-mpi4py)"
    [ "$MPIRUN" != no ] || { echo "no MPI launcher found by configure"; exit 99; }
    if [ "$(id -u)" = 0 ]; then
      export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
    fi
    export OMPI_MCA_rmaps_base_oversubscribe=1
    over=""
    [ "$MPI_IMPL" != openmpi ] || over=--oversubscribe
    # shellcheck disable=SC2086 # $over is empty or one option
    timeout 180 "$MPIRUN" $over -np 2 "$PYTHON3" "$run" --color=no "$tests/test_runtime_mpi.py" \
      "$tests/test_rtapi_mpi.py" ;;
  *) echo "python.sh: unknown mode '$mode'"; exit 99 ;;
esac
