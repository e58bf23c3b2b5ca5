#!/usr/bin/python3
"""Plots of a moeplace-replay run (Debian python3-matplotlib, PNG).

  plot_replay.py REPLAY.json TIMELINE.csv OUTDIR

writes OUTDIR/replay-imbalance.png (per-step imbalance of every policy,
smoothed over 100 steps, rebalance points marked) and
OUTDIR/replay-migration.png (bytes moved per rebalance, per policy, with the
cross-node part hatched).
"""
import csv
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

COLORS = {"static": "tab:gray", "moving_average": "tab:orange", "moeplace": "tab:blue", "oracle": "tab:green"}


def smooth(values, width):
    out, acc = [], 0.0
    for i, v in enumerate(values):
        acc += v
        if i >= width:
            acc -= values[i - width]
        out.append(acc / min(i + 1, width))
    return out


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    report, timeline, outdir = sys.argv[1:]
    os.makedirs(outdir, exist_ok=True)
    d = json.load(open(report))
    rows = list(csv.DictReader(open(timeline)))
    steps = [int(r["step"]) for r in rows]
    shape = "%s: %d ranks x %d slots, %d node(s), interval %d" % (
        os.path.basename(d["trace"]), d["ranks"], d["slots"], d["nodes"], d["interval"])

    fig, ax = plt.subplots(figsize=(10, 4.5))
    for name, p in d["policies"].items():
        if name not in rows[0]:
            continue
        ys = smooth([float(r[name]) for r in rows], 100)
        ax.plot(steps, ys, color=COLORS.get(name), lw=1.3,
                label="%s (mean %.3f)" % (name, p["imbalance"]))
    for x in range(d["interval"], d["steps"], d["interval"]):
        ax.axvline(x, color="k", alpha=0.08, lw=0.8)
    ax.set_xlabel("training step")
    ax.set_ylabel("imbalance (max / mean rank load), 100-step mean")
    ax.set_title("Imbalance per policy - " + shape, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "replay-imbalance.png"), dpi=110)

    fig, ax = plt.subplots(figsize=(10, 4))
    names = [n for n in d["policies"] if n != "static"]
    width = 0.8 * d["interval"] / max(1, len(names))
    for k, name in enumerate(names):
        log = d["policies"][name]["decision_log"]
        xs = [x["step"] + (k - len(names) / 2) * width for x in log]
        gb = [x["bytes_moved"] / 1e9 for x in log]
        cross = [x["cross_node_bytes"] / 1e9 for x in log]
        ax.bar(xs, gb, width=width, color=COLORS.get(name), align="edge",
               label="%s (%.1f GB in all)" % (name, d["policies"][name]["bytes_moved"] / 1e9))
        ax.bar(xs, cross, width=width, color="none", edgecolor="k", hatch="///", lw=0, align="edge")
    ax.set_xlabel("training step of the rebalance")
    ax.set_ylabel("GB moved (hatched: across nodes)")
    ax.set_title("Migration per rebalance - " + shape, fontsize=10)
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    fig.savefig(os.path.join(outdir, "replay-migration.png"), dpi=110)


if __name__ == "__main__":
    main()
