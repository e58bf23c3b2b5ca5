#!/usr/bin/python3
"""Actual vs predicted load proportions of one layer (docs/RESULTS.md).

Reads the CSV `moeplace-predict --series OUT.csv --series-layer L` writes
(one row per forecast origin and expert: actual proportion of the next H
steps and each predictor's forecast) and, optionally, the tool's --json
output to shade the layer's stable periods. Writes a PNG (matplotlib, Agg).

Usage: scripts/plot_predictions.py SERIES.csv OUT.png [--json RESULT.json]
       [--layer L] [--experts N] [--predictors auto,sw_avg,arima] [--logy]
"""
import argparse
import csv
import json
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("series")
    ap.add_argument("out")
    ap.add_argument("--json")
    ap.add_argument("--layer", type=int, default=0, help="layer of the series (for the title and shading)")
    ap.add_argument("--experts", type=int, default=4, help="plot the N experts with the largest mean share")
    ap.add_argument("--predictors", default="auto,sw_avg,arima")
    ap.add_argument("--logy", action="store_true", help="logarithmic proportion axis (skewed layers)")
    a = ap.parse_args()

    rows = list(csv.DictReader(open(a.series)))
    preds = [p for p in a.predictors.split(",") if p in rows[0]]
    data = defaultdict(lambda: defaultdict(list))  # expert -> column -> values
    for r in rows:
        e = int(r["expert"])
        data[e]["x"].append(int(r["origin_step"]))
        data[e]["actual"].append(float(r["actual"]))
        for p in preds:
            data[e][p].append(float(r[p]))
    mean = {e: sum(v["actual"]) / len(v["actual"]) for e, v in data.items()}
    chosen = sorted(mean, key=mean.get, reverse=True)[: a.experts]

    fig, ax = plt.subplots(figsize=(10, 5.5))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    styles = {"auto": "--", "sw_avg": ":", "arima": "-.", "lstm": (0, (1, 3)), "last": (0, (5, 5))}
    for i, e in enumerate(chosen):
        c = colors[i % len(colors)]
        ax.plot(data[e]["x"], data[e]["actual"], color=c, lw=2.0, label="expert %d actual" % e)
        for p in preds:
            ax.plot(data[e]["x"], data[e][p], color=c, lw=1.0, ls=styles.get(p, "--"),
                    label="expert %d %s" % (e, p) if i == 0 or p == preds[0] else None)
    title = "layer %d: actual vs predicted mean proportion of the next horizon" % a.layer
    if a.json:
        d = json.load(open(a.json))
        title += " (H=%d steps, W=%d)" % (d["horizon"], d["window"])
        changes = next((s["changes"] for s in d["states"] if s["layer"] == a.layer), [])
        start = None
        end = max(data[chosen[0]]["x"])
        for ch in changes + [{"step": end, "state": "end"}]:
            if ch["state"] == "stable":
                start = ch["step"]
            elif start is not None:
                ax.axvspan(start, ch["step"], color="0.9", zorder=0)
                start = None
        ax.plot([], [], color="0.85", lw=8, label="stable state")
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("forecast origin (training step)")
    ax.set_ylabel("load proportion" + (" (log scale)" if a.logy else ""))
    if a.logy:
        ax.set_yscale("log")
    ax.legend(fontsize=7, ncol=2, loc="upper right")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(a.out, dpi=110)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
