#!/usr/bin/python3
"""Load proportions over training with the state timeline (python3-matplotlib).

  plot_loads.py TRACE PREDICT.json OUT.png [--window 100]

TRACE is a moeplace trace (.csv or .csv.gz); PREDICT.json is the output of
`moeplace-predict --json`, whose "states" give each layer's state changes.
One panel per layer: every expert's load proportion per window of --window
steps; transient spans shaded.
"""
import argparse
import gzip
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def load(path):
    opener = gzip.open if path.endswith(".gz") else open
    rows = []
    with opener(path, "rt") as f:
        header = None
        for line in f:
            if not line.strip() or line.startswith("#"):
                continue
            if header is None:
                header = line
                continue
            rows.append([int(x) for x in line.split(",")])
    a = np.array(rows, dtype=np.int64)
    steps = np.unique(a[:, 0])
    L, E = int(a[:, 1].max()) + 1, a.shape[1] - 2
    c = np.zeros((len(steps), L, E))  # [T][L][E]
    c[np.searchsorted(steps, a[:, 0]), a[:, 1], :] = a[:, 2:]
    return steps, c


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trace")
    ap.add_argument("predict_json")
    ap.add_argument("out")
    ap.add_argument("--window", type=int, default=100)
    args = ap.parse_args()
    steps, c = load(args.trace)
    T, L, E = c.shape
    n = T // args.window
    w = c[: n * args.window].reshape(n, args.window, L, E).sum(axis=1)
    p = w / np.maximum(w.sum(axis=2, keepdims=True), 1)  # [N][L][E]
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
