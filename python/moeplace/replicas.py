"""Gradient sums across an expert's replicas (mpi4py).

With replicas, one logical expert is trained on several ranks, each on the
tokens routed to its replica: the expert's gradient is the sum of its
replicas' gradients, and every replica must apply that sum (or replicas
diverge). ReplicaGroups finds, from the runtime's placement, the ranks that
hold each expert, and sums gradients within each such group:

  - per distinct group of ranks (a tuple of at least two ranks), one MPI
    sub-communicator (MPI_Comm_create_group, collective over the group only),
    made when first needed and kept until the placement changes (a
    rebalance); then freed and remade for the new groups;
  - per replicated expert, one MPI_Allreduce(SUM) of its gradients (packed
    into one buffer when they share a dtype) over its group. An expert
    with one replica costs nothing. Experts are reduced in (layer, expert)
    order on every rank: the group with the smallest pending (layer,
    expert) always has all its members at it, so overlapping groups cannot
    deadlock.

Cost per step: each replicated expert's gradient bytes, all-reduced among
its k holders (2 (k-1)/k of them per rank in a ring); nothing for the rest.
After a rebalance, one communicator creation per distinct group."""

import numpy as np

__all__ = ["ReplicaGroups"]


def _host_array(g):
    """A writable numpy view of a CPU tensor / numpy array (no copy)."""
    if isinstance(g, np.ndarray):
        a = g
    elif hasattr(g, "numpy"):
        a = (g.detach() if hasattr(g, "detach") else g).numpy()
    else:
        raise TypeError("gradients must be numpy arrays or CPU torch tensors, not %s"
                        % type(g).__name__)
    if not a.flags.c_contiguous or not a.flags.writeable:
        raise ValueError("gradients must be writable and C-contiguous")
    return a


class ReplicaGroups:
    """The replica groups of a moeplace.Runtime over an mpi4py communicator
    (the one the runtime was created on), and gradient sums within them.

    ``groups = ReplicaGroups(rt, comm)``; every step, after backward and
    before the optimizer step, ``groups.allreduce(grads)`` with ``grads`` a
    dict {(layer, local slot): [gradient arrays]} of this rank's slots. Call
    it on every rank (it is collective within each group); it follows
    rebalances by itself (the placement is compared at each call). free()
    (collective) releases the sub-communicators."""

    def __init__(self, rt, comm):
        """rt: the moeplace.Runtime; comm: the mpi4py communicator it was
        created on (rank numbers are the same)."""
        if comm.Get_size() != rt.size or comm.Get_rank() != rt.rank:
            raise ValueError("comm must be the communicator the runtime was created on")
        self._rt, self._comm = rt, comm
        self._key = None
        self._comms = {}  # ranks tuple -> sub-communicator
        self._ranks = {}  # (layer, expert) -> ranks tuple

    def _refresh(self):
        se, _ = self._rt.get_placement()  # [L][R][S]
        key = se.tobytes()
        if key == self._key:
            return
        self.free()
        self._key = key
        L, R, _S = se.shape
        self._ranks = {}
        for l in range(L):
            holders = {}
            for r in range(R):
                for e in se[l, r]:
                    if e >= 0:
                        holders.setdefault(int(e), []).append(r)
            for e, rs in holders.items():
                self._ranks[l, e] = tuple(rs)

    def ranks(self, layer, expert):
        """The ranks holding a replica of ``expert`` of ``layer``, ascending."""
        self._refresh()
        return self._ranks[layer, expert]

    def _group_comm(self, ranks):
        c = self._comms.get(ranks)
        if c is None:
            # Members create it in the same (layer, expert) order; the tag
            # separates concurrent creations of different groups.
            tag = hash(ranks) & 0x7fff
            grp = self._comm.Get_group().Incl(list(ranks))
            c = self._comm.Create_group(grp, tag)
            grp.Free()
            self._comms[ranks] = c
        return c

    def allreduce(self, grads):
        """Sums, in place, each local slot's gradients over all replicas of
        its expert. ``grads``: {(layer, slot): [arrays or CPU tensors]}, the
        same arrays in the same order on every replica of an expert."""
        from mpi4py import MPI
        self._refresh()
        work = []
        for (layer, slot), arrays in grads.items():
            arrays = [_host_array(g) for g in arrays]  # checked on every rank alike
            e, _ = self._rt.local_expert(layer, slot)
            if e < 0:
                continue
            ranks = self._ranks[layer, e]
            if len(ranks) > 1:
                work.append(((layer, e), ranks, arrays))
        work.sort(key=lambda w: w[0])  # (layer, expert): the same order on every rank
        for _key, ranks, arrays in work:
            c = self._group_comm(ranks)
            if len({a.dtype for a in arrays}) == 1 and len(arrays) > 1:
                flat = np.concatenate([a.ravel() for a in arrays])
                c.Allreduce(MPI.IN_PLACE, flat, op=MPI.SUM)
                off = 0
                for a in arrays:
                    a.ravel()[:] = flat[off:off + a.size]
                    off += a.size
            else:
                for a in arrays:
                    c.Allreduce(MPI.IN_PLACE, a, op=MPI.SUM)

    def free(self):
        """Releases the sub-communicators (collective over each group: call
        it on every rank). allreduce() makes new ones when needed."""
        for c in self._comms.values():
            c.Free()
        self._comms = {}
        self._key = None
