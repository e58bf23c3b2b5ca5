#!/usr/bin/python3
"""How much of a step's imbalance is step-to-step noise: for every interval
of a trace, EPLB's placement of that interval's own mean loads
(scripts/eplb_reference.py, equal splits), scored on those mean loads, on
its 10-step windows and on its steps (metrics.md's imbalance, averaged).

usage: scripts/step_noise.py TRACE RANKS SLOTS [--interval 500]
(docs/PLACEMENT.md, "Load samples")."""

import argparse
import gzip
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eplb_reference  # noqa: E402


def load(path):
    """Token counts [steps][layers][experts] of a trace (trace-format.md)."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt") as f:
        rows = [l for l in f if l.strip() and not l.startswith("#") and not l.startswith("step")]
    a = np.array([[float(x) for x in l.split(",")] for l in rows])
    layers = int(a[:, 1].max()) + 1
    return a[:, 2:].reshape(len(a) // layers, layers, -1)


def imbalance(w, phy2log, ranks, slots):
    """metrics.md's imbalance of loads w [..., L, E] under equal splits."""
    cnt = np.stack([np.bincount(p, minlength=w.shape[-1]) for p in phy2log])  # [L][E]
    share = w / np.maximum(cnt, 1)  # [..., L, E] per replica
    idx = phy2log.reshape(len(phy2log), ranks, slots)  # [L][R][S]
    rank = np.stack([share[..., l, idx[l]].sum(-1) for l in range(len(phy2log))], -2)
    return rank.max(-1).sum(-1) / rank.mean(-1).sum(-1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("trace")
    ap.add_argument("ranks", type=int)
    ap.add_argument("slots", type=int)
    ap.add_argument("--interval", type=int, default=500)
    ap.add_argument("--window", type=int, default=10)
    a = ap.parse_args()
    w = load(a.trace)
    n = len(w) // a.interval
    got = np.zeros((n, 3))
    for k in range(n):
        block = w[k * a.interval:(k + 1) * a.interval]  # [I][L][E]
        mean = block.mean(0)
        ph, _ = eplb_reference.rebalance(mean, a.ranks * a.slots, 1, 1, a.ranks)
        ph = np.asarray(ph)
        win = block.reshape(-1, a.window, *block.shape[1:]).sum(1)
        got[k] = (imbalance(mean, ph, a.ranks, a.slots),
                  imbalance(win, ph, a.ranks, a.slots).mean(),
                  imbalance(block, ph, a.ranks, a.slots).mean())
    print("%s %dx%d, %d intervals: imbalance on the mean loads %.4f (%.4f-%.4f), "
          "on %d-step windows %.4f, on steps %.4f (%.4f-%.4f)" % (
              os.path.basename(a.trace), a.ranks, a.slots, n, got[:, 0].mean(), got[:, 0].min(),
              got[:, 0].max(), a.window, got[:, 1].mean(), got[:, 2].mean(), got[:, 2].min(),
              got[:, 2].max()))


if __name__ == "__main__":
    main()
