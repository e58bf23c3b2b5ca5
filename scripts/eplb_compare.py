#!/usr/bin/env python3
"""moeplace --shares even against EPLB, scored the way EPLB-style routers
route: an expert's tokens split equally among its replicas (a GPU holding
two replicas of one expert, which EPLB allows, gets two parts).

  eplb_compare.py cases [--eplb-dir DIR]
      The inputs of the EPLB tests of DeepSeek's EPLB README and of vLLM's
      tests/distributed/test_eplb_algo.py, re-created below as our own data
      (weights and shapes only), one line per case and EPLB policy.
  eplb_compare.py random N [--seed S]
      N random layers (2-64 experts, 2-16 ranks, up to 3 spare slots per
      rank, heavy-tailed, lognormal and exponential loads; --shares even):
      how often moeplace is less balanced than EPLB (global), and whether
      EPLB's map there puts two replicas of one expert on a rank (which
      moeplace's maps never do); and how often it is less balanced than
      EPLB's construction made valid (eplb_reference.valid_max).
  eplb_compare.py random-groups N [--seed S]
      N random grouped layers (2 or 4 nodes, 1-3 groups per node, 1-8
      experts per group, 1-4 ranks per node, up to 3 spare slots per rank):
      moeplace --shares even --groups G against EPLB's hierarchical policy,
      both node-limited; how often moeplace is less balanced, and whether
      EPLB's map there holds a duplicate.
  eplb_compare.py loads LOADS_FILE NAME:RANKS:SLOTS:NODES:GROUPS ... [--eplb-dir DIR]
      [--repeat N]
      DeepSeek-sized loads (bench_place --loads-out): moeplace (Python
      binding, --shares even), moeplace.eplb.rebalance_experts (EPLB's
      interface: every slot filled, node-limited as EPLB's hierarchical
      policy) and EPLB on the same loads, with times.

EPLB is scripts/eplb_reference.py (our re-implementation) and, with
--eplb-dir DIR (a checkout of github.com/deepseek-ai/EPLB, never copied into
this project), DeepSeek's own eplb.rebalance_experts, imported from DIR and
run on torch CPU tensors. Policies: "global" (one group, one node) always;
"hierarchical" (EPLB's node-limited policy) where groups divide by nodes,
reported for reference (moeplace's node-limited placement is --groups).
Prints per line:  CASE POLICY eplb IMB [real IMB] moeplace-even IMB verdict
and a summary; exit 0 (figures, not a pass/fail test)."""
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import eplb_reference as ref  # noqa: E402

# (name, weights [layers][experts], physical slots, groups, nodes, gpus)
CASES = [
    ("deepseek-readme", [[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                         [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]], 16, 4, 2, 8),
    ("single-gpu", [[10, 20, 30, 40]], 4, 1, 1, 1),
    ("equal-weights", [[50] * 8], 8, 2, 2, 4),
    ("extreme-imbalance", [[1000, 1, 1, 1, 1, 1, 1, 1]], 12, 2, 2, 4),
    ("multiple-layers", [[10, 20, 30, 40, 50, 60], [60, 50, 40, 30, 20, 10], [25] * 6],
     8, 2, 2, 4),
    ("non-divisible-groups", [[10, 20, 30, 40]], 8, 3, 2, 4),
    ("small-hierarchical", [[100, 50, 200, 75, 150, 25, 300, 80]], 12, 4, 2, 4),
    ("global-fallback", [[10, 20, 30, 40, 50, 60]], 8, 3, 2, 4),
    ("device", [[10, 20, 30, 40]], 6, 2, 1, 2),
    ("large-distributed", [[50, 100, 75, 120, 90, 60, 80, 110, 40, 70, 95, 85, 65, 55, 45, 35]],
     24, 8, 4, 8),
    ("two-distributions", [[200, 150, 100, 50, 25, 12], [12, 25, 50, 100, 150, 200]],
     10, 3, 1, 2),
]


def equal_split_imbalance(weight, phy2log, ranks, slots):
    """metrics.md imbalance when each replica gets 1 / (replica count)."""
    num = den = 0.0
    for l in range(weight.shape[0]):
        cnt = np.bincount(phy2log[l][phy2log[l] >= 0], minlength=weight.shape[1])
        per = np.where(phy2log[l] >= 0,
                       weight[l, np.maximum(phy2log[l], 0)] / np.maximum(cnt[np.maximum(phy2log[l], 0)], 1),
                       0.0)
        num += per.reshape(ranks, slots).sum(1).max()
        den += weight[l].sum() / ranks
    return num / den if den > 0 else 1.0


def real_eplb(eplb_dir):
    if not eplb_dir:
        return None, None
    import torch
    torch.set_num_threads(1)
    sys.path.insert(0, eplb_dir)
    import eplb
    return eplb, torch


def run_real(eplb, torch, weight, phys, groups, nodes, gpus):
    phy2log, _, _ = eplb.rebalance_experts(torch.tensor(weight, dtype=torch.float32), phys,
                                           groups, nodes, gpus)
    return phy2log.numpy()


def moeplace_even(weight, ranks, slots):
    import moeplace
    t0 = time.perf_counter()
    p = moeplace.place(weight, ranks=ranks, slots=slots, shares="even")
    ms = (time.perf_counter() - t0) * 1e3
    return np.array(p.phy2log), p.stats, ms


def moeplace_eplb_api(weight, ranks, slots, nodes, groups, repeat):
    """moeplace.eplb.rebalance_experts (EPLB's interface, every slot filled,
    node-limited groups when nodes divide them) on weight: best time of
    `repeat` in ms, and its equal-split imbalance."""
    from moeplace.eplb import rebalance_experts
    best = None
    for _ in range(repeat):
        t0 = time.perf_counter()
        ph, _, _ = rebalance_experts(weight, ranks * slots, groups, nodes, ranks)
        ms = (time.perf_counter() - t0) * 1e3
        best = ms if best is None else min(best, ms)
    return best, equal_split_imbalance(weight, ph, ranks, slots)


def policies(groups, nodes):
    out = [("global", 1, 1)]
    if nodes > 1 and groups % nodes == 0:
        out.append(("hierarchical", groups, nodes))
    return out


def cases(eplb_dir):
    eplb, torch = real_eplb(eplb_dir)
    worse = n = 0
    for name, w, phys, groups, nodes, gpus in CASES:
        weight = np.array(w, dtype=float)
        ranks, slots = gpus, phys // gpus
        ph, st, _ = moeplace_even(weight, ranks, slots)
        ours = equal_split_imbalance(weight, ph, ranks, slots)
        assert abs(ours - st["imbalance"]) < 1e-9, (ours, st["imbalance"])
        for pol, g, nd in policies(groups, nodes):
            e_ph, _ = ref.rebalance(weight, phys, g, nd, gpus)
            e_imb = equal_split_imbalance(weight, np.asarray(e_ph), ranks, slots)
            line = f"{name:22s} {pol:12s} eplb-reference {e_imb:.5f}"
            best = e_imb
            if eplb:
                r_imb = equal_split_imbalance(weight, run_real(eplb, torch, weight, phys, g, nd, gpus),
                                              ranks, slots)
                line += f" eplb-real {r_imb:.5f}"
                best = min(best, r_imb)
            verdict = "worse" if ours > best + 1e-9 else ("equal" if ours > best - 1e-9 else "better")
            if pol == "global":
                n += 1
                worse += verdict == "worse"
            print(f"{line} moeplace-even {ours:.5f} (bound {st['lower_bound']:.5f}) {verdict}",
                  flush=True)
    print(f"summary: moeplace --shares even less balanced than EPLB global in {worse} of {n} cases")


def loads(path, specs, eplb_dir, repeat):
    eplb, torch = real_eplb(eplb_dir)
    with open(path) as f:
        layers, experts = map(int, f.readline().split())
        weight = np.array([[float(x) for x in f.readline().split()] for _ in range(layers)])
    for spec in specs:
        name, ranks, slots, nodes, groups = spec.split(":")
        ranks, slots, nodes, groups = int(ranks), int(slots), int(nodes), int(groups)
        best_ms, res = None, None
        for _ in range(repeat):
            res = moeplace_even(weight, ranks, slots)
            best_ms = res[2] if best_ms is None else min(best_ms, res[2])
        ours = equal_split_imbalance(weight, res[0], ranks, slots)
        line = f"{name:22s} moeplace-even {ours:.5f} {best_ms:.1f} ms"
        api_ms, api = moeplace_eplb_api(weight, ranks, slots, nodes, groups, repeat)
        line += f" | moeplace.eplb (every slot filled) {api:.5f} {api_ms:.1f} ms"
        if eplb:
            t0 = time.perf_counter()
            ph = run_real(eplb, torch, weight, ranks * slots, 1, 1, ranks)
            ms = (time.perf_counter() - t0) * 1e3
            imb = equal_split_imbalance(weight, ph, ranks, slots)
            line += f" | eplb-real global {imb:.5f} {ms:.0f} ms (x{ms / best_ms:.0f})"
            if groups % nodes == 0:
                t0 = time.perf_counter()
                ph = run_real(eplb, torch, weight, ranks * slots, groups, nodes, ranks)
                hms = (time.perf_counter() - t0) * 1e3
                line += (f" | eplb-real hierarchical {equal_split_imbalance(weight, ph, ranks, slots):.5f}"
                         f" {hms:.0f} ms")
        print(line, flush=True)


def random_layer(rng, kind):
    """One random layer: experts E (2-64), ranks R (2-16), slots S (up to 3
    spare per rank) and loads w [E]: heavy-tailed (kind 0), lognormal (1)
    or exponential (2)."""
    E, R = int(rng.integers(2, 65)), int(rng.integers(2, 17))
    S = -(-E // R) + int(rng.integers(0, 4))
    w = (rng.zipf(1.5, E) if kind == 0 else np.round(rng.lognormal(0, 2, E) * 10)
         if kind == 1 else rng.exponential(100.0, E)).astype(float) + 1
    return E, R, S, w


def random_layers(n, seed):
    rng = np.random.default_rng(seed)
    worse = worse_dup = worse_valid = 0
    for i in range(n):
        E, R, S, w = random_layer(rng, i % 3)
        ph, st, _ = moeplace_even(w[None, :], R, S)
        ours = equal_split_imbalance(w[None, :], ph, R, S)
        e_ph, _ = ref.rebalance(w[None, :], R * S, 1, 1, R)
        e_ph = np.asarray(e_ph)
        e_imb = equal_split_imbalance(w[None, :], e_ph, R, S)
        dup = sum(len(set(x)) < len(x) for x in e_ph[0].reshape(R, S))
        valid = ref.valid_max(w, R, S) / (w.sum() / R)
        line = f"E={E} R={R} S={S}: moeplace-even {ours:.5f} eplb {e_imb:.5f} ({dup} ranks with a duplicate) valid-eplb {valid:.5f}"
        if ours > e_imb + 1e-9:
            worse += 1
            worse_dup += dup > 0
            print("worse than eplb:", line, flush=True)
        if ours > valid * (1 + 1e-9):
            worse_valid += 1
            print("worse than valid-eplb:", line, flush=True)
    print(f"summary: {n} layers; moeplace --shares even less balanced than EPLB global in {worse} "
          f"({worse_dup} of them where EPLB's map holds a duplicate), than valid EPLB in {worse_valid}")


def random_grouped_layer(rng, kind):
    """One random node-limited layer: nodes N, groups G (a multiple of N),
    experts E = G x (1-8), ranks R = N x (1-4), slots S (up to 3 spare per
    rank) and loads w [E], of the kinds of random_layer."""
    N = int(rng.choice([2, 4]))
    G = N * int(rng.integers(1, 4))
    E, R = G * int(rng.integers(1, 9)), N * int(rng.integers(1, 5))
    S = -(-E // R) + int(rng.integers(0, 4))
    _, _, _, w = random_layer(rng, kind)
    w = np.resize(w, E) if w.size < E else w[:E]
    return E, R, S, N, G, w


def random_grouped_layers(n, seed):
    import moeplace
    rng = np.random.default_rng(seed)
    worse = worse_dup = 0
    for i in range(n):
        E, R, S, N, G, w = random_grouped_layer(rng, i % 3)
        topo = moeplace.Topology.shape(N, R // N)
        p = moeplace.place(w[None, :], topology=topo, slots=S, shares="even", groups=G)
        ours, _, split = ref.evaluate(w[None, :], np.array(p.phy2log), np.array(p.logcnt), R, S, N, G)
        assert split == 0, (E, R, S, N, G)
        e_ph, e_cnt = ref.rebalance(w[None, :], R * S, G, N, R)
        e_imb, dups, _ = ref.evaluate(w[None, :], np.asarray(e_ph), np.asarray(e_cnt), R, S, N, G)
        if ours > e_imb * (1 + 1e-9):
            worse += 1
            worse_dup += dups > 0
            print(f"worse than eplb: E={E} R={R} S={S} N={N} G={G}: moeplace-even {ours:.5f} "
                  f"eplb-hierarchical {e_imb:.5f} ({dups} duplicates)", flush=True)
    print(f"summary: {n} grouped layers; moeplace --shares even --groups less balanced than EPLB "
          f"hierarchical in {worse} ({worse_dup} of them where EPLB's map holds a duplicate)")


def main(argv):
    args = argv[1:]
    eplb_dir, repeat = None, 3
    if "--eplb-dir" in args:
        i = args.index("--eplb-dir")
        eplb_dir = args[i + 1]
        del args[i:i + 2]
    if "--repeat" in args:
        i = args.index("--repeat")
        repeat = int(args[i + 1])
        del args[i:i + 2]
    seed = 1
    if "--seed" in args:
        i = args.index("--seed")
        seed = int(args[i + 1])
        del args[i:i + 2]
    if args[:1] == ["random"] and len(args) == 2:
        random_layers(int(args[1]), seed)
    elif args[:1] == ["random-groups"] and len(args) == 2:
        random_grouped_layers(int(args[1]), seed)
    elif args[:1] == ["cases"]:
        cases(eplb_dir)
    elif args[:1] == ["loads"] and len(args) >= 3:
        loads(args[1], args[2:], eplb_dir, repeat)
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
