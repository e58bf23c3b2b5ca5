"""Helpers a trainer needs over the routing table: the whole-token split
(moeplace_split_tokens of the C library, the one home of the rounding) and
the per-(rank, slot) dispatch counts of one layer."""

import ctypes

import numpy as np

from . import _lib

__all__ = ["split_tokens", "dispatch_counts"]


def split_tokens(tokens, shares):
    """Splits ``tokens`` (a non-negative integer) among replicas by their
    ``shares`` [n] (non-negative, not all 0 unless tokens is 0) into whole
    tokens: int64 [n] summing to ``tokens``. Largest-remainder rounding:
    each replica gets floor(tokens * share / sum), and the tokens left go one
    each to the largest remainders, ties to the lower index (slot order).
    Deterministic: the same inputs give the same split on every rank; it is
    the C library's moeplace_split_tokens (Runtime.dispatch uses it too)."""
    if isinstance(tokens, bool) or not isinstance(tokens, (int, np.integer)):
        raise TypeError("tokens must be an integer")
    tokens = int(tokens)
    if tokens < 0:
        raise ValueError("tokens must be non-negative")
    s = np.asarray(shares)
    if s.ndim != 1 or s.size == 0:
        raise ValueError("shares must be a non-empty 1-D array")
    if s.dtype.kind not in "iuf":
        raise TypeError("shares must be numeric")
    s = s.astype(np.float64)
    if not np.all(np.isfinite(s)) or (s < 0).any():
        raise ValueError("shares must be finite and non-negative")
    if tokens and not (s > 0).any():
        raise ValueError("shares sum to 0")
    if tokens >= 2**63:
        raise ValueError("tokens must be < 2**63")
    if s.size > 2**31 - 1:
        raise ValueError("too many shares")
    s = np.ascontiguousarray(s)
    out = np.empty(s.size, dtype=np.uint64)
    _lib.check(_lib.core().moeplace_split_tokens(tokens, s.ctypes.data_as(ctypes.c_void_p),
                                                 s.size, out.ctypes.data_as(ctypes.c_void_p)))
    return out.astype(np.int64)


def dispatch_counts(tokens, count, rank, slot, share, ranks, slots_per_rank):
    """How many of one layer's tokens go to each (rank, local slot).

    ``tokens`` [E]: the tokens the router sent to each logical expert;
    ``count`` [E], ``rank``/``slot``/``share`` [E][max_rep]: one layer of
    Runtime.routing() (``count[l], rank[l], slot[l], share[l]``). Each
    expert's tokens are split over its replicas by split_tokens().
    Returns int64 [ranks][slots_per_rank]; its row sums are what this rank
    sends to each rank, and on the receiving side the per-slot totals are
    what Runtime.record() wants."""
    t = np.asarray(tokens)
    if t.ndim != 1 or t.dtype.kind not in "iu":
        raise TypeError("tokens must be a 1-D integer array [experts]")
    E = t.shape[0]
    count, rank, slot, share = (np.asarray(a) for a in (count, rank, slot, share))
    if count.shape != (E,) or rank.ndim != 2 or rank.shape[0] != E or \
            slot.shape != rank.shape or share.shape != rank.shape:
        raise ValueError("count must be [%d] and rank, slot, share [%d][max_rep]" % (E, E))
    out = np.zeros((ranks, slots_per_rank), dtype=np.int64)
    for e in range(E):
        n = int(count[e])
        if not 1 <= n <= rank.shape[1]:
            raise ValueError("expert %d has %d replicas in the table" % (e, n))
        split = split_tokens(int(t[e]), share[e, :n])
        for i in range(n):
            r, s = int(rank[e, i]), int(slot[e, i])
            if not (0 <= r < ranks and 0 <= s < slots_per_rank):
                raise ValueError("expert %d: replica on rank %d slot %d is outside the job"
                                 % (e, r, s))
            out[r, s] += split[i]
    return out
