"""Expert-parallel training of a small byte-level MoE transformer on
moeplace (docs/PYTHON.md walks through it):

    mpirun -np 2 /usr/bin/python3 examples/torch_moe/train.py --steps 300 --rebalance on

Every step: forward (each MoE layer dispatches its tokens to the ranks
holding their experts by the runtime's routing table; the trainer records
what the routers chose), backward (through the all-to-alls), gradient sums
(non-expert: all ranks; expert: the replicas of each expert), Adam, then
Runtime.step(), which may move experts (weights and Adam moments, registered
with the runtime) between ranks. The loss does not depend on the placement:
a run with --rebalance on has the losses of one with --rebalance off."""

import argparse
import json
import os
import sys
import time

import numpy as np
import torch
from mpi4py import MPI

import moeplace

import checkpoint
import data
import grads
from model import MoETransformer


def options(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    a = p.add_argument
    a("--steps", type=int, default=300, help="last training step")
    a("--rebalance", choices=("on", "off"), default="on", help="let moeplace move experts")
    a("--seed", type=int, default=0)
    a("--checkpoint-every", type=int, default=0, metavar="N", help="checkpoint every N steps")
    a("--checkpoint-dir", default="torch_moe_ckpt")
    a("--resume", action="store_true", help="continue from --checkpoint-dir's last checkpoint")
    a("--record-trace", metavar="FILE", help="write the run's expert loads (trace format)")
    a("--json", metavar="FILE", help="write losses, step_ms, rebalances, moves")
    a("--layers", type=int, default=2)
    a("--experts", type=int, default=8)
    a("--slots", type=int, default=5, help="expert slots per rank (spare ones hold replicas)")
    a("--d-model", type=int, default=64)
    a("--heads", type=int, default=4)
    a("--expert-hidden", type=int, default=128)
    a("--batch", type=int, default=4, help="sequences per rank and step")
    a("--seq-len", type=int, default=64)
    a("--lr", type=float, default=1e-3)
    a("--window", type=int, default=10, help="runtime: steps per load window")
    a("--rebalance-interval", type=int, default=50, help="runtime: steps between rebalances")
    a("--aux", type=float, default=0.0,
      help="Switch load-balancing loss coefficient (0: the router collapses onto few experts)")
    a("--corpus", help="directory of *.py text files (default: python's stdlib)")
    args = p.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.seq_len < 2:
        p.error("--steps, --batch must be >= 1 and --seq-len >= 2")
    if args.rebalance_interval % args.window:
        p.error("--rebalance-interval must be a multiple of --window")
    return args


def setup(args, comm, resume):
    """(model, optimizer, runtime): experts placed and registered. resume:
    a runtime checkpoint to continue from, or None."""
    E = args.experts
    torch.manual_seed(args.seed)           # the same non-expert weights on every rank
    model = MoETransformer(args.layers, args.d_model, args.heads, args.expert_hidden, E,
                           args.slots, args.seq_len)
    # sw_avg decides in well under a window, so waiting for a decision
    # (decision_wait) costs nothing and a resumed run takes every decision
    # at the same step as an uninterrupted one (compare.py --same-decisions).
    rt = moeplace.Runtime(comm, args.layers, E, args.slots, window=args.window,
                          rebalance_interval=args.rebalance_interval if args.rebalance == "on"
                          else 0, horizon=args.rebalance_interval, predictor="sw_avg",
                          decision_wait=1, resume=resume)
    with torch.no_grad():
        for l, moe in enumerate(model.moe_layers()):
            for s, p in enumerate(moe.slots):
                e, _ = rt.local_expert(l, s)
                p.copy_(moe.shape.init(args.seed, l, e) if e >= 0 else torch.zeros_like(p))
    opt = torch.optim.Adam(model.parameters(), lr=args.lr)
    for p in model.parameters():      # Adam's state now, not at its first step
        moeplace.optimizer_state(opt, p)
    # An expert slot's state: its weights, Adam's step and both moments; a
    # migration overwrites them in place.
    for l, moe in enumerate(model.moe_layers()):
        for s, p in enumerate(moe.slots):
            rt.register_parameter(l, s, p, opt)
    return model, opt, rt


def set_routing(model, comm, rt):
    """Hands each MoE layer the routing table in force and its token split."""
    count, rank, slot, share = rt.routing()
    for l, moe in enumerate(model.moe_layers()):
        moe.comm, moe.routing = comm, (count[l], rank[l], slot[l], share[l])
        moe.split = lambda counts, l=l: rt.dispatch(l, counts)


def gather_runs(comm, local):
    """The per-step [steps][layers] tokens this rank's slots computed, from
    every rank: [ranks][steps][layers] on rank 0."""
    got = comm.gather(np.asarray(local), root=0)
    return None if got is None else np.stack(got)


def main(argv):
    args = options(argv)
    comm = MPI.COMM_WORLD
    torch.set_num_threads(1)
    corpus = data.load_corpus(root=args.corpus)
    meta = checkpoint.find(comm, args.checkpoint_dir) if args.resume else None
    model, opt, rt = setup(args, comm, meta and checkpoint.runtime_file(args.checkpoint_dir,
                                                                        meta["step"]))
    dense = [p for p in model.parameters() if id(p) not in model.expert_parameters()]
    losses, first, rebalances, moves, rebalance_steps = [], 1, 0, 0, []
    if meta:
        # the runtime continues with the saved placement: load every slot's state
        extra = checkpoint.load(comm, args.checkpoint_dir, meta, model, opt)
        losses, rebalances, moves = extra["losses"], extra["rebalances"], extra["moves"]
        rebalance_steps = extra["rebalance_steps"]
        first = meta["step"] + 1
    placement_start = rt.get_placement()
    set_routing(model, comm, rt)

    step_s, loads, trace = [], [], []
    for step in range(first, args.steps + 1):
        t0 = time.perf_counter()
        x, y = data.batch(corpus, args.seed, step, comm.rank, args.batch, args.seq_len)
        logits = model(x)
        for l, moe in enumerate(model.moe_layers()):
            rt.record_experts(l, moe.expert_counts)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 256), y.reshape(-1))
        aux = sum(m.aux_loss for m in model.moe_layers())
        ((loss + args.aux * aux) / comm.size).backward()
        grads.allreduce_dense(comm, dense)
        grads.sum_expert_grads(comm, [(m.slots, m.routing) for m in model.moe_layers()])
        opt.step()
        opt.zero_grad(set_to_none=False)
        info = rt.step()
        if info.rebalanced:
            set_routing(model, comm, rt)
            rebalances += 1
            moves += info.moves
            rebalance_steps.append(step)
        step_s.append(time.perf_counter() - t0)
        losses.append(comm.allreduce(loss.item()) / comm.size)
        loads.append([m.slot_tokens.sum() for m in model.moe_layers()])
        if args.record_trace:
            trace.append(np.stack([m.expert_counts for m in model.moe_layers()]))
        if args.checkpoint_every and step % args.checkpoint_every == 0:
            checkpoint.save(comm, args.checkpoint_dir, step, model, opt,
                            {"losses": losses, "rebalances": rebalances, "moves": moves,
                             "rebalance_steps": rebalance_steps}, rt)
        if comm.rank == 0 and (step % 50 == 0 or step == args.steps):
            print("step %d loss %.4f step_ms %.2f rebalances %d moves %d"
                  % (step, losses[-1], 1e3 * np.mean(step_s[-50:]), rebalances, moves),
                  flush=True)

    if args.record_trace:
        counts = np.zeros((len(trace), args.layers, args.experts), dtype=np.int64)
        comm.Reduce(np.ascontiguousarray(np.stack(trace)) if trace else counts, counts, root=0)
        if comm.rank == 0:
            moeplace.write_trace(args.record_trace, np.arange(first, args.steps + 1), counts,
                                 meta={"model": "examples/torch_moe byte-level MoE, top-1",
                                       "tokens_per_step": comm.size * args.batch * args.seq_len})
    per_rank = gather_runs(comm, loads)                 # [R][steps][L]
    stats = rt.stats()
    placement_end = rt.get_placement()
    rt.destroy()
    if comm.rank == 0:
        # per step: sum over layers of the busiest rank's tokens / the mean rank's
        mx, mean = per_rank.max(axis=0).sum(axis=1), per_rank.mean(axis=0).sum(axis=1)
        imb = mx / np.maximum(mean, 1)
        out = {"losses": losses, "first_step": first,
               "step_ms": 1e3 * float(np.mean(step_s[1:] if len(step_s) > 1 else step_s)),
               "rebalances": rebalances, "moves": moves, "rebalance_steps": rebalance_steps,
               "bytes_moved": int(stats["bytes_moved"]),
               "token_imbalance": float(np.mean(imb)), "token_imbalance_steps": imb.tolist(),
               "placement_start": placement_start[0].tolist(),
               "share_start": placement_start[1].tolist(),
               "placement_end": placement_end[0].tolist(), "ranks": comm.size,
               "args": vars(args)}
        print("done: %d steps, step_ms %.2f, token imbalance %.3f, rebalances %d, moves %d"
              % (len(step_s), out["step_ms"], out["token_imbalance"], rebalances, moves))
        if args.json:
            tmp = args.json + ".tmp"
            with open(tmp, "w") as f:
                json.dump(out, f)
            os.replace(tmp, args.json)


if __name__ == "__main__":
    main(sys.argv[1:])
