#!/bin/sh
# moeplace-predict: bad parameters are clear usage errors (exit 2), and a
# real backtest produces a consistent table and JSON.
. "${top_srcdir:-$(dirname "$0")/..}/tests/lib.sh"
P="$top_builddir/moeplace-predict"
T="$top_srcdir/data/pycode-L4-E16-top2-4k.csv.gz"

expect_status 0 "help" -- "$P" --help && expect_grep "--predictor" "$WORK/out" "help lists options"
expect_status 2 "H not a multiple of W" -- "$P" --trace "$T" --window 10 --horizon 1005 &&
  expect_grep "not a multiple" "$WORK/err" "names the problem"
expect_status 2 "unknown predictor" -- "$P" --trace "$T" --predictor prophet &&
  expect_grep "unknown predictor 'prophet'" "$WORK/err" "names the predictor"
expect_status 2 "k larger than the history" -- "$P" --trace "$T" --horizon 1000 --k 1000 &&
  expect_grep "larger than the history" "$WORK/err" "names k"
expect_status 2 "detector k larger than the history" -- "$P" --trace "$T" --horizon 1000 --min-history 5 \
  --detector-k 400 && expect_grep "detector-k 400 is larger" "$WORK/err" "names detector k"
expect_status 2 "trace too short" -- "$P" --trace "$T" --horizon 4000 &&
  expect_grep "too short for one forecast origin" "$WORK/err" "says why"
expect_status 2 "negative window" -- "$P" --trace "$T" --window -3
# An option the chosen mode would ignore is refused, naming it.
expect_status 2 "series layer without series" -- "$P" --trace "$T" --series-layer 1 &&
  expect_grep "--series-layer needs --series" "$WORK/err" "names the option"
expect_status 2 "bench option without --bench" -- "$P" --trace "$T" --bench-count 3 &&
  expect_grep "--bench-count needs --bench" "$WORK/err" "names the option"
expect_status 2 "--json with --bench" -- "$P" --bench --json "$WORK/b.json" &&
  expect_grep "it takes no --json" "$WORK/err" "names the option"
expect_status 2 "missing trace" -- "$P" --horizon 100
expect_status 1 "unreadable trace" -- "$P" --trace "$WORK/nope.csv"
printf 'step,layer,e0,e1\n0,0,1,x\n' >"$WORK/bad.csv"
expect_status 2 "malformed trace" -- "$P" --trace "$WORK/bad.csv" &&
  expect_grep "bad.csv:2" "$WORK/err" "names file:line"

# A step missing a layer after whole windows were read (the backtest freed
# its series twice on that error: abort instead of a message, found by hand).
{ echo "step,layer,e0,e1"; for s in $(seq 0 24); do echo "$s,0,1,2"; echo "$s,1,2,1"; done
  echo "25,0,1,2"; echo "26,0,1,2"; echo "26,1,2,1"; } >"$WORK/gap.csv"
expect_status 2 "step missing a layer after whole windows" -- "$P" --trace "$WORK/gap.csv" \
  --window 10 --horizon 10 --predictor sw_avg --k 1 --min-history 1 &&
  expect_grep "gap.csv:.*step 25 has 1 of 2 layers" "$WORK/err" "names file, line and step"

expect_status 1 "--json in a missing directory" -- "$P" --trace "$T" --horizon 500 \
  --predictor sw_avg --series "$WORK/never.csv" --json "$WORK/nodir/r.json" &&
  expect_grep "nodir/r.json: cannot create" "$WORK/err" "names the output" &&
  expect_status 1 "... and the series was not written" -- test -e "$WORK/never.csv"

# A real run: sw_avg and last on the bundled cut, JSON and series written.
if expect_status 0 "backtest" -- "$P" --trace "$T" --horizon 500 --predictor sw_avg --k 30 \
    --json "$WORK/r.json" --series "$WORK/s.csv" --series-layer 1; then
  expect_grep "^sw_avg" "$WORK/out" "table row"
  expect_grep "layer 3:" "$WORK/out" "state timeline"
  CHECKS=$((CHECKS + 1))
  "$PYTHON3" - "$WORK/r.json" "$WORK/s.csv" <<'PY' || fail "JSON/series content"
import json, sys, csv
d = json.load(open(sys.argv[1]))
assert d["steps"] == 4000 and d["layers"] == 4 and d["experts"] == 16, d
assert d["window"] == 10 and d["horizon"] == 500 and d["blas_core"], d
p = d["predictors"]
assert set(p) == {"last", "sw_avg"}, p.keys()
for name, v in p.items():
    for k in ("mape", "mae_pp", "mape_transient", "mape_stable", "origins", "forecast_us"):
        assert k in v, (name, k)
    # origins: windows 20 .. 400 - 50
    assert v["origins"] == 400 - 50 - 20 + 1, v["origins"]
# averaging 30 windows beats the last window on this trace
assert p["sw_avg"]["mape"] < p["last"]["mape"], p
assert len(d["states"]) == 4 and all("changes" in s for s in d["states"])
rows = list(csv.DictReader(open(sys.argv[2])))
assert len(rows) == 16 * p["sw_avg"]["origins"], len(rows)
# every forecast in the series is a proportion vector
by = {}
for r in rows:
    by.setdefault(r["origin_step"], []).append(float(r["sw_avg"]))
assert all(abs(sum(v) - 1) < 1e-6 and min(v) >= 0 for v in by.values())
PY
fi
# The benchmark runs (its timings are not checked) and writes its series.
if expect_status 0 "bench" -- "$P" --bench --layers 2 --experts 4 --bench-windows 60 --horizon 100 \
  --bench-series "$WORK/b.csv" --bench-count 3; then
  expect_grep "^arima " "$WORK/out" "bench row"
  expect_grep "^s0,s1,s2$" "$WORK/b.csv" "bench series header"
fi

# A sampled trace (every 2nd step): windows are 10 recorded steps, and the
# reported steps are the trace's own (origin after 20 windows: step 398).
if expect_status 0 "convert" -- "$top_builddir/moeplace-trace" convert --every 2 "$T" "$WORK/e2.csv" &&
  expect_status 0 "sampled trace" -- "$P" --trace "$WORK/e2.csv" --horizon 200 --predictor sw_avg \
    --json "$WORK/e2.json" --series "$WORK/e2s.csv"; then
  expect_grep "sampled every 2 steps" "$WORK/err" "says the trace is sampled"
  expect_grep '"first_origin_step": 398' "$WORK/e2.json" "origin in trace steps"
  expect_grep "^398,798,0," "$WORK/e2s.csv" "series in trace steps"
fi
# --series - writes the series to stdout and leaves stdout open (issue 14,
# item D: the tool's final flush of stdout would fail, exit 1); the series
# has stdout to itself, so the table is left out; a series that cannot be
# written is a write error naming the file and the reason, exit 1.
if expect_status 0 "series on stdout" -- "$P" --trace "$T" --horizon 500 --predictor sw_avg --series -; then
  expect_grep "^origin_step,end_step,expert" "$WORK/out" "series header on stdout"
  CHECKS=$((CHECKS + 1))
  ! grep -q "^sw_avg" "$WORK/out" || fail "the table is mixed into the series on stdout"
fi
if [ -w /dev/full ]; then
  expect_status 1 "series on a full device" -- "$P" --trace "$T" --horizon 500 --predictor sw_avg --series /dev/full &&
    expect_grep "/dev/full: write failed: No space left on device" "$WORK/err" "series write error"
  expect_status 1 "bench series on a full device" -- "$P" --bench --bench-series /dev/full --quiet &&
    expect_grep "/dev/full: write failed: No space left on device" "$WORK/err" "bench series write error"
fi
finish
