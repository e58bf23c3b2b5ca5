"""Token dispatch for expert parallelism: each token goes to a replica of
its expert (moeplace's routing table; whole-token split by replica shares
from Runtime.dispatch) over an MPI all-to-all that autograd differentiates
(the backward of an all-to-all is the reverse all-to-all), and its output
comes back in the original token order."""

import numpy as np
import torch


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


def plan(expert, routing, send):
    """Which token goes where. expert int [N]: each token's expert; routing:
    (count [E], rank/slot [E][max], ...) of this layer; send [ranks][slots]:
    how many tokens go to each (rank, local slot), from Runtime.dispatch
    (each expert's tokens split among its replicas by their shares, in
    whole tokens). The tokens of an expert, in token order, fill its
    replicas in routing-table order. Returns the tokens in sending order
    (by destination rank, then slot, then token index)."""
    count, rank, slot = routing[:3]
    slots = send.shape[1]
    by_expert = np.argsort(expert, kind="stable")                  # [N]
    dest = np.empty(expert.size, dtype=np.int64)                   # [N] rank * slots + slot
    pos = 0
    for e in range(count.shape[0]):
        k = count[e]
        n = send[rank[e, :k], slot[e, :k]].astype(np.int64)       # [k] tokens per replica
        dest[by_expert[pos:pos + n.sum()]] = np.repeat(rank[e, :k] * slots + slot[e, :k], n)
        pos += n.sum()
    assert pos == expert.size, "the split does not cover this rank's tokens"
    return np.argsort(dest, kind="stable")


def dispatch(comm, tok, expert, routing, send, expert_fn):
    """The MoE layer's expert outputs for this rank's tokens.

    tok float32 [N][d]; expert int [N]; routing, send: see plan();
    expert_fn(slot, x float64 [n][d]) -> float64 [n][d] runs the expert in
    a local slot. Returns (float32 [N][d] in token order, int [slots]: the
    tokens each local slot computed)."""
    R, slots = send.shape
    send = send.astype(np.int64)
    order = plan(expert, routing, send)
    recv = np.empty_like(send)                                     # [R][S] from rank r to my slot s
    comm.Alltoall(send, recv)
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
    return y[torch.from_numpy(np.argsort(order))], n_s
