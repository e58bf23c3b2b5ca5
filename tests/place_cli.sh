#!/bin/sh
# moeplace-place end to end: a placement from a trace, its JSON accepted back
# as --current, few moves on the next interval, the budget respected, and
# clear errors (exit 2) for invalid inputs.
. "$top_srcdir/tests/lib.sh"
P="$top_builddir/moeplace-place"
TR="$top_srcdir/data/pycode-L4-E16-top2-4k.csv.gz"
D=$WORK
# a failed step makes the later ones meaningless: stop there
die() { fail "$*"; finish; }

"$P" --help | grep -q -- "--migration-weight" || die "--help lacks options"
"$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --steps 0:500 --json "$D/p1.json" >"$D/o1" ||
  die "first placement"
"$PYTHON3" - "$D/p1.json" <<'PY' || die "JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
R, S, E = d["ranks"], d["slots"], d["experts"]
assert (R, S, E, d["layers"]) == (8, 3, 16, 4)
for k in ("imbalance", "lower_bound", "moves", "bytes_moved", "cross_node_bytes", "solve_ms"):
    assert k in d, k
num = den = 0.0
for lay in d["placement"]:
    ph, sh = lay["phy2log"], lay["share"]
    assert len(ph) == R * S and len(lay["logcnt"]) == E
    for r in range(R):
        ex = [e for e in ph[r * S:(r + 1) * S] if e >= 0]
        assert len(ex) == len(set(ex)), "duplicate on a rank"
    for e in range(E):
        s = sum(sh[p] for p in range(R * S) if ph[p] == e)
        assert abs(s - 1) < 1e-9, (e, s)
        assert lay["logcnt"][e] == ph.count(e) >= 1
assert d["lower_bound"] <= d["imbalance"] + 1e-12
PY
# imbalance and lower bound recomputed independently from the trace
cat >"$D/check.py" <<'PY'
import gzip, json, sys
d = json.load(open(sys.argv[1]))
R, S, E, L = d["ranks"], d["slots"], d["experts"], d["layers"]
tot = [[0.0] * E for _ in range(L)]
for line in gzip.open(sys.argv[2], "rt"):
    if line.startswith("#") or line.startswith("step") or not line.strip():
        continue
    f = line.split(",")
    if int(f[0]) >= int(sys.argv[3]):
        break
    for e in range(E):
        tot[int(f[1])][e] += float(f[2 + e])
num = den = 0.0
for lay in d["placement"]:
    l, ph, sh = lay["layer"], lay["phy2log"], lay["share"]
    loads = [sum(sh[p] * tot[l][ph[p]] for p in range(r * S, (r + 1) * S) if ph[p] >= 0)
             for r in range(R)]
    num += max(loads)
    den += sum(tot[l]) / R
assert abs(num / den - d["imbalance"]) < 1e-9, (num / den, d["imbalance"])
# lower bound, independently: per layer max(mean, min over replica counts of
# max w/c), the inner minimum by binary search on T (ceil(w/T) replicas each)
import math
lb = 0.0
for l in range(L):
    w = tot[l]
    lo, hi = 0.0, max(w)
    for _ in range(200):
        mid = (lo + hi) / 2
        need = sum(max(1, math.ceil(x / mid)) if mid > 0 else R for x in w)
        if need <= R * S and all(math.ceil(x / mid) <= R for x in w if mid > 0):
            hi = mid
        else:
            lo = mid
    lb += max(sum(w) / R, hi)
assert abs(lb / den - d["lower_bound"]) < 1e-6, (lb / den, d["lower_bound"])
PY
"$PYTHON3" "$D/check.py" "$D/p1.json" "$TR" 500 || die "imbalance / bound recomputation"
# a skewed trace without room to replicate: the replica-count term binds
PERL="$top_srcdir/data/perl-L4-E8-top1-4k.csv.gz"
"$P" --loads "$PERL" --ranks 8 --slots 1 --steps 0:1000 --json "$D/perl.json" >/dev/null ||
  die "perl placement"
"$PYTHON3" "$D/check.py" "$D/perl.json" "$PERL" 1000 || die "perl recomputation"
"$PYTHON3" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["lower_bound"] > 1.5, d["lower_bound"]' "$D/perl.json" ||
  die "perl lower bound should exceed 1.5"
# next interval from the current placement: accepted, few moves, budget kept
"$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --steps 500:1000 --current "$D/p1.json" \
  --expert-bytes 1000 --budget 3000 --json "$D/p2.json" --plan "$D/plan.json" >"$D/o2" ||
  die "second placement"
"$PYTHON3" - "$D/p2.json" "$D/plan.json" <<'PY' || die "budget / plan"
import json, sys
d = json.load(open(sys.argv[1])); plan = json.load(open(sys.argv[2]))
assert d["bytes_moved"] <= 3000, d["bytes_moved"]
assert len(plan["transfers"]) == d["moves"]
PY
# two outputs: one that cannot be written fails the run before the other is
# written; one name for both is refused (it used to hold only the plan)
expect_status 1 "--plan in a missing directory" -- "$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 \
  --current "$D/p1.json" --json "$D/never.json" --plan "$D/nodir/plan.json" &&
  expect_grep "nodir/plan.json: cannot create" "$WORK/err" "names the plan" &&
  expect_status 1 "... and --json was not written" -- test -e "$D/never.json"
expect_status 2 "--json and --plan the same file" -- "$P" --loads "$TR" --ranks 8 --nodes 2 \
  --slots 3 --current "$D/p1.json" --json "$D/both.json" --plan "$D/both.json" &&
  expect_grep "name one file" "$WORK/err" "says why"
# without the budget, then the same loads again: nothing to gain, nothing moves
"$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --steps 500:1000 --current "$D/p2.json" \
  --json "$D/p3.json" >"$D/o3" || die "third placement"
"$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --steps 500:1000 --current "$D/p3.json" \
  --json "$D/p4.json" >"$D/o4" || die "fourth placement"
expect_grep "moves 0 " "$D/o4" "re-placing the same loads moves nothing"
expect_grep "kept_current yes" "$D/o4" "kept_current reported"

# node-limited groups: 4 groups of 4 experts on 2 nodes, then from the
# ungrouped p1 (the groups gather); the EPLB maps and the per-layer
# split_groups recomputed with numpy
"$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --steps 0:500 --groups 4 --json "$D/g1.json" \
  >"$D/og1" || die "grouped placement"
expect_grep "groups 4  nodes 2  split_groups 0" "$D/og1" "split_groups on stdout"
"$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --steps 500:1000 --groups 4 \
  --current "$D/p1.json" --json "$D/g2.json" >"$D/og2" || die "grouped placement from p1"
cat >"$D/maps.py" <<'PY'
import json, sys
import numpy as np
d = json.load(open(sys.argv[1]))
G, N = int(sys.argv[2]), int(sys.argv[3])
R, S, E, L = d["ranks"], d["slots"], d["experts"], d["layers"]
phy2log = np.array(d["phy2log"]); log2phy = np.array(d["log2phy"]); logcnt = np.array(d["logcnt"])
assert phy2log.shape == (L, R * S) and logcnt.shape == (L, E) and log2phy.shape[:2] == (L, E)
assert log2phy.shape[2] == logcnt.max()
for lay in d["placement"]:
    l = lay["layer"]
    assert (np.array(lay["phy2log"]) == phy2log[l]).all()
    for e in range(E):
        slots = np.flatnonzero(phy2log[l] == e)  # global slot = rank * S + local slot
        assert logcnt[l, e] == len(slots) >= 1
        assert (log2phy[l, e, :len(slots)] == slots).all() and (log2phy[l, e, len(slots):] == -1).all()
    if G > 1:  # split groups recomputed: none
        node = np.arange(R * S) // S // (R // N)
        spans = sum(len(set(node[(phy2log[l] >= 0) & (phy2log[l] // (E // G) == g)])) > 1
                    for g in range(G))
        assert lay["split_groups"] == spans == 0, (l, lay["split_groups"], spans)
assert d.get("split_groups", 0) == 0
PY
for f in g1 g2; do
  "$PYTHON3" "$D/maps.py" "$D/$f.json" 4 2 || die "EPLB maps / groups of $f.json"
done
"$PYTHON3" "$D/maps.py" "$D/p2.json" 1 2 || die "EPLB maps of p2.json"
"$PYTHON3" -c 'import json,sys; d=json.load(open(sys.argv[1])); assert d["cross_node_bytes"] > 0 and d["groups"] == 4' "$D/g2.json" ||
  die "gathering the groups of p1 crosses nodes"
# both share policies, with and without node-limited groups, fresh and
# from a current placement: every figure of the JSON recomputed
# independently (tests/check_place_json.py, numpy)
CHK="$top_srcdir/tests/check_place_json.py"
for pol in weighted even; do
  for shape in "8 3 2" "4 5 1" "6 4 2" "8 3 2 --groups 4" "6 4 2 --groups 8"; do
    set -- $shape
    r=$1 s=$2 n=$3
    shift 3
    "$P" --loads "$TR" --ranks "$r" --nodes "$n" --slots "$s" --steps 0:500 --shares $pol "$@" \
      --json "$D/s1.json" >"$D/so" || die "$pol placement $shape"
    expect_grep "shares $pol" "$D/so" "policy printed"
    "$PYTHON3" "$CHK" "$D/s1.json" "$TR" 0 500 || die "$pol $shape: fresh figures"
    "$P" --loads "$TR" --ranks "$r" --nodes "$n" --slots "$s" --steps 2000:2500 --shares $pol "$@" \
      --current "$D/s1.json" --expert-bytes 1000 --json "$D/s2.json" >/dev/null ||
      die "$pol placement $shape from current"
    "$PYTHON3" "$CHK" "$D/s2.json" "$TR" 2000 2500 --current "$D/s1.json" --expert-bytes 1000 ||
      die "$pol $shape: figures from current"
  done
done
# a fresh placement: min_gain prices moves only, so it changes nothing
"$P" --loads "$TR" --ranks 8 --slots 3 --steps 0:500 >"$D/g1" || die "min_gain default"
"$P" --loads "$TR" --ranks 8 --slots 3 --steps 0:500 --min-gain 0 >"$D/g0" || die "min_gain 0"
[ "$(grep -o 'imbalance [0-9.]*' "$D/g1")" = "$(grep -o 'imbalance [0-9.]*' "$D/g0")" ] ||
  fail "min_gain changed a fresh placement"

# errors: exit 2 with a clear message
expect_usage() { # message-pattern command...
  pat=$1
  shift
  expect_status 2 "invalid input ($pat)" -- "$@" && expect_grep "$pat" "$WORK/err" "message"
}
expect_usage "more experts" "$P" --loads "$TR" --ranks 4 --slots 3
expect_usage "current placement is" "$P" --loads "$TR" --ranks 4 --slots 6 --current "$D/p1.json"
# an EPLB map without "experts" that holds no replica of the last expert
"$PYTHON3" -c 'import json, sys; m = json.load(open(sys.argv[1])); E = m["experts"]
print(json.dumps({"ranks": m["ranks"], "slots": m["slots"],
                  "phy2log": [[-1 if e == E - 1 else e for e in row] for row in m["phy2log"]]}))' \
  "$D/p1.json" >"$D/nolast.json"
expect_usage "expert 15 has no replica in it" "$P" --loads "$TR" --ranks 8 --slots 3 --current "$D/nolast.json"
expect_usage "not both" "$P" --loads "$TR" --ranks 8 --topology "$D/p1.json" --slots 3
"$PYTHON3" -c 'import json; print(json.dumps({"ranks": 8, "slots": 3, "phy2log": [[2147483647] + [0] * 23] * 4}))' \
  >"$D/bigid.json"
expect_usage "expert id 2147483647 in phy2log is too large" "$P" --loads "$TR" --ranks 8 --slots 3 \
  --current "$D/bigid.json"
# an EPLB user's map: phy2log only (equal shares), with two replicas of one
# expert on one rank (legal for EPLB): accepted with a warning, repaired
"$PYTHON3" - "$D/p1.json" "$D/dup.json" <<'PY' || die "making the EPLB map"
import json, sys
d = json.load(open(sys.argv[1]))
S, R = d["slots"], d["ranks"]
maps = [lay["phy2log"] for lay in sorted(d["placement"], key=lambda x: x["layer"])]
ph = maps[0]
r = next(r for r in range(R) if -1 in ph[r * S:(r + 1) * S] and
         any(e >= 0 for e in ph[r * S:(r + 1) * S]))
e = next(e for e in ph[r * S:(r + 1) * S] if e >= 0)
ph[r * S + ph[r * S:(r + 1) * S].index(-1)] = e  # a second replica on the same rank
json.dump({"ranks": R, "slots": S, "phy2log": maps}, open(sys.argv[2], "w"))
PY
expect_status 0 "EPLB map with a duplicate" -- "$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 \
  --steps 500:1000 --current "$D/dup.json" --json "$D/dupfix.json" --plan "$D/dupplan.json"
expect_grep "warning: .*dup.json: 1 replica(s) duplicated" "$WORK/err" "duplicate warning"
"$PYTHON3" - "$D/dupfix.json" "$D/dupplan.json" <<'PY' || die "repaired placement / plan"
import json, sys
d = json.load(open(sys.argv[1])); plan = json.load(open(sys.argv[2]))
R, S = d["ranks"], d["slots"]
for lay in d["placement"]:
    for r in range(R):
        ex = [e for e in lay["phy2log"][r * S:(r + 1) * S] if e >= 0]
        assert len(ex) == len(set(ex)), "duplicate left on a rank"
assert plan["slots"] == S
for t in plan["transfers"]:  # global slots and their local parts agree
    for side in ("src", "dst"):
        g = t[side + "_slot"]
        assert g // S == t[side + "_rank"] and g % S == t[side + "_local_slot"], t
PY
# the top-level EPLB maps are what users read (and edit): beside
# "placement" they must agree with it; a copy that is malformed or says
# another thing is refused, naming the key and where, never ignored
"$P" --loads "$TR" --ranks 4 --slots 5 --steps 0:500 --json "$D/m.json" >/dev/null ||
  die "4 x 5 placement"
"$PYTHON3" - "$D/m.json" "$D" <<'PY' || die "editing the EPLB maps"
import json, sys
d = json.load(open(sys.argv[1]))
def edit(name, base=d, **kw):
    json.dump(dict(base, **kw), open("%s/m-%s.json" % (sys.argv[2], name), "w"))
def rows():
    return [r[:] for r in d["phy2log"]]
other = [list(range(16)) + [0, 1, 2, 3]] * 4  # a valid map, not this one
assert other[0] != d["phy2log"][0]
edit("other", phy2log=other)
edit("str", phy2log="x")
ph = rows(); ph[2][7] = 16; edit("e16", phy2log=ph)
ph = rows(); ph[1][0] = 2 ** 40; edit("e2p40", phy2log=ph)
ph = rows(); ph[3].pop(); edit("short", phy2log=ph)
lc = [r[:] for r in d["logcnt"]]; lc[3][5] += 1; edit("logcnt", logcnt=lc)
l2p = [[r[:] for r in m] for m in d["log2phy"]]
l2p[1][4][0], l2p[1][5][0] = l2p[1][5][0], l2p[1][4][0]
edit("log2phy", log2phy=l2p)
lay = [dict(o) for o in d["placement"]]; lay[2]["logcnt"] = [1] * 16
edit("laycnt", placement=lay)
# accepted: EPLB orders a row of log2phy by replica, and pads it wider
edit("l2p-eplb", log2phy=[[r[::-1] + [-1] for r in m] for m in d["log2phy"]])
# an EPLB map with its logcnt / log2phy, a replica duplicated on a rank
# (counted by EPLB's logcnt): accepted, repaired
ph = rows(); S = d["slots"]
r = next(r for r in range(d["ranks"]) if -1 in ph[0][r * S:(r + 1) * S])
e = next(e for e in ph[0][r * S:(r + 1) * S] if e >= 0)
ph[0][r * S + ph[0][r * S:(r + 1) * S].index(-1)] = e
cnt = [[row.count(e) for e in range(16)] for row in ph]
l2p = [[[i for i, x in enumerate(row) if x == e] + [-1] * (max(map(max, cnt)) - c[e])
        for e in range(16)] for row, c in zip(ph, cnt)]
edit("eplb", base={"ranks": d["ranks"], "slots": S}, phy2log=ph, logcnt=cnt, log2phy=l2p)
PY
cur() { # edited-file: place from it
  "$P" --loads "$TR" --ranks 4 --slots 5 --steps 500:1000 --current "$D/m-$1.json"
}
expect_usage 'm-other.json: top-level "phy2log"\[0\]\[[0-9]*\] is [0-9]* but "placement" layer 0 has' cur other
expect_usage 'm-str.json: top-level "phy2log" must be an array of 4 layers' cur str
expect_usage 'm-e16.json: top-level "phy2log"\[2\]\[7\] must be an integer in \[-1, 16)' cur e16
expect_usage 'm-e2p40.json: top-level "phy2log"\[1\]\[0\] must be an integer' cur e2p40
expect_usage 'm-short.json: top-level "phy2log"\[3\] must be an array of ranks x slots = 20' cur short
expect_usage 'm-logcnt.json: "logcnt"\[3\]\[5\] must be' cur logcnt
expect_usage 'm-log2phy.json: "log2phy"\[1\]\[4\]\[0\] must be -1 or a slot' cur log2phy
expect_usage 'm-laycnt.json: "placement" layer 2: "logcnt"' cur laycnt
expect_status 0 "the unedited JSON" -- "$P" --loads "$TR" --ranks 4 --slots 5 --steps 500:1000 \
  --current "$D/m.json"
expect_status 0 "log2phy in EPLB's order, padded" -- cur l2p-eplb
expect_status 0 "EPLB maps with a duplicate" -- cur eplb &&
  expect_grep "warning: .*m-eplb.json: 1 replica(s) duplicated" "$WORK/err" "duplicate warning"
expect_usage "must divide the experts" "$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --groups 3 &&
  { ! grep -q warning "$WORK/err" || fail "a fallback warning before the groups error"; }
# --fill: every slot holds a replica (EPLB's maps), checked independently
expect_status 0 "--fill" -- "$P" --loads "$TR" --ranks 8 --nodes 2 --slots 4 --shares even --fill \
  --groups 4 --json "$D/fill.json" &&
  expect_status 0 "--fill checked" -- "$PYTHON3" "$CHK" "$D/fill.json" "$TR" 0 100000 &&
  { "$PYTHON3" -c 'import json, sys; m = json.load(open(sys.argv[1]))["phy2log"]
sys.exit(any(e < 0 for row in m for e in row))' "$D/fill.json" || fail "--fill left a slot empty"; }
expect_usage "--fill needs --shares even" "$P" --loads "$TR" --ranks 8 --slots 4 --fill
# --fill from a current placement under a byte budget: the experts a rank
# keeps stay in their slots, so the plan is the moves the JSON counts and
# fits the budget (the fill once handed slots out in order and the plan
# copied kept replicas from slot to slot on one rank)
"$P" --loads "$PERL" --ranks 4 --slots 3 --steps 0:500 --shares even --fill \
  --json "$D/fc.json" >/dev/null || die "--fill current"
expect_status 0 "--fill --current --budget" -- "$P" --loads "$PERL" --ranks 4 --slots 3 \
  --steps 2000: --current "$D/fc.json" --shares even --fill --budget 1 --expert-bytes 1 \
  --json "$D/fn.json" --plan "$D/fp.json" &&
  expect_status 0 "... plan within budget, kept replicas in place" -- "$PYTHON3" - "$D/fc.json" \
    "$D/fn.json" "$D/fp.json" <<'PY'
import json, sys
cur, new, plan = (json.load(open(f)) for f in sys.argv[1:])
t = plan["transfers"]
assert len(t) == new["moves"] <= 1 and new["bytes_moved"] <= 1, (len(t), new["moves"])
assert all(x["src_rank"] != x["dst_rank"] for x in t), t
S = 3
for l, (a, b) in enumerate(zip(cur["phy2log"], new["phy2log"])):
    for i, e in enumerate(b):
        r = i // S
        if e in a[r * S:(r + 1) * S]:  # a kept replica sits where it was
            assert a[i] == e, (l, i, a, b)
PY
# --fill when the rule keeps the current assignment: the fill still
# transfers into the slots nothing else fills (as a merged duplicate's of an
# EPLB map), and the stats say so (they once said kept_current yes with
# moves 2 and migration_s 0)
printf 'step,layer,e0,e1,e2,e3\n0,0,100,100,100,100\n' >"$D/eq.csv"
echo '{"ranks": 2, "slots": 3, "phy2log": [[0, 1, -1, 2, 3, -1]]}' >"$D/holes.json"
expect_status 0 "--fill, kept" -- "$P" --loads "$D/eq.csv" --ranks 2 --slots 3 --shares even \
  --fill --current "$D/holes.json" --step-ms 1 --expert-bytes 1e9 --plan "$D/hp.json" &&
  expect_grep "kept_current no  moves 2 " "$WORK/out" "the fill's moves counted" &&
  expect_grep "migration_s 0\.010000" "$WORK/out" "the fill's moves timed (1 GB at 100 GB/s)" &&
  expect_status 0 "... plan of 2 transfers" -- test "$(grep -c '"expert"' "$D/hp.json")" = 2
# Groups the nodes cannot limit: EPLB's global fallback, with a warning and
# the split groups counted.
expect_status 0 "groups not a multiple of the nodes" -- "$P" --loads "$TR" --ranks 8 --nodes 4 \
  --slots 3 --groups 2 &&
  expect_grep "warning: 2 groups on 4 nodes cannot be node-limited" "$WORK/err" "groups warning" &&
  expect_grep "groups 2  nodes 4  split_groups [1-9]" "$WORK/out" "split groups counted"
printf 'rank 0 0 0 0\nrank 1 0 0 0\nrank 2 0 0 0\nrank 3 1 0 0\n' >"$D/uneq.txt"
expect_status 0 "groups on unequal nodes" -- "$P" --loads "$TR" --topology "$D/uneq.txt" \
  --slots 4 --groups 2 &&
  expect_grep "warning: 2 groups on 2 nodes cannot be node-limited" "$WORK/err" "unequal warning"
expect_status 0 "node-limited groups" -- "$P" --loads "$TR" --ranks 8 --nodes 2 --slots 3 --groups 4 &&
  expect_grep "split_groups 0" "$WORK/out" "node-limited" &&
  { ! grep -q warning "$WORK/err" || fail "node-limited groups warned"; }
printf 'step,layer,e0,e1\n0,0,5,-3\n' >"$D/neg.csv"
expect_usage "neg.csv:2" "$P" --loads "$D/neg.csv" --ranks 2 --slots 1
printf 'nodes 2\nranks_per_node four\n' >"$D/topo.txt"
expect_usage "topo.txt:2" "$P" --loads "$TR" --topology "$D/topo.txt" --slots 3
expect_usage "steps" "$P" --loads "$TR" --ranks 8 --slots 3 --steps 9:3
expect_usage "not a share policy" "$P" --loads "$TR" --ranks 8 --slots 3 --shares equal
# byte counts are whole numbers; 1e3 is one
expect_usage "^moeplace-place: --expert-bytes: 1.5 is not a whole number of bytes" \
  "$P" --loads "$TR" --ranks 8 --slots 3 --expert-bytes 1.5
expect_usage "^moeplace-place: --budget: 2500.5 is not a whole number of bytes" \
  "$P" --loads "$TR" --ranks 8 --slots 3 --budget 2500.5
expect_status 0 "--expert-bytes 1e3 --budget 3e3" -- "$P" --loads "$TR" --ranks 8 --slots 3 \
  --expert-bytes 1e3 --budget 3e3
printf 'nodes 2\nranks_per_node 4\npackages_per_node 2\ncost other_node 10\n' >"$D/topo2.txt"
expect_status 0 "topology file" -- "$P" --loads "$TR" --topology "$D/topo2.txt" --slots 3
# --topology - reads stdin, as --loads - does; one input at most can
expect_status 0 "--topology -" -- sh -c '"$0" --loads "$1" --topology - --slots 3 <"$2"' \
  "$P" "$TR" "$D/topo2.txt" && expect_grep "ranks 8" "$WORK/out" "topology read from stdin"
expect_usage "^moeplace-place: <stdin>:2: 'ranks_per_node' needs" \
  sh -c '"$0" --loads "$1" --topology - --slots 3 <"$2"' "$P" "$TR" "$D/topo.txt"
expect_usage "^moeplace-place: --loads and --topology both read stdin ('-')" \
  "$P" --loads - --topology - --slots 3
expect_usage "^moeplace-place: --topology and --current both read stdin ('-')" \
  "$P" --loads "$TR" --topology - --slots 3 --current -
finish
