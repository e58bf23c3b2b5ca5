#!/bin/sh
# moeplace-replay end to end on the bundled real trace: the JSON holds every
# policy's figures, they agree with the per-step timeline and with
# metrics.md's formulas, static never moves, the oracle beats the
# interval-boundary policies, and bad parameters are refused with exit 2.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
REPLAY="$top_builddir/moeplace-replay"
DATA="$top_srcdir/data/perl-L4-E8-top1-4k.csv.gz"

expect_status 0 "replay 4x3" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --interval 500 \
  --predictor sw_avg --expert-bytes 1000000 --json "$WORK/r.json" --timeline "$WORK/t.csv" --quiet
expect_grep "^moeplace " "$WORK/out" "table"
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK/r.json" "$WORK/t.csv" <<'PY' || fail "replay JSON and timeline"
import csv, json, math, sys
d = json.load(open(sys.argv[1]))
rows = list(csv.DictReader(open(sys.argv[2])))
assert d["steps"] == 4000 and len(rows) == 4000, (d["steps"], len(rows))
assert (d["layers"], d["experts"], d["ranks"], d["slots"]) == (4, 8, 4, 3)
P = d["policies"]
assert set(P) == {"static", "moving_average", "moeplace", "oracle", "eplb"}, P.keys()
for name, p in P.items():
    for key in ("imbalance", "moves", "bytes_moved", "cross_node_bytes", "migration_s", "decision_ms"):
        assert key in p, (name, key)
    # the mean of the timeline is the reported imbalance
    mean = sum(float(r[name]) for r in rows) / len(rows)
    assert abs(mean - p["imbalance"]) < 1e-5, (name, mean, p["imbalance"])
    assert all(float(r[name]) >= 1 - 1e-9 for r in rows), name
    assert p["bytes_moved"] == p["moves"] * 1000000, name
    assert sum(x["moves"] for x in p["decision_log"]) == p["moves"], name
    assert p["cross_node_bytes"] == 0, name  # one node
s, o = P["static"]["imbalance"], P["oracle"]["imbalance"]
assert P["static"]["moves"] == 0 and "gap_to_oracle" not in P["static"]
assert o < s, (o, s)
for name in ("moving_average", "moeplace", "oracle", "eplb"):
    g = (P[name]["imbalance"] - o) / (s - o)
    assert abs(g - P[name]["gap_to_oracle"]) < 1e-9, (name, g)
    # the oracle places each interval on its loads, from its first step;
    # moeplace's warm-up (on by default, steps 20, 40, ..., 320) also decides inside the
    # first interval, so only the interval-boundary policies stay above it
    if name != "moeplace":
        assert P[name]["imbalance"] >= o - 1e-3, name
assert [x["step"] for x in P["moeplace"]["decision_log"]][:6] == [20, 40, 80, 160, 320, 500], P["moeplace"]["decision_log"]
# 8 intervals of 500 steps: the first is decided by the oracle only
assert len(P["moving_average"]["decision_log"]) == 7, len(P["moving_average"]["decision_log"])
assert len(P["oracle"]["decision_log"]) == 8
PY

# Two nodes: cross-node bytes are counted and never exceed the bytes moved.
expect_status 0 "replay 2 nodes" -- "$REPLAY" --trace "$DATA" --ranks 4 --nodes 2 --slots 3 \
  --predictor sw_avg --policies moving_average,moeplace --json "$WORK/n.json" --quiet
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK/n.json" <<'PY' || fail "two-node replay"
import json, sys
d = json.load(open(sys.argv[1]))
P = d["policies"]
assert set(P) == {"moving_average", "moeplace"} and d["nodes"] == 2
ma = P["moving_average"]
assert 0 < ma["cross_node_bytes"] <= ma["bytes_moved"], ma
PY

# Groups: 4 groups of 2 experts kept on 2 nodes by every policy.
expect_status 0 "replay with groups" -- "$REPLAY" --trace "$DATA" --ranks 4 --nodes 2 --slots 3 \
  --predictor sw_avg --groups 4 --json "$WORK/g.json" --quiet
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK/g.json" <<'PY' || fail "replay with groups"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["groups"] == 4 and d["nodes"] == 2
assert all(p["imbalance"] >= 1 for p in d["policies"].values())
PY
# 4 groups on 3 nodes: every policy places without the node limit, as EPLB
# falls back to its global policy (the replay failed on it before).
expect_status 0 "groups the nodes do not divide" -- "$REPLAY" --trace "$DATA" --ranks 6 --nodes 3 \
  --slots 2 --predictor sw_avg --groups 4 --json "$WORK/g3.json" --quiet &&
  expect_grep "warning: 4 groups on 3 nodes cannot be node-limited" "$WORK/err" "groups warning"
expect_status 2 "groups not dividing the experts" -- "$REPLAY" --trace "$DATA" --ranks 4 --nodes 2 \
  --slots 3 --groups 3 --quiet &&
  expect_grep "groups (3) must divide the experts (8)" "$WORK/err" "groups" &&
  { ! grep -q warning "$WORK/err" || fail "a fallback warning before the groups error"; }

# Bad parameters.
expect_status 2 "interval not a multiple of window" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --interval 55 --quiet &&
  expect_grep "interval (55) must be a positive multiple of --window (10)" "$WORK/err" "interval"
# Counts whose window sums pass 2^64 - 1: refused like every reader does, not
# wrapped into other proportions (the replay summed its windows itself).
{ echo "step,layer,e0,e1"; for s in 0 1 2 3 4 5 6 7 8 9; do
    echo "$s,0,$((1 << 62)),1"; echo "$s,1,1,1"; done; } >"$WORK/huge.csv"
expect_status 2 "window sums past 2^64" -- "$REPLAY" --trace "$WORK/huge.csv" --ranks 2 --slots 2 \
  --interval 10 --window 5 --quiet &&
  expect_grep "huge.csv:8: step 3: layer 0 expert e0: counts summed over the window exceed" "$WORK/err" \
    "names file:line, step, layer and expert"
expect_status 1 "--json in a missing directory" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 \
  --quiet --timeline "$WORK/never.csv" --json "$WORK/nodir/r.json" &&
  expect_grep "nodir/r.json: cannot create" "$WORK/err" "names the output" &&
  expect_status 1 "... and the timeline was not written" -- test -e "$WORK/never.csv"
for bad in "static,static" "static," ",static" "static,,eplb"; do
  expect_status 2 "--policies $bad" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --quiet \
    --policies "$bad" && expect_grep "^moeplace-replay: --policies: " "$WORK/err" "names the option"
done
for opt in --expert-bytes --budget; do
  expect_status 2 "$opt 1.5" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --quiet $opt 1.5 &&
    expect_grep "^moeplace-replay: $opt: 1.5 is not a whole number of bytes" "$WORK/err" "names $opt"
done
printf 'nodes 2\nranks_per_node 2\n' >"$WORK/topo.txt"
expect_status 0 "--topology -" -- sh -c '"$0" --trace "$1" --topology - --slots 3 --quiet \
  --policies static --json "$2" <"$3"' "$REPLAY" "$DATA" "$WORK/stdin.json" "$WORK/topo.txt" &&
  expect_grep '"nodes": 2' "$WORK/stdin.json" "topology read from stdin"
expect_status 2 "--trace - --topology -" -- "$REPLAY" --trace - --topology - --slots 3 --quiet &&
  expect_grep "^moeplace-replay: --trace and --topology both read stdin" "$WORK/err" "names both options"
expect_status 2 "too few slots" -- "$REPLAY" --trace "$DATA" --ranks 2 --slots 3 --quiet &&
  expect_grep "cannot hold the trace's 8 experts" "$WORK/err" "slots"
expect_status 2 "unknown policy" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --policies static,nonesuch &&
  expect_grep "unknown policy 'nonesuch'" "$WORK/err" "policy"
expect_status 2 "ranks not a multiple of nodes" -- "$REPLAY" --trace "$DATA" --ranks 5 --nodes 2 --slots 3 &&
  expect_grep "must be a multiple of --nodes" "$WORK/err" "nodes"
expect_status 2 "no shape" -- "$REPLAY" --trace "$DATA" --slots 3
expect_status 2 "unknown predictor" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --predictor crystal_ball --quiet
expect_status 2 "malformed trace" -- "$REPLAY" --trace "$top_srcdir/tests/fuzz/corpus/backwards.csv" --ranks 4 --slots 3 --quiet --timeline "$WORK/bad.csv"
CHECKS=$((CHECKS + 1))
[ ! -e "$WORK/bad.csv" ] || fail "a failed replay left its timeline behind"
expect_status 0 "help" -- "$REPLAY" --help
# An empty --policies is refused, naming the option (issue 14, item D).
expect_status 2 "empty policies" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --policies '' --quiet &&
  expect_grep "policies: empty list" "$WORK/err" "empty policies"
# A timeline that cannot be written (/dev/full: ENOSPC at the flush) is a
# write error naming the file, exit 1.
if [ -w /dev/full ]; then
  expect_status 1 "timeline on a full device" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 \
    --predictor sw_avg --quiet --timeline /dev/full &&
    expect_grep "/dev/full: write failed: No space left on device" "$WORK/err" "timeline write error"
fi
# --shares even: every policy places and is scored with equal splits; the
# JSON names the policy and the oracle beats static under both
if expect_status 0 "replay --shares even" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 5 \
  --predictor sw_avg --quiet --shares even --json "$WORK/even.json" &&
  expect_status 0 "replay --shares weighted" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 5 \
    --predictor sw_avg --quiet --shares weighted --json "$WORK/weighted.json"; then
  CHECKS=$((CHECKS + 1))
  "$PYTHON3" - "$WORK/even.json" "$WORK/weighted.json" <<'PY' || fail "replay share policies"
import json, sys
e, w = (json.load(open(p)) for p in sys.argv[1:3])
assert e["shares"] == "even" and w["shares"] == "weighted", (e["shares"], w["shares"])
pe, pw = e["policies"], w["policies"]
for p in (pe, pw):
    assert p["oracle"]["imbalance"] < p["static"]["imbalance"]
PY
fi
# An interval (or window) longer than the trace costs the steps the trace
# has, not the interval's: the block buffers grow as steps are read. Run
# with 2 GB of address space so that sizing them by the option (1e9 steps x
# 4 layers x 8 experts x 8 bytes: 256 GB) fails without a sanitizer too.
# ASan reserves terabytes of address space, so under it the run goes without
# the limit (ASan refuses the old allocation itself).
bounded_replay() {
  CHECKS=$((CHECKS + 1))
  (ulimit -v 2097152 && exec "$REPLAY" "$@") >"$WORK/out" 2>"$WORK/err"
  st=$?
  if grep -q "Sanitizer" "$WORK/err"; then
    "$REPLAY" "$@" >"$WORK/out" 2>"$WORK/err"
    st=$?
  fi
  [ "$st" -eq 0 ] && return 0
  fail "bounded replay: exit status $st, expected 0 ($*)"
  sed 's/^/  stderr: /' "$WORK/err" >&2
  return 1
}
"$top_builddir/moeplace-trace" convert --steps 0:300 "$DATA" "$WORK/short.csv" ||
  fail "a 300-step trace"
while read -r tag trace interval window; do
  bounded_replay --trace "$trace" --ranks 4 --slots 3 --predictor sw_avg --quiet \
    --interval "$interval" --window "$window" --json "$WORK/long-$tag.json"
done <<EOF
short $WORK/short.csv 300 10
short-interval $WORK/short.csv 1000000000 10
short-window $WORK/short.csv 1000000000 1000000000
full $DATA 4000 10
full-interval $DATA 1000000000 10
EOF
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK" <<'PY' || fail "an interval longer than the trace"
import json, sys
def load(tag):
    return json.load(open("%s/long-%s.json" % (sys.argv[1], tag)))
def without_timing(p):
    p = dict(p)
    p.pop("decision_ms")
    p["decision_log"] = [{k: v for k, v in r.items() if k != "decision_ms"}
                         for r in p.get("decision_log", [])]
    return p
# One block either way, the same steps: static, the oracle and the
# interval-boundary policies decide alike (moeplace's horizon is the
# interval, which prices its moves differently). The 4000-step trace grows
# the block twice past its first 1024 steps.
for steps, a, b in ((300, "short", "short-interval"), (300, "short", "short-window"),
                    (4000, "full", "full-interval")):
    x, y = load(a), load(b)
    assert x["steps"] == y["steps"] == steps, (a, x["steps"], b, y["steps"])
    assert y["interval"] == 1000000000, y["interval"]
    for name in ("static", "moving_average", "oracle", "eplb"):
        px, py = without_timing(x["policies"][name]), without_timing(y["policies"][name])
        assert px == py, (a, b, name, px, py)
PY
expect_status 2 "--warmup 1" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --warmup 1 --quiet &&
  expect_grep "warmup (1) must be 0, auto or a multiple of the window (10)" "$WORK/err" \
    "names the CLI's auto"
expect_status 2 "--samples -1" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 --samples -1 --quiet &&
  expect_grep "samples" "$WORK/err" "names --samples"
# Load samples: 50 windows by default (the JSON says so), 0 turns them off.
expect_status 0 "replay without samples" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 3 \
  --predictor sw_avg --policies moeplace --samples 0 --json "$WORK/s0.json" --quiet
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK/r.json" "$WORK/s0.json" <<'PY' || fail "samples in the JSON"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["samples"] == 50 and b["samples"] == 0, (a["samples"], b["samples"])
PY
# The OpenBLAS kernels the forecasters ran on, in the JSON (figures repeat
# bit for bit only on the same kernels: docs/REPLAY.md "Repeating figures");
# pinned to Sandybridge's, which every x86-64 CPU with AVX runs
if [ "$(uname -m)" = x86_64 ] && grep -qw avx /proc/cpuinfo; then
  expect_status 0 "replay on pinned kernels" -- env OPENBLAS_CORETYPE=Sandybridge "$REPLAY" \
    --trace "$DATA" --ranks 4 --slots 3 --predictor sw_avg --policies moeplace \
    --json "$WORK/k.json" --quiet
  CHECKS=$((CHECKS + 1))
  "$PYTHON3" - "$WORK/r.json" "$WORK/k.json" <<'PY' || fail "blas_core in the JSON"
import json, sys
a, b = (json.load(open(p)) for p in sys.argv[1:3])
assert a["blas_core"] and b["blas_core"] == "Sandybridge", (a["blas_core"], b["blas_core"])
PY
else
  echo "SKIP: blas_core pinned to Sandybridge: not an x86-64 CPU with AVX" >&2
fi
expect_status 2 "unknown share policy" -- "$REPLAY" --trace "$DATA" --ranks 4 --slots 5 --shares x &&
  expect_grep "not a share policy" "$WORK/err" "share policy message"
finish
