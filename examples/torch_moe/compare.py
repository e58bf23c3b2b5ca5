"""Compares two runs of train.py by their --json files:

    compare.py OFF.json ON.json [--tol 1e-4] [--need-moves] [--saved-placement DIR/latest.json]

The losses of every step both runs made must agree to --tol relative (a
resumed run is compared from its first step on); prints the largest
relative difference, the step-time ratio B/A, and B's rebalances and moves.
--need-moves: B must have rebalanced with moves at least once.
--saved-placement: B's placement at start must equal the checkpoint's.
--same-decisions: B must have rebalanced at the same steps with the same
moves and end on the same placement as A (a resumed run against an
uninterrupted one).
Exit status 1 when a check fails."""

import argparse
import json
import sys

import numpy as np


def main(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("a")
    p.add_argument("b")
    p.add_argument("--tol", type=float, default=1e-4)
    p.add_argument("--need-moves", action="store_true")
    p.add_argument("--saved-placement", metavar="LATEST_JSON")
    p.add_argument("--same-decisions", action="store_true")
    args = p.parse_args(argv)
    a, b = (json.load(open(f)) for f in (args.a, args.b))
    first = max(a["first_step"], b["first_step"])
    la = np.array(a["losses"][first - 1:])     # losses[i] is step i + 1
    lb = np.array(b["losses"][first - 1:])
    n = min(la.size, lb.size)
    fails = []
    if n == 0:
        fails.append("no common step")
    la, lb = la[:n], lb[:n]
    rel = np.abs(la - lb) / np.maximum(np.abs(la), 1e-30)
    worst = float(rel.max()) if n else float("nan")
    print("steps %d..%d: max relative loss difference %.3g (%d of %d bit-identical)"
          % (first, first + n - 1, worst, int(np.sum(la == lb)), n))
    if n and worst > args.tol:
        fails.append("step %d: losses %r and %r differ by %.3g > %g relative"
                     % (first + int(rel.argmax()), la[rel.argmax()], lb[rel.argmax()], worst,
                        args.tol))
    print("step_ms %.2f vs %.2f: ratio %.3f; token imbalance %.3f vs %.3f"
          % (a["step_ms"], b["step_ms"], b["step_ms"] / a["step_ms"], a["token_imbalance"],
             b["token_imbalance"]))
    print("rebalances %d (at steps %s), moves %d, bytes moved %d"
          % (b["rebalances"], b["rebalance_steps"], b["moves"], b["bytes_moved"]))
    if args.need_moves and not (b["rebalances"] >= 1 and b["moves"] >= 1):
        fails.append("no rebalance with moves in %s" % args.b)
    if args.saved_placement:
        saved = json.load(open(args.saved_placement))
        same = saved["phy2log"] == b["placement_start"] and saved["share"] == b["share_start"]
        print("placement after restart %s the one saved at step %d"
              % ("equals" if same else "DIFFERS FROM", saved["step"]))
        if not same:
            fails.append("restored placement differs from %s" % args.saved_placement)
    if args.same_decisions:
        same = (a["rebalance_steps"], a["moves"], a["placement_end"]) == \
            (b["rebalance_steps"], b["moves"], b["placement_end"])
        print("rebalance steps, moves and final placement %s" % ("equal" if same else "DIFFER"))
        if not same:
            fails.append("%s rebalanced at %s (%d moves), %s at %s (%d moves)"
                         % (args.a, a["rebalance_steps"], a["moves"], args.b,
                            b["rebalance_steps"], b["moves"]))
    for f in fails:
        print("compare.py: FAIL: " + f, file=sys.stderr)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
