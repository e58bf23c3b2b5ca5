"""Gradient synchronisation after backward.

- Non-expert parameters are data parallel: their gradients are summed over
  all ranks (every rank's loss is already divided by the number of ranks).
- An expert slot's gradient covers only the tokens that replica computed:
  the replicas of an expert (the ranks holding it, from the routing table)
  exchange their gradients and each sums them in float64 in ascending rank
  order, so every replica takes the same Adam step and replicas stay
  bit-identical."""

import numpy as np
import torch
from mpi4py import MPI


def allreduce_dense(comm, params):
    """Sums the gradients of `params` (float32, data parallel) over ranks,
    in float64 (with 2 ranks: exactly a + b, the same on both)."""
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).double() for g in grads]).numpy()
    comm.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
    off = 0
    for p, g in zip(params, grads):
        n = g.numel()
        p.grad = torch.from_numpy(flat[off:off + n]).view_as(g).to(g.dtype)
        off += n


def replica_groups(routing, rank):
    """[(expert, [(rank, slot)...] ascending by rank, my slot)] of one layer's
    experts that have several replicas and one on `rank`."""
    count, ranks, slots, _ = routing
    out = []
    for e in range(count.shape[0]):
        k = count[e]
        holders = sorted(zip(ranks[e, :k].tolist(), slots[e, :k].tolist()))
        mine = [s for r, s in holders if r == rank]
        if k > 1 and mine:
            out.append((e, holders, mine[0]))
    return out


def sum_expert_grads(comm, layers):
    """layers: [(slot parameters, routing row)] per MoE layer. Replaces each
    replica's gradient by the sum over the expert's replicas."""
    me, reqs, todo = comm.rank, [], []
    for l, (slots, routing) in enumerate(layers):
        E = routing[0].shape[0]
        for p in slots:
            if p.grad is None:          # a slot that got no token still takes its Adam step
                p.grad = torch.zeros_like(p)
        for e, holders, s in replica_groups(routing, me):
            mine = slots[s].grad.numpy()
            got = {}
            for r, _ in holders:
                if r != me:
                    got[r] = np.empty_like(mine)
                    reqs.append(comm.Isend(mine, dest=r, tag=l * E + e))
                    reqs.append(comm.Irecv(got[r], source=r, tag=l * E + e))
            todo.append((mine, holders, got))
    MPI.Request.Waitall(reqs)
    for mine, holders, got in todo:
        total = np.zeros_like(mine)
        for r, _ in holders:
            total += mine if r == me else got[r]
        mine[:] = total
