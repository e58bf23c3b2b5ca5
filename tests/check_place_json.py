#!/usr/bin/env python3
"""Independent checker of a moeplace-place JSON (numpy, no moeplace code).

  check_place_json.py PLACEMENT.json TRACE.csv[.gz] STEP_A STEP_B
                      [--current CURRENT.json --expert-bytes B]

Recomputes from the trace's steps A <= step < B, for the share policy the
JSON names ("shares": weighted or even):
  - validity: every expert has a replica, no rank holds two replicas of one
    expert, empty slots have share 0, shares in [0, 1] summing to 1 per
    expert, logcnt = the replica counts; with even shares every share is
    exactly 1 / its expert's count;
  - imbalance (docs/metrics.md) under the JSON's shares;
  - lower_bound (per layer max(mean, min over replica counts of max w/c),
    here by bisection on T, an algorithm the library does not use) and gap;
  - with --current: moves and bytes_moved (a move is a (layer, expert, rank)
    the new placement has and the current one has not), and
    current_imbalance: the current assignment with equal shares (even) or
    with its optimal shares (weighted: by Hall's condition, the max over rank
    subsets A of the load of experts held only inside A over |A|).
Exits 1 with the first discrepancy, 0 with a summary line."""
import gzip
import json
import sys

import numpy as np


def read_loads(path, a, b):
    op = gzip.open if path.endswith(".gz") else open
    tot = None
    with op(path, "rt") as f:
        for line in f:
            if line.startswith("#") or line.startswith("step") or not line.strip():
                continue
            fld = line.rstrip("\n").split(",")
            step, layer = int(fld[0]), int(fld[1])
            if step < a or step >= b:
                continue
            row = np.array([float(x) for x in fld[2:]])
            if tot is None:
                tot = {}
            tot[layer] = tot.get(layer, 0) + row
    layers = max(tot) + 1
    return np.array([tot[l] for l in range(layers)])


def check(cond, what):
    if not cond:
        print("check_place_json: FAIL:", what)
        sys.exit(1)


def validate(d, even):
    R, S, E = d["ranks"], d["slots"], d["experts"]
    for lay in d["placement"]:
        ph = np.array(lay["phy2log"])
        sh = np.array(lay["share"])
        l = lay["layer"]
        check(ph.shape == (R * S,) and sh.shape == (R * S,), f"layer {l}: array lengths")
        check(((ph >= -1) & (ph < E)).all(), f"layer {l}: expert out of range")
        check((sh[ph < 0] == 0).all(), f"layer {l}: an empty slot has a share")
        cnt = np.bincount(ph[ph >= 0], minlength=E)
        check((cnt >= 1).all(), f"layer {l}: expert {np.argmin(cnt)} has no replica")
        check((cnt == np.array(lay["logcnt"])).all(), f"layer {l}: logcnt differs from phy2log")
        for r in range(R):
            ex = ph[r * S:(r + 1) * S]
            ex = ex[ex >= 0]
            check(len(ex) == len(set(ex.tolist())), f"layer {l}: rank {r} holds an expert twice")
        used = ph >= 0
        check(((sh[used] >= 0) & (sh[used] <= 1)).all(), f"layer {l}: share outside [0, 1]")
        sums = np.bincount(ph[used], weights=sh[used], minlength=E)
        check(np.abs(sums - 1).max() < 1e-9, f"layer {l}: shares do not sum to 1")
        if even:
            check((sh[used] == 1.0 / cnt[ph[used]]).all(),
                  f"layer {l}: a share is not exactly 1 / replica count")


def rank_loads(ph, sh, w, R, S):
    x = np.where(ph >= 0, sh * w[np.maximum(ph, 0)], 0.0)
    return x.reshape(R, S).sum(1)


def imbalance_of(placement, loads, R, S, shares_of):
    num = den = 0.0
    for lay in placement:
        l = lay["layer"]
        ph = np.array(lay["phy2log"])
        num += rank_loads(ph, shares_of(lay, ph), loads[l], R, S).max()
        den += loads[l].sum() / R
    return num / den if den > 0 else 1.0


def bound(loads, R, S):
    lb = den = 0.0
    for w in loads:
        lo, hi = 0.0, max(w.max(), 1e-300)
        for _ in range(200):  # smallest T with sum ceil(w / T) <= R S, each <= R
            mid = (lo + hi) / 2
            need = np.maximum(1, np.ceil(w / mid))
            if need.sum() <= R * S and (need <= R).all():
                hi = mid
            else:
                lo = mid
        lb += max(w.sum() / R, hi)
        den += w.sum() / R
    return lb / den if den > 0 else 1.0


def hall_max(ph, w, R, S):
    """Optimal max rank load of the assignment ph with free shares."""
    masks = {}
    for p, e in enumerate(ph):
        if e >= 0:
            masks[e] = masks.get(e, 0) | (1 << (p // S))
    best = 0.0
    for A in range(1, 1 << R):
        s = sum(w[e] for e, m in masks.items() if m & ~A == 0)
        best = max(best, s / bin(A).count("1"))
    return best


def main(argv):
    args = argv[1:]
    cur_path, xb = None, 1.0
    if "--current" in args:
        i = args.index("--current")
        cur_path = args[i + 1]
        del args[i:i + 2]
    if "--expert-bytes" in args:
        i = args.index("--expert-bytes")
        xb = float(args[i + 1])
        del args[i:i + 2]
    d = json.load(open(args[0]))
    loads = read_loads(args[1], int(args[2]), int(args[3]))
    R, S = d["ranks"], d["slots"]
    even = d["shares"] == "even"
    check(d["shares"] in ("even", "weighted"), "unknown share policy")
    check(loads.shape == (d["layers"], d["experts"]), "trace shape differs from the JSON")
    validate(d, even)
    imb = imbalance_of(d["placement"], loads, R, S, lambda lay, ph: np.array(lay["share"]))
    check(abs(imb - d["imbalance"]) < 1e-9, f"imbalance {imb} vs JSON {d['imbalance']}")
    lb = bound(loads, R, S)
    check(abs(lb - d["lower_bound"]) < 1e-6, f"lower_bound {lb} vs JSON {d['lower_bound']}")
    check(lb <= imb + 1e-9, "lower bound above the imbalance")
    gap = (imb - lb) / lb
    check(abs(gap - d["gap"]) < 1e-6, f"gap {gap} vs JSON {d['gap']}")
    extra = ""
    if cur_path:
        c = json.load(open(cur_path))
        moves = 0
        for a, b in zip(c["placement"], d["placement"]):
            for r in range(R):
                old = set(a["phy2log"][r * S:(r + 1) * S]) - {-1}
                new = set(b["phy2log"][r * S:(r + 1) * S]) - {-1}
                moves += len(new - old)
        check(moves == d["moves"], f"moves {moves} vs JSON {d['moves']}")
        check(abs(moves * xb - d["bytes_moved"]) < 1e-6, "bytes_moved")
        if even:
            def equal(lay, ph):
                cnt = np.bincount(ph[ph >= 0], minlength=d["experts"])
                return np.where(ph >= 0, 1.0 / cnt[np.maximum(ph, 0)], 0.0)
            ci = imbalance_of(c["placement"], loads, R, S, equal)
        else:
            num = sum(hall_max(np.array(a["phy2log"]), loads[a["layer"]], R, S)
                      for a in c["placement"])
            ci = num / (loads.sum() / R)
        check(abs(ci - d["current_imbalance"]) < 1e-5 * ci,
              f"current_imbalance {ci} vs JSON {d['current_imbalance']}")
        check(d["imbalance"] <= ci + 1e-6, "the result is worse than keeping the current one")
        extra = f" moves {moves} current_imbalance {ci:.6f}"
    print(f"check_place_json: {args[0]}: shares {d['shares']} imbalance {imb:.6f} "
          f"lower_bound {lb:.6f} valid{extra}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
