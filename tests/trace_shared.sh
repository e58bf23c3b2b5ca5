#!/bin/sh
# The trace statistics of the full shared trace (../shared/traces) against
# the numpy fixture. Skipped, visibly, where the shared traces are absent
# (a release tarball, a clone without shared/): exit 77 is automake's SKIP.
: "${top_builddir:=.}" "${top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
trace="$top_srcdir/../shared/traces/pycode-L4-E16-top2.csv.gz"
if [ ! -r "$trace" ]; then
  echo "SKIP: $trace not found; the full-trace fixture check did not run"
  exit 77
fi
MP_TEST_SHARED=1 exec "$top_builddir/tests/test_trace"
