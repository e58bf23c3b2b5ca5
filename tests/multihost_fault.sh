#!/bin/bash
# A host link fails in the middle of a migration (part of make
# check-multihost). moeplace-demo runs on 2 hosts x 2 ranks with 4 MiB experts
# rebalancing every 10 steps over a slow link (200 Mbit/s); when the traffic
# on host 2's bridge port shows a migration under way (> 1 MB in 0.2 s: the
# training steps themselves send only a few hundred bytes), the port goes
# down, silently, as a failed cable or switch port would.
#
# Expected: the job ends with an error within LIMIT seconds (default 60),
# with a message naming the lost host or, from a surviving rank whose wait
# passed --timeout (RANK_TIMEOUT, default 3 s), the stage and the peers, and the placements the ranks
# committed (each rank logs them to a file, --commit-log) form one sequence:
# no rank ahead of another by more than one rebalance (see below why one
# can be). A trainer restarts from its last checkpoint (docs/MULTIHOST.md).
#
# Open MPI notices the silent loss through TCP keepalive on its
# out-of-band connections (oob_tcp_keepalive_*, set below to about 10 s);
# without them it waits for the kernel's TCP timeouts (minutes): see
# docs/MULTIHOST.md for the measured times.
set -u
: "${top_builddir:=.}" "${top_srcdir:=.}" "${PYTHON3:=/usr/bin/python3}"
mh="$top_srcdir/scripts/multihost.sh"
export MH_STATE="${TMPDIR:-/tmp}/moeplace-multihost-fault.$$"
export MH_RATE=${MH_RATE_FAULT:-200mbit} OPENBLAS_NUM_THREADS=1
limit=${LIMIT:-60}
out="${TMPDIR:-/tmp}/multihost_fault.$$.log"
commits="${TMPDIR:-/tmp}/multihost_fault.$$.commits"

"$mh" up 2 || exit $?
trap '"$mh" down 2; rm -f "$out" "$commits".*' EXIT
trap 'exit 130' INT TERM HUP

port_bytes() { # bytes through host 2's bridge port, both directions
  ip netns exec mphbr cat /sys/class/net/mph2-br/statistics/tx_bytes \
    /sys/class/net/mph2-br/statistics/rx_bytes 2>/dev/null | awk '{s += $1} END {print s + 0}'
}

# A bound of its own on the whole job: a hang fails the test, not CI.
timeout -k 5 $((limit + 120)) "$mh" mpirun 2 -- -np 4 \
  --mca oob_tcp_keepalive_time "${KEEPALIVE_TIME:-4}" \
  --mca oob_tcp_keepalive_intvl "${KEEPALIVE_INTVL:-2}" \
  --mca oob_tcp_keepalive_probes "${KEEPALIVE_PROBES:-3}" \
  "$top_builddir/moeplace-demo" --d-model 256 --d-ff 1024 --token-scale 0.001 \
  --window 10 --interval 10 --steps 3000 --timeout "${RANK_TIMEOUT:-3}" \
  --commit-log "$commits" >"$out" 2>&1 &
job=$!

# Wait for a migration's traffic, then cut the link.
prev=$(port_bytes)
cut=""
for _ in $(seq 1 600); do # at most 120 s
  sleep 0.2
  kill -0 "$job" 2>/dev/null || break
  now=$(port_bytes)
  if [ $((now - prev)) -gt 1000000 ]; then
    ip -n mphbr link set mph2-br down
    cut=$(date +%s.%N)
    echo "link mph2-br down at $(date -u +%T.%N | cut -c1-12) ($((now - prev)) bytes in the last 0.2 s: a migration was under way)"
    break
  fi
  prev=$now
done
wait "$job"
rc=$?
end=$(date +%s.%N)
status=0
if [ -z "$cut" ]; then
  echo "FAIL: no migration traffic seen (job exit $rc)"
  cat "$out"
  exit 1
fi
elapsed=$(awk -v a="$cut" -v b="$end" 'BEGIN {printf "%.1f", b - a}')
echo "job ended $elapsed s after the link went down, exit status $rc"
echo "---- job output (last 25 lines)"
tail -25 "$out"
echo "----"
if [ "$rc" -eq 0 ]; then
  echo "FAIL: the job succeeded although a host was cut off"
  status=1
fi
if [ "$rc" -eq 124 ] || [ "$rc" -eq 137 ] || awk -v e="$elapsed" -v l="$limit" 'BEGIN {exit !(e >= l)}'; then
  echo "FAIL: the job did not end within $limit s of the link failure"
  status=1
fi
# The ranks' own error (collective_timeout_s, --timeout: "rank R: timed out
# after S s in STAGE ... no message to or from ranks ...") when a surviving
# rank notices first; Open MPI's when its keepalive ends the job first.
if grep -q "timed out after" "$out"; then
  echo "a surviving rank reported: $(grep -m1 "timed out after" "$out")"
elif ! grep -q -i -E "lost communication|unable to connect|connection.*(timed out|reset|refused)|unreachable|daemon" "$out"; then
  echo "FAIL: no message about the lost host"
  status=1
fi
# Every rank logged (and flushed) each placement it committed
# (--commit-log). A rank commits only after an agreement (an allreduce) that
# every transfer on every rank verified, so no rank can hold a placement
# whose data is incomplete anywhere. But a link that fails while that
# agreement is in flight can let the ranks on one side finish it and commit
# while the others never learn the outcome (no finite protocol avoids this:
# the two generals' problem). So the logs must be one sequence of placements,
# each rank's log a prefix of the longest, ending at most one rebalance
# apart; a trainer restarts from its last checkpoint in either case.
"$PYTHON3" - "$commits" <<'PY' || status=1
import sys
logs = [open("%s.%d" % (sys.argv[1], r)).read().split("\n")[:-1] for r in range(4)]
longest = max(logs, key=len)
ok = True
for r, log in enumerate(logs):
    print("  rank %d committed %d placements, the last: %s" % (r, len(log), log[-1] if log else "none"))
    if not log or log != longest[:len(log)]:
        print("FAIL: rank %d's committed placements are not a prefix of one common sequence" % r)
        ok = False
if ok and len(longest) - min(len(l) for l in logs) > 1:
    print("FAIL: the ranks' last commits are more than one rebalance apart")
    ok = False
if ok:
    ends = sorted(set(l[-1] for l in logs))
    if len(ends) == 1:
        print("all ranks ended on the same committed placement")
    else:
        print("the link failed while the commit agreement was in flight: ranks %s committed %s, "
              "ranks %s stopped at %s (all transfers had verified; the job is lost either way)" % (
                  [r for r in range(4) if logs[r][-1] == ends[1]], ends[1],
                  [r for r in range(4) if logs[r][-1] == ends[0]], ends[0]))
sys.exit(0 if ok else 1)
PY
[ "$status" -eq 0 ] && echo "link failure: job ended with an error after $elapsed s, commits consistent"
exit $status
