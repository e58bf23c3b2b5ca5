#!/bin/sh
# moeplace-trace end to end: malformed traces are rejected with exit 2 and a
# FILE:LINE: message, real traces are accepted, stats JSON is complete, and
# convert never leaves a half-written file.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
TRACE="$top_builddir/moeplace-trace"
DATA="$top_srcdir/data/pycode-L4-E16-top2-4k.csv.gz"

# --- malformed inputs: NAME|CONTENT (printf format)|LINE|REASON -------------
while IFS='|' read -r name content line reason; do
  [ -n "$name" ] || continue
  f="$WORK/$name.csv"
  printf "$content" >"$f"
  if expect_status 2 "validate $name" -- "$TRACE" validate "$f"; then
    expect_grep "^moeplace-trace: $f:$line: $reason" "$WORK/err" "validate $name"
  fi
done <<'CASES'
empty||0|empty trace
header-only|step,layer,e0,e1\n|1|trace has a header but no data rows
no-header|0,0,1,2\n|1|header must start
misnamed-header|step,layer,e0,e2\n0,0,1,1\n|1|header column 4 should be 'e1'
too-few|step,layer,e0,e1\n0,0,1\n|2|expected 2 expert counts, found 1
too-many|step,layer,e0,e1\n0,0,1,2,3\n|2|expected 2 expert counts, found 3
non-numeric|step,layer,e0,e1\n0,0,1,abc\n|2|count for e1 is not a non-negative integer
negative|step,layer,e0,e1\n0,0,-1,2\n|2|count for e0 is negative
nan|step,layer,e0,e1\n0,0,nan,2\n|2|count for e0 is not a non-negative integer: 'nan'
inf|step,layer,e0,e1\n0,0,1,inf\n|2|count for e1 is not a non-negative integer: 'inf'
overflow|step,layer,e0\n0,0,99999999999999999999\n|2|count for e0 overflows 64 bits
layer-range|step,layer,e0\n0,0,1\n0,1,1\n1,0,1\n1,5,1\n|5|layer 5 out of range
layer-repeat|step,layer,e0\n0,0,1\n0,1,1\n1,1,1\n1,1,2\n|5|layer 1 appears twice in step 1
backwards|step,layer,e0\n7,0,1\n8,0,1\n3,0,1\n|4|step 3 goes backwards after step 8
missing-layer|step,layer,e0\n0,0,1\n0,1,1\n1,0,1\n|4|step 1 has 1 of 2 layers
u64-row|step,layer,e0,e1\n0,0,18446744073709551615,1\n|2|step 0: layer 0: token totals exceed 2^63 - 1
u64-one|step,layer,e0,e1\n0,0,0,0\n1,0,18446744073709551615,0\n|3|step 1: layer 0: token totals exceed 2^63 - 1
i64-all|step,layer,e0,e1\n0,0,9223372036854775807,9223372036854775807\n0,1,9223372036854775807,9223372036854775807\n|2|step 0: layer 0: token totals exceed 2^63 - 1
i64-steps|step,layer,e0\n0,0,9223372036854775807\n1,0,9223372036854775807\n2,0,9223372036854775807\n|3|step 1: layer 0: token totals exceed 2^63 - 1
CASES
# validate refuses the sums stats refuses, with the same message (one check,
# common/trace_stats.h: a trace validate accepts is one every tool reads).
for name in u64-row u64-one i64-all i64-steps; do
  expect_status 2 "stats $name" -- "$TRACE" stats --window 1 "$WORK/$name.csv" &&
    "$TRACE" validate "$WORK/$name.csv" 2>"$WORK/err.validate" >/dev/null
  CHECKS=$((CHECKS + 1))
  cmp -s "$WORK/err" "$WORK/err.validate" || fail "validate and stats differ on $name: $(cat "$WORK/err.validate")"
done
# An expert's sum over the trace past 2^64 - 1 (the token totals are checked
# after it, so this is the message both give).
printf 'step,layer,e0,e1\n0,0,1,0\n1,0,18446744073709551615,0\n' >"$WORK/u64-trace.csv"
expect_status 2 "validate u64-trace" -- "$TRACE" validate "$WORK/u64-trace.csv" &&
  expect_grep "u64-trace.csv:3: step 1: layer 0 expert e0: counts summed over the trace exceed 2^64 - 1" \
    "$WORK/err" "validate u64-trace"
# The largest sums that fit are valid.
printf 'step,layer,e0,e1\n0,0,9223372036854775806,0\n1,0,1,0\n' >"$WORK/i64-max.csv"
expect_status 0 "validate i64-max" -- "$TRACE" validate "$WORK/i64-max.csv"
expect_status 0 "stats i64-max" -- "$TRACE" stats --window 1 "$WORK/i64-max.csv" &&
  expect_grep "^tokens     9223372036854775807" "$WORK/out" "stats i64-max"

# Binary garbage, an overlong line, a truncated gzip file.
head -c 4096 /dev/urandom >"$WORK/garbage.bin" 2>/dev/null
printf 'step,layer,e0\n0,0,\001\002\003\n' >"$WORK/ctrl.csv"
expect_status 2 "control bytes" -- "$TRACE" validate "$WORK/ctrl.csv" &&
  expect_grep "ctrl.csv:2: count for e0 is not" "$WORK/err" "control bytes"
expect_status 2 "binary garbage" -- "$TRACE" validate "$WORK/garbage.bin" &&
  expect_grep "garbage.bin:[0-9]*: " "$WORK/err" "binary garbage"
{ printf 'step,layer,e0\n0,0,'; head -c 2000000 /dev/zero | tr '\0' '1'; printf '\n'; } >"$WORK/long.csv"
expect_status 2 "overlong line" -- "$TRACE" validate "$WORK/long.csv" &&
  expect_grep "long.csv:2: line longer than" "$WORK/err" "overlong line"
head -c 100000 "$DATA" >"$WORK/truncated.csv.gz"
expect_status 2 "truncated gzip" -- "$TRACE" validate "$WORK/truncated.csv.gz" &&
  expect_grep "truncated.csv.gz:[0-9]*: " "$WORK/err" "truncated gzip"
expect_status 1 "missing file" -- "$TRACE" validate "$WORK/nonexistent.csv" &&
  expect_grep "nonexistent.csv: cannot open" "$WORK/err" "missing file"

# --- real traces are accepted ---------------------------------------------
expect_status 0 "validate bundled" -- "$TRACE" validate "$DATA" &&
  expect_grep "valid: 4000 steps (0..3999), 4 layers, 16 experts" "$WORK/out" "validate bundled"
expect_status 0 "validate stdin" -- sh -c "gzip -dc '$DATA' | '$TRACE' validate -" &&
  expect_grep "<stdin>: valid: 4000 steps" "$WORK/out" "validate stdin"
for t in "$top_srcdir"/../shared/traces/*.csv.gz; do
  [ -f "$t" ] || continue
  expect_status 0 "validate $(basename "$t")" -- "$TRACE" validate "$t" &&
    expect_grep "valid: 8000 steps" "$WORK/out" "validate $(basename "$t")"
done

# --- stats ----------------------------------------------------------------
expect_status 0 "stats --json" -- "$TRACE" stats --window 10 --json "$WORK/stats.json" "$DATA"
expect_grep "^layers     4" "$WORK/out" "stats table"
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK/stats.json" <<'PY' || fail "stats JSON content"
import json, sys
d = json.load(open(sys.argv[1]))
assert (d["steps"], d["layers"], d["experts"], d["window"]) == (4000, 4, 16, 10), d
assert d["tokens"] == 4000 * 4 * 2048, d["tokens"]
assert len(d["per_layer"]) == 4
for l in d["per_layer"]:
    assert abs(sum(l["proportions"]) - 1) < 1e-12
    assert len(l["window_variance_max"]) == 400 - 10 + 1
PY
expect_status 2 "stats bad window" -- "$TRACE" stats --window 0 "$DATA" &&
  expect_grep "window: 0 is out of range" "$WORK/err" "stats bad window"
expect_status 2 "stats bad number" -- "$TRACE" stats --window 1x "$DATA" &&
  expect_grep "'1x' is not an integer" "$WORK/err" "stats bad number"
expect_status 1 "stats json unwritable" -- "$TRACE" stats --json /nonexistent-dir/s.json "$DATA"
# A k larger than the trace's windows costs the windows it has: 3 windows of
# 65536 experts with --k 2^20 (the old ring of k windows: 512 GB). Under 2 GB
# of address space without a sanitizer (ASan reserves terabytes and refuses
# the old allocation itself).
"$PYTHON3" -c '
import sys
E = 65536
with open(sys.argv[1], "w") as f:
    f.write("step,layer," + ",".join("e%d" % e for e in range(E)) + "\n")
    for s in range(3):
        f.write("%d,0," % s + ",".join(str((s + e) % 7) for e in range(E)) + "\n")
' "$WORK/wide64k.csv"
CHECKS=$((CHECKS + 1))
(ulimit -v 2097152 && exec "$TRACE" stats --window 1 --k 1048576 --json "$WORK/wide.json" \
  "$WORK/wide64k.csv") >"$WORK/out" 2>"$WORK/err"
st=$?
if grep -q "Sanitizer" "$WORK/err"; then
  "$TRACE" stats --window 1 --k 1048576 --json "$WORK/wide.json" "$WORK/wide64k.csv" \
    >"$WORK/out" 2>"$WORK/err"
  st=$?
fi
[ "$st" -eq 0 ] || { fail "stats --k 1048576 on 65536 experts: exit status $st"; cat "$WORK/err" >&2; }
expect_grep "3 complete windows of 1 steps; detector figures over the last k=1048576" "$WORK/out" \
  "stats --k past the trace's windows"
# k <= windows: the ring wraps; the figures are those of the last k windows
# (the state detector's), whatever the order of the ring's slots.
expect_status 0 "stats --k 3 --window 7" -- "$TRACE" stats --window 7 --k 3 --json "$WORK/k3.json" "$DATA"
CHECKS=$((CHECKS + 1))
"$PYTHON3" - "$WORK/k3.json" "$DATA" <<'PY' || fail "stats figures of the last k windows"
import csv, gzip, json, sys
d = json.load(open(sys.argv[1]))
rows = [r for r in csv.reader(l for l in gzip.open(sys.argv[2], "rt") if not l.startswith("#"))][1:]
L, E, W, K = 4, 16, 7, 3
win = {}  # (window, layer) -> counts
for r in rows:
    w = int(r[0]) // W
    c = win.setdefault((w, int(r[1])), [0] * E)
    for e in range(E): c[e] += int(r[2 + e])
n = 4000 // W
assert d["windows"] == n and len(d["per_layer"][0]["window_variance_max"]) == n - K + 1
for l in range(L):
    q = [[x / sum(win[(w, l)]) for x in win[(w, l)]] for w in range(n)]
    for i in (0, 1, n // 2, n - K):
        span = q[i:i + K]
        var = max(sum((s[e] - sum(t[e] for t in span) / K) ** 2 for s in span) / K for e in range(E))
        rng = max(max(s[e] for s in span) - min(s[e] for s in span) for e in range(E))
        assert abs(d["per_layer"][l]["window_variance_max"][i] - var) < 1e-12, (l, i)
        assert abs(d["per_layer"][l]["window_range_max"][i] - rng) < 1e-12, (l, i)
PY

# --- convert --------------------------------------------------------------
expect_status 0 "convert every 4" -- "$TRACE" convert --every 4 --layers 1,3 "$DATA" "$WORK/sampled.csv.gz"
expect_status 0 "validate converted" -- "$TRACE" validate "$WORK/sampled.csv.gz" &&
  expect_grep "valid: 1000 steps (0..3996), 2 layers, 16 experts" "$WORK/out" "validate converted"
expect_grep "sampled every 4 steps" "$WORK/err" "gap note"
# layer 3 of the input is layer 1 of the output, same counts
CHECKS=$((CHECKS + 1))
a=$(gzip -dc "$DATA" | grep '^4,3,' | cut -d, -f3-)
b=$(gzip -dc "$WORK/sampled.csv.gz" | grep '^4,1,' | cut -d, -f3-)
[ -n "$a" ] && [ "$a" = "$b" ] || fail "convert --layers keeps counts ($a vs $b)"
gzip -dc "$WORK/sampled.csv.gz" | head -3 >"$WORK/head"
expect_grep "^# model: byte-level GPT" "$WORK/head" "metadata copied"
expect_status 0 "convert steps" -- "$TRACE" convert --steps 100:200 "$DATA" "$WORK/range.csv"
expect_status 0 "validate range" -- "$TRACE" validate "$WORK/range.csv" &&
  expect_grep "valid: 100 steps (100..199)" "$WORK/out" "convert --steps"
# A failing convert leaves no output and no temporary file behind.
cp "$WORK/range.csv" "$WORK/keep.csv"
expect_status 2 "convert malformed" -- "$TRACE" convert "$WORK/backwards.csv" "$WORK/keep.csv"
CHECKS=$((CHECKS + 1))
cmp -s "$WORK/range.csv" "$WORK/keep.csv" || fail "failed convert changed its output"
CHECKS=$((CHECKS + 1))
[ -z "$(ls "$WORK" | grep '\.tmp\.')" ] || fail "temporary file left behind: $(ls "$WORK" | grep '\.tmp\.')"
expect_status 2 "convert empty selection" -- "$TRACE" convert --steps 90000: "$DATA" "$WORK/none.csv"
CHECKS=$((CHECKS + 1))
[ ! -e "$WORK/none.csv" ] || fail "empty selection wrote a file"
expect_status 2 "convert bad layers" -- "$TRACE" convert --layers 0,9 "$DATA" "$WORK/x.csv" &&
  expect_grep "not a comma-separated list of layers in 0..3" "$WORK/err" "bad layers"

# --- help and usage -------------------------------------------------------
for cmd in "" validate stats convert; do
  expect_status 0 "help $cmd" -- "$TRACE" $cmd --help && expect_grep "Usage: moeplace-trace" "$WORK/out" "help $cmd"
done
expect_status 2 "unknown command" -- "$TRACE" frobnicate
expect_status 2 "no arguments" -- "$TRACE"

finish
