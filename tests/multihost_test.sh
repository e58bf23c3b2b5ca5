#!/bin/bash
# make check-multihost: the MPI runtime on two real "hosts" (network
# namespaces joined by a shaped bridge, scripts/multihost.sh), 2 ranks each,
# TCP between the hosts and shared memory within a host:
#   1. topology discovery finds the two hosts by itself (no emulation option);
#   2. the runtime's migrate/corrupt cases (tests/test_runtime_mpi.c) move
#      experts across hosts and verify them bit for bit;
#   3. moeplace-demo rebalances across the hosts: "nodes": 2, bytes moved
#      between nodes, final weights bit-identical; its JSON is left as
#      multihost-demo.json in the build directory;
#   4. tests/multihost_fault.sh: a host link goes down in a migration.
# Needs root; exits 77 where network namespaces are not permitted.
set -u
: "${top_builddir:=.}" "${top_srcdir:=.}" "${PYTHON3:=/usr/bin/python3}"
mh="$top_srcdir/scripts/multihost.sh"
export MH_STATE="${TMPDIR:-/tmp}/moeplace-multihost.$$"
export OPENBLAS_NUM_THREADS=1
t_start=$(date +%s)

# The namespaces' names are fixed (mph*): one run at a time on a machine.
if command -v flock >/dev/null; then
  exec 9>"${TMPDIR:-/tmp}/moeplace-multihost.lock"
  flock -w 600 9 || { echo "check-multihost: another run holds ${TMPDIR:-/tmp}/moeplace-multihost.lock"; exit 1; }
fi
"$mh" up 2 || exit $?
trap '"$mh" down 2' EXIT
trap 'exit 130' INT TERM HUP

status=0
fail() { echo "FAIL: $*"; status=1; }
# Every run is bounded: a hang across hosts is a failure, not a stuck CI job.
mpi() { local t=$1; shift; timeout -k 5 "$t" "$mh" mpirun 2 -- "$@"; }

prog="$top_builddir/tests/test_runtime_mpi"
echo "== 1. topology: 4 ranks on 2 hosts, then 2 ranks one per host"
mpi 60 -np 4 "$prog" topology_hosts || fail "topology_hosts, 4 ranks"
mpi 60 -np 2 --map-by node "$prog" topology_hosts || fail "topology_hosts, 2 ranks"

echo "== 2. migrations across hosts, verified"
for c in migrate migrate_owned corrupt corrupt_owned migrate_p2p corrupt_p2p; do
  mpi 60 -np 4 "$prog" "$c" || fail "$c on 2 hosts x 2 ranks"
done
mpi 60 -np 2 --map-by node "$prog" migrate_owned || fail "migrate_owned, one rank per host"

echo "== 3. moeplace-demo on 2 hosts x 2 ranks"
json="$top_builddir/multihost-demo.json"
rm -f "$json"
mpi 150 -np 4 "$top_builddir/moeplace-demo" --steps 400 --d-model 32 --d-ff 64 \
  --interval 50 --json "$json" || fail "moeplace-demo across hosts"
if [ -f "$json" ]; then
  "$PYTHON3" - "$json" <<'PY' || fail "moeplace-demo JSON"
import json, sys
d = json.load(open(sys.argv[1]))
dyn = d["dynamic"]
assert d["ranks"] == 4, d["ranks"]
assert d["nodes"] == 2, "nodes discovered: %r" % d["nodes"]
assert d["weights_identical"] is True, "final weights differ"
assert dyn["rebalances"] >= 1 and dyn["moves"] >= 1, dyn
assert dyn["cross_node_bytes"] > 0, "no expert moved between the hosts: %r" % dyn
assert dyn["cross_node_bytes"] <= dyn["bytes_moved"], dyn
print("multihost demo ok: %d nodes, %d rebalances, %d moves, %d bytes moved, %d between nodes, "
      "weights bit-identical" % (d["nodes"], dyn["rebalances"], dyn["moves"], dyn["bytes_moved"],
                                  dyn["cross_node_bytes"]))
PY
fi

echo "== 4. a host link fails during a migration"
bash "$top_srcdir/tests/multihost_fault.sh" || fail "link failure test"

echo "check-multihost: $(( $(date +%s) - t_start )) s"
exit $status
