#!/usr/bin/python3
"""Load proportions over training with the state timeline (python3-matplotlib).

  plot_loads.py TRACE PREDICT.json OUT.png [--window 100]

TRACE is a moeplace trace (.csv or .csv.gz); PREDICT.json is the output of
`moeplace-predict --json`, whose "states" give each layer's state changes.
One panel per layer: every expert's load proportion per window of --window
steps; transient spans shaded.
"""
import argparse
import json
import os
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from trace_csv import load_counts, window_proportions  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("predict_json")
    ap.add_argument("out")
    ap.add_argument("--window", type=int, default=100)
    args = ap.parse_args()
    steps, c = load_counts(args.trace)
    T, L, E = c.shape
    p = window_proportions(c, args.window)  # [N][L][E]
    n = p.shape[0]
    x = steps[: n * args.window : args.window] + args.window / 2
    states = {s["layer"]: s["changes"] for s in json.load(open(args.predict_json)).get("states", [])}
    fig, axes = plt.subplots(L, 1, figsize=(10, 2.2 * L), sharex=True)
    axes = np.atleast_1d(axes)
    for l, ax in enumerate(axes):
        ax.plot(x, p[:, l, :], lw=0.8)
        # shade transient spans: a layer starts transient
        start, state = steps[0], "transient"
        for ch in states.get(l, []) + [{"step": int(steps[-1]), "state": "end"}]:
            if state == "transient":
                ax.axvspan(start, ch["step"], color="tab:red", alpha=0.08, lw=0)
            start, state = ch["step"], ch["state"]
        ax.set_ylabel("layer %d" % l)
        ax.grid(alpha=0.3)
    axes[0].set_title("Expert load proportions per %d-step window (shaded: transient state)" % args.window, fontsize=10)
    axes[-1].set_xlabel("training step")
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)


if __name__ == "__main__":
    main()
