"""Pure-Python helpers a trainer needs over the routing table."""

import numpy as np

__all__ = ["split_tokens"]


def split_tokens(tokens, shares):
    """Splits ``tokens`` (a non-negative integer) among replicas by their
    ``shares`` [n] (non-negative, not all 0 unless tokens is 0) into whole
    tokens: int64 [n] summing to ``tokens``. Largest-remainder rounding:
    each replica gets floor(tokens * share / sum), and the tokens left go one
    each to the largest remainders, ties to the lower index (slot order).
    Deterministic: the same inputs give the same split on every rank."""
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
    total = s.sum()
    if total <= 0:
        if tokens:
            raise ValueError("shares sum to 0")
        return np.zeros(s.size, dtype=np.int64)
    exact = tokens * (s / total)
    base = np.floor(exact).astype(np.int64)
    left = tokens - int(base.sum())
    if left > 0:
        rem = exact - base
        # stable sort on -remainder: equal remainders keep slot order
        order = np.argsort(-rem, kind="stable")
        base[order[:left]] += 1
    return base
