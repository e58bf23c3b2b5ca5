#!/bin/sh
# Reproduces the "Prediction" figures of docs/RESULTS.md: backtests of every
# predictor on both recorded traces for H = 1000 and 2000 steps (W = 10),
# the markdown tables, and the plot of one layer.
# Usage (from the build directory): scripts/predict_results.sh [TRACE_DIR [OUT_DIR]]
set -eu
here=$(cd "$(dirname "$0")" && pwd)
traces=${1:-$here/../../shared/traces}
out=${2:-predict-results}
mkdir -p "$out"
for t in pycode-L4-E16-top2 perl-L4-E8-top1; do
  for h in 1000 2000; do
    series=""
    [ "$t" = pycode-L4-E16-top2 ] && [ "$h" = 1000 ] && series="--series $out/series-$t-$h-L1.csv --series-layer 1"
    [ "$t" = perl-L4-E8-top1 ] && [ "$h" = 1000 ] && series="--series $out/series-$t-$h-L3.csv --series-layer 3"
    # shellcheck disable=SC2086
    ./moeplace-predict --trace "$traces/$t.csv.gz" --window 10 --horizon "$h" --predictor all \
      --json "$out/$t-$h.json" $series >"$out/$t-$h.txt"
  done
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
for t in ("pycode-L4-E16-top2", "perl-L4-E8-top1"):
    for h in (1000, 2000):
        d = json.load(open(os.path.join(out, "%s-%d.json" % (t, h))))
        p = d["predictors"]
        print("\n**%s, W = %d, H = %d** (%d origins)\n" % (t, d["window"], h, p["last"]["origins"]))
        print("| predictor | mape % | mape transient % | mape stable % | mae_pp | mae_pp transient | mae_pp stable | forecast_us | observe_us |")
        print("|---|---|---|---|---|---|---|---|---|")
        best = min(v["mape"] for k, v in p.items() if k not in ("last", "auto"))
        f = lambda x: "-" if x is None else "%.3f" % x
        for k, v in p.items():
            name = "**%s**" % k if v["mape"] <= min(w["mape"] for w in p.values()) else k
            print("| %s | %s | %s | %s | %.4f | %s | %s | %.0f | %.0f |" % (name, f(v["mape"]), f(v["mape_transient"]),
                  f(v["mape_stable"]), v["mae_pp"], f(v["mae_pp_transient"]), f(v["mae_pp_stable"]),
                  v["forecast_us"], v["observe_us"]))
        print("\nauto vs best single predictor: %+.1f%% mape" % (100 * (p["auto"]["mape"] / best - 1)))
        if h == 1000:
            print("\nState changes (step:state; every layer starts transient):\n")
            for s in d["states"]:
                ch = ", ".join("%d %s" % (c["step"], c["state"]) for c in s["changes"]) or "none (transient throughout)"
                print("- layer %d: %s" % (s["layer"], ch))
PY
# Robustness: other windows and shorter traces (defaults otherwise).
for t in pycode-L4-E16-top2 perl-L4-E8-top1; do
  ./moeplace-predict --quiet --trace "$traces/$t.csv.gz" --window 20 --horizon 1000 --json "$out/$t-W20-1000.json"
  ./moeplace-predict --quiet --trace "$here/../data/${t}-4k.csv.gz" --window 10 --horizon 500 --json "$out/$t-4k-500.json"
done
/usr/bin/python3 - "$out" <<'PY'
import json, sys, os
out = sys.argv[1]
print("\n| run | last | sw_avg | arima | lstm | auto | auto vs best single |")
print("|---|---|---|---|---|---|---|")
for t in ("pycode-L4-E16-top2", "perl-L4-E8-top1"):
    for tag, what in (("W20-1000", "W = 20, H = 1000"), ("4k-500", "first 4000 steps, W = 10, H = 500")):
        p = json.load(open(os.path.join(out, "%s-%s.json" % (t, tag))))["predictors"]
        best = min(v["mape"] for k, v in p.items() if k not in ("last", "auto"))
        print("| %s, %s | %s | %+.1f%% |" % (t, what, " | ".join("%.2f" % p[k]["mape"] for k in
              ("last", "sw_avg", "arima", "lstm", "auto")), 100 * (p["auto"]["mape"] / best - 1)))
PY
/usr/bin/python3 "$here/plot_predictions.py" "$out/series-pycode-L4-E16-top2-1000-L1.csv" \
  "$out/predict-pycode-L1-H1000.png" --json "$out/pycode-L4-E16-top2-1000.json" --layer 1 --experts 4
/usr/bin/python3 "$here/plot_predictions.py" "$out/series-perl-L4-E8-top1-1000-L3.csv" \
  "$out/predict-perl-L3-H1000.png" --json "$out/perl-L4-E8-top1-1000.json" --layer 3 --experts 8 \
  --predictors auto,arima --logy
