#!/usr/bin/python3
"""Closed-loop replay of every trace on several cluster shapes, both share
policies: the figures of docs/RESULTS.md ("Closed loop on every trace") and
the targets of issue 11, checked per row.

Usage: scripts/closed_loop.py BUILD_DIR TRACE... [--shares even,weighted]
           [--predictor auto] [--interval 500] [--jobs 2] [--md OUT.md]
           [--replay-args "--step-ms 100 ..."] [--blas-core Haswell|env|...]

Shapes, for a trace of E experts (every one has spare slots, as a job that
wants replicas has): 1 node x 4 ranks, 2 nodes x 4 ranks, 4 nodes x 4 ranks,
S = ceil(E / R) + 1 slots per rank. Per row: moeplace against
moving_average (a fresh placement on the previous interval's loads: what
EPLB users do), the replay's `eplb` policy (DeepSeek EPLB's algorithm on
the previous interval's loads, equal shares) and the oracle. Targets (issue
11), against eplb: moeplace's imbalance below it, at most a fifth of its
bytes, gap_to_oracle < 0.1, and on multi-node shapes at most half its
cross-node bytes. Exit status 1
if a row misses one (the table says which), 2 on bad usage.

`EPLB gap` is the reference's own gap_to_oracle: where it is 0.1 or more,
re-placing everything every interval from the last interval's loads does
not reach the gap target either.
The column `first` is the part of the gap made in the first interval, before
any online policy (moving_average, eplb, moeplace) has seen a load: they all
run the initial placement there while the oracle already places on that
interval's loads, so it is a floor of the gap of every policy that decides
at interval boundaries from loads it has seen (sum over the first interval's
steps of static - oracle, over the steps, over static - oracle).
Below the table: the OpenBLAS kernels the forecasters ran on and each
trace's digest (as scripts/make_traces.sh records it), which together say
whether two tables can be compared row for row.
`--plot OUT.png` draws that floor beside the gaps of moeplace,
moving_average and eplb per row (needs python3-matplotlib).
"""
import argparse
import concurrent.futures
import gzip
import hashlib
import json
import math
import os
import subprocess
import sys
import tempfile


def trace_open(path, mode):
    """A trace, gzipped or not (its name does not say: make_traces.sh's are not)."""
    with open(path, "rb") as f:
        opener = gzip.open if f.read(2) == b"\x1f\x8b" else open
    return opener(path, mode)


def trace_digest(path):
    """The first 16 hex digits of the sha256 of the trace's lines other than
    comments: the digest scripts/make_traces.sh records in NAME.corpus, so that
    a table says which traces it was made on (docs/RESULTS.md)."""
    h = hashlib.sha256()
    with trace_open(path, "rb") as f:
        for line in f:
            if not line.startswith(b"#"):
                h.update(line)
    return h.hexdigest()[:16]


def trace_experts(path):
    """Experts of a trace, from its header line (docs/trace-format.md)."""
    with trace_open(path, "rt") as f:
        for line in f:
            if line.startswith("#"):
                continue
            cols = line.strip().split(",")
            return sum(1 for c in cols if c.startswith("e"))
    raise ValueError(f"{path}: no header line")


def shapes(experts):
    for nodes in (1, 2, 4):
        ranks = 4 * nodes
        yield ranks, nodes, math.ceil(experts / ranks) + 1


def first_interval_gap(timeline, interval):
    """The gap every policy that first decides at the end of the first
    interval has before it decides (the module's docstring), from the
    replay's --timeline CSV."""
    static, oracle = [], []
    with open(timeline) as f:
        head = f.readline().strip().split(",")
        i_s, i_o = head.index("static"), head.index("oracle")
        for line in f:
            cols = line.split(",")
            static.append(float(cols[i_s]))
            oracle.append(float(cols[i_o]))
    span = (sum(static) - sum(oracle)) / len(static)
    if span <= 1e-12:
        return float("nan")
    return (sum(static[:interval]) - sum(oracle[:interval])) / len(static) / span


def default_blas_core():
    """Haswell's kernels where the CPU runs them (x86-64 with AVX2 and FMA),
    as scripts/make_traces.sh pins them: without a pin the table would follow
    the CPU, or an OPENBLAS_CORETYPE the machine's environment sets; else the
    environment's choice ("env")."""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((l.split() for l in f if l.startswith("flags")), [])
    except OSError:
        flags = []
    return "Haswell" if os.uname().machine == "x86_64" and {"avx2", "fma"} <= set(flags) else "env"


def run(build, trace, ranks, nodes, slots, shares, args):
    with tempfile.TemporaryDirectory() as tmp:
        out, timeline = os.path.join(tmp, "replay.json"), os.path.join(tmp, "timeline.csv")
        cmd = [os.path.join(build, "moeplace-replay"), "--trace", trace, "--ranks", str(ranks),
               "--nodes", str(nodes), "--slots", str(slots), "--interval", str(args.interval),
               "--window", "10", "--predictor", args.predictor, "--quiet", "--json", out]
        if shares:
            cmd += ["--shares", shares]
        cmd += args.replay_args.split()
        subprocess.run(cmd + ["--timeline", timeline], check=True, stdout=subprocess.DEVNULL,
                       env=args.env)
        with open(out) as f:
            data = json.load(f)
        # blas_core: the OpenBLAS kernels the forecasters ran on; the table
        # moves with them (docs/REPLAY.md, "Repeating figures")
        first = first_interval_gap(timeline, args.interval)
        return cmd, data["policies"], first, data["blas_core"]


def reference(pol):
    """What moeplace is measured against: DeepSeek EPLB re-placing every
    interval from the previous interval's loads (the replay's `eplb`
    policy), or, from a replay without it, moving_average."""
    return pol.get("eplb", pol["moving_average"])


def verdict(pol, nodes):
    m, ma = pol["moeplace"], reference(pol)
    misses = []
    if m["imbalance"] >= ma["imbalance"]:
        misses.append("imbalance")
    if m["bytes_moved"] > ma["bytes_moved"] / 5:
        misses.append("bytes")
    if m["gap_to_oracle"] >= 0.1:
        misses.append("gap")
    if nodes > 1 and m["cross_node_bytes"] > ma["cross_node_bytes"] / 2:
        misses.append("cross-node")
    return misses


def plot(jobs, results, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [f"{os.path.basename(t).split('-')[0]} E{trace_experts(t)} {n}x{r // n}x{sl} {s[:1]}"
             for t, r, n, sl, s in jobs]
    x = range(len(jobs))
    fig, ax = plt.subplots(figsize=(12, 4.5))
    ax.bar(x, [r[2] for r in results], color="0.8", label="first interval (floor of every online policy)")
    for key, mark, color in (("moeplace", "o", "tab:blue"), ("moving_average", "s", "tab:orange"),
                             ("eplb", "^", "tab:red")):
        ax.plot(x, [r[1][key]["gap_to_oracle"] for r in results], mark, color=color, label=key,
                linestyle="none", markersize=4)
    ax.axhline(0.1, color="k", linewidth=0.8, linestyle="--", label="target 0.1")
    ax.set_xticks(list(x))
    ax.set_xticklabels(names, rotation=90, fontsize=7)
    ax.set_ylabel("gap_to_oracle")
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("build")
    ap.add_argument("traces", nargs="+")
    ap.add_argument("--shares", default="")
    ap.add_argument("--predictor", default="auto")
    ap.add_argument("--interval", type=int, default=500)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--md")
    ap.add_argument("--plot", help="PNG of the gaps and the first-interval floor per row")
    ap.add_argument("--replay-args", default="", help="more moeplace-replay options, one string")
    ap.add_argument("--blas-core", default=default_blas_core(),
                    help="OpenBLAS kernels of the replays' forecasts (OPENBLAS_CORETYPE: Haswell, "
                         "Sandybridge, ...; env: the environment's; default %(default)s)")
    args = ap.parse_args()
    args.env = dict(os.environ)
    if args.blas_core != "env":
        args.env["OPENBLAS_CORETYPE"] = args.blas_core
    policies = [s for s in args.shares.split(",") if s] or [""]
    jobs = []
    for t in args.traces:
        for ranks, nodes, slots in shapes(trace_experts(t)):
            for s in policies:
                jobs.append((t, ranks, nodes, slots, s))
    with concurrent.futures.ThreadPoolExecutor(args.jobs) as ex:
        results = list(ex.map(lambda j: run(args.build, *j, args), jobs))
    gb = 1e9
    lines = ["| trace | shape | shares | moeplace | EPLB | moving_average | oracle | gap | "
             "EPLB gap | first | bytes moeplace/EPLB | cross-node vs EPLB | misses |",
             "|---" * 13 + "|"]
    failed = both_gap = 0
    per_target = {k: 0 for k in ("imbalance", "bytes", "gap", "cross-node")}
    diff, gaps, byte_ratio = [], [], []
    for (t, ranks, nodes, slots, s), (_, pol, first, _) in zip(jobs, results):
        m, ma, o = pol["moeplace"], reference(pol), pol["oracle"]
        miss = verdict(pol, nodes)
        failed += bool(miss)
        both_gap += "gap" in miss and ma["gap_to_oracle"] >= 0.1
        for k in miss:
            per_target[k] += 1
        diff.append(m["imbalance"] - ma["imbalance"])
        gaps.append(m["gap_to_oracle"])
        if ma["bytes_moved"]:
            byte_ratio.append(m["bytes_moved"] / ma["bytes_moved"])
        xratio = (f"{m['cross_node_bytes'] / ma['cross_node_bytes']:.2f}"
                  if nodes > 1 and ma["cross_node_bytes"] else "-")
        lines.append(f"| {os.path.basename(t).split('.')[0]} | {nodes}x{ranks // nodes}x{slots} | "
                     f"{s or 'default'} | {m['imbalance']:.4f} | {ma['imbalance']:.4f} | "
                     f"{pol['moving_average']['imbalance']:.4f} | "
                     f"{o['imbalance']:.4f} | {m['gap_to_oracle']:.3f} | {ma['gap_to_oracle']:.3f} | "
                     f"{first:.3f} | "
                     f"{m['bytes_moved'] / gb:.1f}/{ma['bytes_moved'] / gb:.1f} GB | {xratio} | "
                     f"{','.join(miss) or 'ok'} |")
    text = "\n".join(lines)
    print(text)
    print(f"{len(jobs) - failed} of {len(jobs)} rows meet every target; misses per target: " +
          ", ".join(f"{k} {v}" for k, v in per_target.items()))
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    print(f"mean moeplace - EPLB imbalance {mean(diff):+.4f}, mean gap {mean(gaps):.3f}, "
          f"mean bytes moeplace/EPLB {mean(byte_ratio):.3f} (max {max(byte_ratio, default=0):.3f})")
    print(f"{both_gap} of the rows that miss the gap target have an EPLB gap >= 0.1 too")
    floor = sum(1 for r in results if r[2] >= 0.1)
    print(f"{floor} of {len(jobs)} rows have a first-interval gap >= 0.1")
    print(f"OpenBLAS kernels: {', '.join(sorted({r[3] for r in results}))} "
          "(--blas-core pins them)")
    digests = "trace sha256: " + ", ".join(f"{os.path.basename(t).split('.')[0]} {trace_digest(t)}"
                                           for t in args.traces)
    print(digests)
    text += "\n\n" + digests
    if args.plot:
        plot(jobs, results, args.plot)
    if args.md:
        with open(args.md, "w") as f:
            f.write(text + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
