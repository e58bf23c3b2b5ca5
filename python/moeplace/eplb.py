"""moeplace behind DeepSeek EPLB's interface: a drop-in rebalance_experts.

vLLM (AbstractEplbPolicy.rebalance_experts), SGLang and DeepSeek's EPLB
all call one function of the same shape:

    phy2log, log2phy, logcnt = rebalance_experts(weight, num_replicas,
                                                 num_groups, num_nodes, num_ranks)

and route an expert's tokens equally among its replicas. This module
answers that call with moeplace's even-share placement (docs/PLACEMENT.md),
in EPLB's conventions (docs/PYTHON.md, "As an EPLB policy"):

  - every one of the num_replicas physical slots holds a replica (consumers
    index weights by phy2log, so no slot may be empty), global physical
    slot = rank * (num_replicas / num_ranks) + local slot;
  - log2phy is [layers][experts][num_replicas - experts + 1], padded -1;
  - node-limited groups when num_nodes divides num_groups (EPLB's
    hierarchical policy), one global pool otherwise (EPLB's fallback);
  - torch tensors in, int64 torch tensors out (on the CPU, as EPLB);
    numpy in, numpy out.

Unlike EPLB it never puts two replicas of one expert on one rank, and it
can take the map in force (``current=``): the new map then stays close to
it (moves are priced), which EPLB cannot do.
"""

import numpy as np

from .placement import Placement, Topology, place
from ._util import as_int


class EplbArgumentError(ValueError, AssertionError):
    """A bad argument: a ValueError, and an AssertionError as EPLB's own
    asserts raise, so that callers written for EPLB catch it."""


def _as_numpy(weight):
    """weight as a float64 numpy array [L][E], and whether it was a torch tensor."""
    is_torch = type(weight).__module__.startswith("torch")
    w = weight.detach().to("cpu").double().numpy() if is_torch else np.asarray(weight, float)
    if w.ndim != 2:
        raise EplbArgumentError("weight must have shape [layers][experts], got %d dimensions"
                                % w.ndim)
    return w, is_torch


def _shape(experts, num_replicas, num_groups, num_nodes, num_ranks, hierarchical=None):
    """(num_replicas, num_nodes, num_ranks) as ints, slots per rank, and the
    group count moeplace uses (0: one pool); EplbArgumentError if EPLB
    would refuse them or a rank would have to hold an expert twice.
    hierarchical: None, EPLB's rule (num_nodes divides num_groups); False,
    one pool; True, node-limited or an error (SGLang's enable_hierarchical).
    num_groups None (SGLang's "no groups") is one group."""
    P = as_int(num_replicas, "num_replicas", 1)
    G = 1 if num_groups is None else as_int(num_groups, "num_groups", 1)
    N, R = as_int(num_nodes, "num_nodes", 1), as_int(num_ranks, "num_ranks", 1)
    S = P // R
    if hierarchical is None:
        hierarchical = N > 1 and G % N == 0
    elif hierarchical and G % N:
        raise EplbArgumentError("enable_hierarchical: num_groups (%d) must be a multiple of "
                                "num_nodes (%d)" % (G, N))
    hierarchical = bool(hierarchical) and N > 1
    if P % R:
        problem = "num_replicas (%d) must be a multiple of num_ranks (%d)" % (P, R)
    elif R % N:
        problem = "num_ranks (%d) must be a multiple of num_nodes (%d)" % (R, N)
    elif P < experts or S > experts:
        problem = ("num_replicas (%d) must be at least the experts (%d), with at most one slot "
                   "per expert on a rank (%d slots per rank)" % (P, experts, S))
    elif hierarchical and experts % G:
        problem = "num_groups (%d) must divide the experts (%d)" % (G, experts)
    elif hierarchical and S > experts // N:
        problem = ("%d slots per rank, but a node's groups hold %d experts: a rank would hold "
                   "one twice" % (S, experts // N))
    else:
        return P, N, R, S, G if hierarchical else 0
    raise EplbArgumentError(problem)


def _maps(p, w):
    """p's phy2log [L][R*S] as int64 and its max rank load per layer [L]
    (equal splits, the library's rank loads)."""
    return np.array(p.phy2log, dtype=np.int64), p.rank_loads(w).max(1)


def rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks=None, *,
                      num_gpus=None, enable_hierarchical=None, current=None, **options):
    """EPLB's rebalance_experts, answered by moeplace (module docstring).

    weight [layers][experts]: load per logical expert (non-negative).
    num_replicas: physical slots in all (a multiple of num_ranks, at least
    the experts). num_groups, num_nodes, num_ranks: as EPLB's; num_gpus is
    DeepSeek's and SGLang's name for num_ranks (give one of the two).
    enable_hierarchical: SGLang's switch (None: node-limited exactly when
    num_nodes divides num_groups, as DeepSeek's EPLB and vLLM decide).
    current: the phy2log [layers][num_replicas] in force (EPLB's or ours;
    two replicas of one expert on a rank are merged first): the result
    stays close to it. options: more of moeplace.place()'s options
    (expert_bytes, min_gain, step_time_s, ...), samples among them: load
    samples [n][layers][experts] around weight (e.g. the per-step loads
    of the window that weight sums, scaled to its total), so that experts
    that burst together are kept apart (docs/PLACEMENT.md, "Load
    samples").
    Returns (phy2log [L][num_replicas], log2phy [L][E][num_replicas - E + 1],
    logcnt [L][E]), int64, as torch tensors when weight is one."""
    if (num_ranks is None) == (num_gpus is None):
        raise EplbArgumentError("give num_ranks or num_gpus (the same thing), once")
    w, is_torch = _as_numpy(weight)
    layers, experts = w.shape
    num_replicas, num_nodes, num_ranks, slots, groups = _shape(
        experts, num_replicas, num_groups, num_nodes,
        num_ranks if num_gpus is None else num_gpus, enable_hierarchical)
    topo = Topology.shape(num_nodes, num_ranks // num_nodes)
    try:
        cur = None
        if current is not None:
            c = current.detach().cpu().numpy() if hasattr(current, "detach") else current
            cur = Placement.from_arrays(c, experts=experts, ranks=num_ranks, slots=slots,
                                        repair=True)
        # every slot filled (fill_slots), node-limited when groups > 0; two
        # candidates per layer: every slot placed by the solver (with even
        # shares, spread > 0 means only that), and its best replica total
        # with the slots it leaves empty filled afterwards (fewer replicas
        # often balance better: a rank need not hold exactly S items)
        # (against a current map only the first: its replicas stay in place)
        kw = dict(topology=topo, slots=slots, current=cur, shares="even", groups=groups,
                  fill_slots=True)
        phy2log, top = _maps(place(w, spread=1.0, **kw, **options), w)
        if cur is None:
            free, free_top = _maps(place(w, **kw, **options), w)
            better = free_top < top  # [L]
            phy2log[better] = free[better]
    finally:
        topo.close()
    if (phy2log < 0).any():  # a byte or time budget in options kept a transfer out
        raise EplbArgumentError("%d slots stay empty under the budget given: EPLB's maps fill "
                                "every slot" % int((phy2log < 0).sum()))
    # the library's maps of the result (validated: every invariant holds),
    # log2phy padded to EPLB's width
    final = Placement.from_arrays(phy2log, experts=experts, ranks=num_ranks, slots=slots)
    logcnt = final.logcnt.astype(np.int64)
    log2phy = np.full((layers, experts, num_replicas - experts + 1), -1, dtype=np.int64)
    log2phy[:, :, :final.max_replicas] = final.log2phy
    if not is_torch:
        return phy2log, log2phy, logcnt
    import torch
    return tuple(torch.from_numpy(a) for a in (phy2log, log2phy, logcnt))


class EplbPolicy:
    """rebalance_experts as a class method, the shape of vLLM's
    AbstractEplbPolicy in releases whose policies return the three maps
    (duck-typed: vLLM is not imported). For releases whose policies return
    phy2log alone, VllmEplbPolicy."""

    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks):
        """moeplace.eplb.rebalance_experts with EPLB's five arguments."""
        return rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks)


class VllmEplbPolicy:
    """The policy shape of vLLM releases whose DefaultEplbPolicy returns
    phy2log alone (vLLM derives log2phy and logcnt from it) and takes the
    map in force as old_global_expert_indices. moeplace uses that map as
    ``current``: the new map stays close to it, on every rank and not only
    within one (vLLM's own policy re-places from scratch, then keeps the
    local slots of experts that stay on a rank; moeplace keeps those slots
    too). A map in force of another shape (the ranks or slots changed,
    elastic EP) is ignored, as vLLM's slot preservation ignores it."""

    @classmethod
    def rebalance_experts(cls, weight, num_replicas, num_groups, num_nodes, num_ranks,
                          old_global_expert_indices=None):
        """phy2log [layers][num_replicas] of moeplace.eplb.rebalance_experts."""
        current = old_global_expert_indices
        if current is not None and tuple(np.shape(current)) != (np.shape(weight)[0], num_replicas):
            current = None
        return rebalance_experts(weight, num_replicas, num_groups, num_nodes, num_ranks,
                                 current=current)[0]
