#!/usr/bin/env python3
"""Reference reimplementation of DeepSeek's EPLB balancer (numpy), for timing
and balance comparisons with moeplace's placement in the same benchmark run.

Written from EPLB's published algorithm (not its code):
  * balanced_packing: items in decreasing weight, each to the lightest pack
    that still has room; every pack gets exactly items / packs items.
  * replicate_experts: each extra physical slot goes to the logical expert
    with the largest load per replica (weight / count), all layers at once.
  * hierarchical policy: (1) pack expert groups onto nodes, (2) replicate
    experts within each node, (3) pack the node's physical experts onto its
    GPUs by load per replica.
  * global policy: the hierarchical one with a single group and one node.
Shares are equal (1 / replica count), as in EPLB. Like EPLB, nothing stops
two replicas of one expert landing on one GPU; this script counts them.

Usage: eplb_reference.py LOADS_FILE NAME:RANKS:SLOTS:NODES:GROUPS ... [--repeat N]
                         [--backend numpy|torch|real] [--eplb-dir DIR]
--backend torch runs the same algorithm on torch CPU tensors (one thread), as
EPLB itself does; numpy is the faster plain-array version. --backend real
imports DeepSeek's own eplb.py from DIR (a checkout of
github.com/deepseek-ai/EPLB, not part of this project) and times its
rebalance_experts on torch CPU (one thread).
LOADS_FILE: first line "L E", then L lines of E loads (bench_place --loads-out).
Prints one line per shape and policy:
  EPLB-BACKEND NAME POLICY ms T imbalance X duplicates D split S
(imbalance with equal shares, as EPLB's routers split; split: (layer, group)
pairs of the shape's GROUPS whose replicas are on more than one of its
NODES, 0 when node-limited.)
"""
import sys
import time

import numpy as np


def balanced_packing(weight, num_packs):
    """weight [X, n] -> pack [X, n], rank_in_pack [X, n]."""
    layers, n = weight.shape
    assert n % num_packs == 0
    per_pack = n // num_packs
    if per_pack == 1:
        idx = np.tile(np.arange(n), (layers, 1))
        return idx, np.zeros_like(idx)
    order = np.argsort(-weight, axis=1, kind="stable")
    pack = np.full((layers, n), -1, dtype=np.int64)
    rank = np.full((layers, n), -1, dtype=np.int64)
    for i in range(layers):  # Python loops, as in EPLB
        load = [0.0] * num_packs
        items = [0] * num_packs
        for g in order[i]:
            best = None
            for p in range(num_packs):
                if items[p] < per_pack and (best is None or load[p] < load[best]):
                    best = p
            pack[i, g] = best
            rank[i, g] = items[best]
            load[best] += float(weight[i, g])
            items[best] += 1
    return pack, rank


def replicate_experts(weight, num_phy):
    """weight [X, num_log] -> phy2log [X, num_phy], rank [X, num_phy], logcnt [X, num_log]."""
    layers, num_log = weight.shape
    phy2log = np.tile(np.arange(num_phy), (layers, 1))
    rank = np.zeros((layers, num_phy), dtype=np.int64)
    logcnt = np.ones((layers, num_log), dtype=np.int64)
    rows = np.arange(layers)
    for i in range(num_log, num_phy):
        hot = np.argmax(weight / logcnt, axis=1)
        phy2log[:, i] = hot
        rank[:, i] = logcnt[rows, hot]
        logcnt[rows, hot] += 1
    return phy2log, rank, logcnt


def inverse(perm):
    inv = np.empty_like(perm)
    rows = np.arange(perm.shape[0])[:, None]
    inv[rows, perm] = np.arange(perm.shape[1])[None, :]
    return inv


def rebalance_hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus):
    layers, num_log = weight.shape
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    phy_per_gpu = num_phy // num_gpus
    # 1. groups onto nodes
    group_load = weight.reshape(layers, num_groups, group_size).sum(-1)
    gpack, grank = balanced_packing(group_load, num_nodes)
    log2mlog = (((gpack * groups_per_node + grank) * group_size)[:, :, None] +
                np.arange(group_size)[None, None, :]).reshape(layers, num_log)
    mlog2log = inverse(log2mlog)
    # 2. replicas within each node (rows = layer x node)
    mlog_load = np.take_along_axis(weight, mlog2log, axis=1).reshape(-1, num_log // num_nodes)
    phy2mlog, phyrank, mlogcnt = replicate_experts(mlog_load, num_phy // num_nodes)
    # 3. physical experts onto the node's GPUs by load per replica
    phy_load = np.take_along_axis(mlog_load / mlogcnt, phy2mlog, axis=1)
    pack, rank = balanced_packing(phy_load, num_gpus // num_nodes)
    phy2pphy = pack * phy_per_gpu + rank
    pphy2phy = inverse(phy2pphy)
    pphy2mlog = np.take_along_axis(phy2mlog, pphy2phy, axis=1)
    offs = np.arange(0, num_log, num_log // num_nodes)
    pphy2mlog = (pphy2mlog.reshape(layers, num_nodes, -1) + offs[None, :, None]).reshape(layers, -1)
    pphy2log = np.take_along_axis(mlog2log, pphy2mlog, axis=1)
    logcnt = np.take_along_axis(mlogcnt.reshape(layers, -1), log2mlog, axis=1)
    return pphy2log, logcnt


def rebalance(weight, num_phy, num_groups, num_nodes, num_gpus):
    if num_groups % num_nodes == 0:
        return rebalance_hierarchical(weight, num_phy, num_groups, num_nodes, num_gpus)
    return rebalance_hierarchical(weight, num_phy, 1, 1, num_gpus)


# ---- the same algorithm on torch CPU tensors, as EPLB itself runs --------

def valid_max(w, ranks, slots):
    """EPLB's global construction made valid under moeplace's rule that no
    rank holds two replicas of one expert, at its best replica total, for
    one layer w [E]: the next replica to the expert of largest w / count (at
    most one per rank), then the replicas by decreasing share, each to the
    least loaded rank with a free slot that does not hold its expert yet.
    Returns the lowest max rank load over every total from E to
    ranks x slots (equal shares). A reference for tests and eplb_compare.py;
    slow (pure Python), for small layers."""
    w = np.asarray(w, dtype=float)
    best = np.inf
    for total in range(w.size, ranks * slots + 1):
        c = np.ones(w.size, int)
        for _ in range(total - w.size):
            key = np.where((c < ranks) & (w > 0), w / c, -1.0)
            if key.max() < 0:
                break
            c[np.argmax(key)] += 1
        items = sorted(((w[e] / c[e], e) for e in range(w.size) for _ in range(c[e])),
                       key=lambda t: -t[0])
        load, n, held = np.zeros(ranks), np.zeros(ranks, int), [set() for _ in range(ranks)]
        for x, e in items:
            r = next(r for r in np.argsort(load, kind="stable")
                     if n[r] < slots and e not in held[r])
            load[r] += x
            n[r] += 1
            held[r].add(e)
        best = min(best, load.max())
    return best


def balanced_packing_torch(torch, weight, num_packs):
    layers, n = weight.shape
    per_pack = n // num_packs
    if per_pack == 1:
        idx = torch.arange(n).expand(layers, n).clone()
        return idx, torch.zeros_like(idx)
    order = weight.float().sort(-1, descending=True).indices
    pack = torch.full_like(weight, -1, dtype=torch.int64)
    rank = torch.full_like(pack, -1)
    for i in range(layers):
        load = [0] * num_packs
        items = [0] * num_packs
        for g in order[i]:
            best = min((p for p in range(num_packs) if items[p] < per_pack),
                       key=load.__getitem__)
            pack[i, g] = best
            rank[i, g] = items[best]
            load[best] += weight[i, g]  # a tensor element, as in EPLB
            items[best] += 1
    return pack, rank


def replicate_experts_torch(torch, weight, num_phy):
    layers, num_log = weight.shape
    phy2log = torch.arange(num_phy).repeat(layers, 1)
    rank = torch.zeros(layers, num_phy, dtype=torch.int64)
    logcnt = torch.ones(layers, num_log, dtype=torch.int64)
    rows = torch.arange(layers)
    for i in range(num_log, num_phy):
        hot = (weight / logcnt).max(dim=-1).indices
        phy2log[:, i] = hot
        rank[:, i] = logcnt[rows, hot]
        logcnt[rows, hot] += 1
    return phy2log, rank, logcnt


def inverse_torch(torch, perm):
    inv = torch.empty_like(perm)
    inv.scatter_(1, perm, torch.arange(perm.size(1)).expand(perm.shape))
    return inv


def rebalance_torch(torch, weight, num_phy, num_groups, num_nodes, num_gpus):
    if num_groups % num_nodes:
        num_groups = num_nodes = 1
    layers, num_log = weight.shape
    group_size = num_log // num_groups
    groups_per_node = num_groups // num_nodes
    phy_per_gpu = num_phy // num_gpus
    group_load = weight.unflatten(-1, (num_groups, group_size)).sum(-1)
    gpack, grank = balanced_packing_torch(torch, group_load, num_nodes)
    log2mlog = (((gpack * groups_per_node + grank) * group_size).unsqueeze(-1) +
                torch.arange(group_size)).flatten(-2)
    mlog2log = inverse_torch(torch, log2mlog)
    mlog_load = weight.gather(-1, mlog2log).view(-1, num_log // num_nodes)
    phy2mlog, phyrank, mlogcnt = replicate_experts_torch(torch, mlog_load, num_phy // num_nodes)
    phy_load = (mlog_load / mlogcnt).gather(-1, phy2mlog)
    pack, rank = balanced_packing_torch(torch, phy_load, num_gpus // num_nodes)
    pphy2phy = inverse_torch(torch, pack * phy_per_gpu + rank)
    pphy2mlog = phy2mlog.gather(-1, pphy2phy)
    pphy2mlog = (pphy2mlog.view(layers, num_nodes, -1) +
                 torch.arange(0, num_log, num_log // num_nodes).view(1, -1, 1)).flatten(-2)
    pphy2log = mlog2log.gather(-1, pphy2mlog)
    logcnt = mlogcnt.view(layers, -1).gather(-1, log2mlog)
    return pphy2log, logcnt


def evaluate(weight, phy2log, logcnt, ranks, slots, nodes=1, groups=1):
    """metrics.md imbalance with equal shares, duplicate (rank, expert) pairs,
    and (layer, group) pairs spanning more than one node. An empty slot
    (phy2log -1, which moeplace's maps may hold and EPLB's never do) carries
    nothing."""
    layers, experts = weight.shape
    num = den = 0.0
    dups = split = 0
    node = np.arange(ranks * slots) // slots // (ranks // nodes)
    for l in range(layers):
        ph = np.asarray(phy2log[l])
        used, e = ph >= 0, np.maximum(ph, 0)
        grp = np.where(used, e // (experts // groups), -1)
        split += sum(len(set(node[grp == g].tolist())) > 1 for g in range(groups))
        per_slot = np.where(used, weight[l, e] / logcnt[l, e], 0.0)
        rank_load = per_slot.reshape(ranks, slots).sum(1)
        num += rank_load.max()
        den += weight[l].sum() / ranks
        for r in range(ranks):
            ex = [x for x in ph[r * slots:(r + 1) * slots].tolist() if x >= 0]
            dups += len(ex) - len(set(ex))
    return num / den, dups, split


def main(argv):
    repeat = 3
    backend = "numpy"
    eplb_dir = None
    args = []
    i = 1
    while i < len(argv):
        if argv[i] == "--repeat":
            repeat = int(argv[i + 1])
            i += 2
        elif argv[i] == "--backend":
            backend = argv[i + 1]
            i += 2
        elif argv[i] == "--eplb-dir":
            eplb_dir = argv[i + 1]
            i += 2
        else:
            args.append(argv[i])
            i += 1
    if len(args) < 2:
        print(__doc__, file=sys.stderr)
        return 2
    with open(args[0]) as f:
        layers, experts = map(int, f.readline().split())
        weight = np.array([[float(x) for x in f.readline().split()] for _ in range(layers)])
    assert weight.shape == (layers, experts)
    torch = real = None
    if backend in ("torch", "real"):
        import torch
        torch.set_num_threads(1)
        tweight = torch.tensor(weight, dtype=torch.float32)
    if backend == "real":
        if not eplb_dir:
            print("--backend real needs --eplb-dir", file=sys.stderr)
            return 2
        sys.path.insert(0, eplb_dir)
        import eplb as real
    for spec in args[1:]:
        name, ranks, slots, nodes, groups = spec.split(":")
        ranks, slots, nodes, groups = int(ranks), int(slots), int(nodes), int(groups)
        for policy, (g, n) in (("hierarchical", (groups, nodes)), ("global", (1, 1))):
            best = None
            for _ in range(repeat):
                t0 = time.perf_counter()
                if real is not None:
                    phy2log, _, logcnt = real.rebalance_experts(tweight, ranks * slots, g, n,
                                                                ranks)
                elif torch is None:
                    phy2log, logcnt = rebalance(weight, ranks * slots, g, n, ranks)
                else:
                    phy2log, logcnt = rebalance_torch(torch, tweight, ranks * slots, g, n, ranks)
                ms = (time.perf_counter() - t0) * 1e3
                best = ms if best is None else min(best, ms)
            if torch is not None:
                phy2log, logcnt = phy2log.numpy(), logcnt.numpy()
            imb, dups, split = evaluate(weight, phy2log, logcnt, ranks, slots, nodes, groups)
            print(f"EPLB-{backend} {name} {policy} ms {best:.1f} imbalance {imb:.5f} duplicates {dups}"
                  f" split {split}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
