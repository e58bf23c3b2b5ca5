"""Token dispatch for expert parallelism: each token goes to a replica of
its expert (moeplace's routing table, whole-token split by replica shares),
over an MPI all-to-all that autograd differentiates (the backward of an
all-to-all is the reverse all-to-all), and its output comes back in the
original token order."""

import numpy as np
import torch
from mpi4py import MPI

import moeplace


def _alltoallv(comm, x, send_rows, recv_rows):
    """Rows of x [n][d] (send_rows[r] to rank r, in rank order) -> the rows
    received, [sum(recv_rows)][d], from rank 0 first."""
    x = x.detach().contiguous()
    d = x.shape[1]
    out = x.new_empty((int(recv_rows.sum()), d))
    sc, rc = send_rows * d, recv_rows * d
    sd = np.concatenate(([0], np.cumsum(sc)[:-1]))
    rd = np.concatenate(([0], np.cumsum(rc)[:-1]))
    comm.Alltoallv([x.numpy(), (sc, sd)], [out.numpy(), (rc, rd)])
    return out


class AllToAll(torch.autograd.Function):
    """Differentiable all-to-all: forward sends rows, backward sends their
    gradients back the reverse way. Every rank must call it (and so its
    backward) in the same order: keep it in the graph even with no rows."""

    @staticmethod
    def forward(ctx, x, send_rows, recv_rows, comm):
        ctx.comm, ctx.send_rows, ctx.recv_rows = comm, send_rows, recv_rows
        return _alltoallv(comm, x, send_rows, recv_rows)

    @staticmethod
    def backward(ctx, grad):
        return _alltoallv(ctx.comm, grad, ctx.recv_rows, ctx.send_rows), None, None, None


def plan(expert, routing, ranks, slots):
    """Where this rank's tokens go. expert int [N]: each token's expert;
    routing: (count [E], rank/slot/share [E][max]) of this layer.
    Returns (order [N], send [ranks][slots]): tokens in sending order
    (by destination rank, then slot, then token index) and how many go to
    each (rank, local slot). Each expert's tokens (in token order) are cut
    among its replicas by moeplace.split_tokens: the first split[0] to
    replica 0, and so on."""
    count, rank, slot, share = routing
    by_expert = np.argsort(expert, kind="stable")                  # [N]
    n_e = np.bincount(expert, minlength=count.shape[0])            # [E]
    dest = np.empty(expert.size, dtype=np.int64)                   # [N] rank * slots + slot
    pos = 0
    for e, n in enumerate(n_e):
        k = count[e]
        split = moeplace.split_tokens(int(n), share[e, :k])
        dest[by_expert[pos:pos + n]] = np.repeat(rank[e, :k] * slots + slot[e, :k], split)
        pos += n
    order = np.argsort(dest, kind="stable")
    send = np.bincount(dest, minlength=ranks * slots).reshape(ranks, slots)
    return order, send


def dispatch(comm, tok, expert, routing, slots, expert_fn, record):
    """The MoE layer's expert outputs for this rank's tokens.

    tok float32 [N][d]; expert int [N]; expert_fn(slot, x float64 [n][d])
    -> float64 [n][d] runs the expert in a local slot; record(got [slots])
    receives the tokens each local slot got in this step (for
    Runtime.record). Returns float32 [N][d] in token order."""
    R = comm.size
    order, send = plan(expert, routing, R, slots)
    recv = np.empty_like(send)                                     # [R][S] from rank r to my slot s
    comm.Alltoall(send, recv)
    record(recv.sum(axis=0))
    xr = AllToAll.apply(tok[torch.from_numpy(order)], send.sum(axis=1), recv.sum(axis=1), comm)

    # received rows: source rank major, slot minor -> slot major, source minor,
    # so each slot's tokens are one segment (in source rank, then token order)
    start = np.cumsum(np.concatenate(([0], recv.ravel()[:-1]))).reshape(R, slots)
    by_slot = np.concatenate([np.arange(start[r, s], start[r, s] + recv[r, s])
                              for s in range(slots) for r in range(R)]).astype(np.int64)
    xg = xr[torch.from_numpy(by_slot)]
    n_s = recv.sum(axis=0)
    ys, a = [], 0
    for s in range(slots):
        if n_s[s]:
            ys.append(expert_fn(s, xg[a:a + n_s[s]].double()).float())
        a += n_s[s]
    yg = torch.cat(ys) if ys else xg * 0.0     # keep the graph: the backward all-to-all must run
    yr = yg[torch.from_numpy(np.argsort(by_slot))]
    y = AllToAll.apply(yr, recv.sum(axis=1), send.sum(axis=1), comm)
    return y[torch.from_numpy(np.argsort(order))]
