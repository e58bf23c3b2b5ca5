"""split_tokens: whole tokens by shares, deterministic."""

import numpy as np
import pytest

import moeplace


def test_split_sums_and_rounding():
    assert moeplace.split_tokens(10, [0.5, 0.5]).tolist() == [5, 5]
    assert moeplace.split_tokens(7, [0.5, 0.5]).tolist() == [4, 3]  # tie: lower slot
    assert moeplace.split_tokens(10, [0.25, 0.75]).tolist() == [3, 7]  # 2.5/7.5: tie
    assert moeplace.split_tokens(10, [1, 1, 1]).tolist() == [4, 3, 3]
    assert moeplace.split_tokens(0, [0.3, 0.7]).tolist() == [0, 0]
    assert moeplace.split_tokens(5, [0, 1]).tolist() == [0, 5]
    rng = np.random.default_rng(0)
    for _ in range(200):
        s = rng.random(rng.integers(1, 6))
        n = int(rng.integers(0, 1000))
        out = moeplace.split_tokens(n, s)
        assert out.sum() == n and np.all(np.abs(out - n * s / s.sum()) < 1)
    # finite shares whose sum overflows: split as equal shares (their sum was
    # inf, every exact part 0, and 2**40 tokens went one per pass: a hang)
    assert moeplace.split_tokens(10, [1e308] * 3).tolist() == [4, 3, 3]
    assert moeplace.split_tokens(5, [1e308, 1e308]).tolist() == [3, 2]
    big = moeplace.split_tokens(2**40, [1e308] * 3)
    assert big.sum() == 2**40 and big.max() - big.min() <= 1


def test_split_errors():
    with pytest.raises(ValueError):
        moeplace.split_tokens(3, [0, 0])
    with pytest.raises(ValueError):
        moeplace.split_tokens(-1, [1])
    with pytest.raises(TypeError):
        moeplace.split_tokens(1.5, [1])
    with pytest.raises(ValueError):
        moeplace.split_tokens(1, [-0.5, 1.5])


def test_dispatch_counts():
    # expert 0 on (rank 0, slot 0) and (rank 1, slot 1), 3:1; expert 1 on (1, 0)
    count = [2, 1]
    rank = [[0, 1], [1, -1]]
    slot = [[0, 1], [0, -1]]
    share = [[0.75, 0.25], [1.0, 0.0]]
    out = moeplace.dispatch_counts(np.array([10, 5]), count, rank, slot, share, 2, 2)
    assert out.tolist() == [[8, 0], [5, 2]]  # 7.5/2.5: the tie goes to the first replica
    assert out.sum() == 15
    with pytest.raises(ValueError):
        moeplace.dispatch_counts(np.array([10, 5]), [0, 1], rank, slot, share, 2, 2)
    with pytest.raises(ValueError):
        moeplace.dispatch_counts(np.array([10, 5]), count, rank, slot, share, 1, 2)
    with pytest.raises(TypeError):
        moeplace.dispatch_counts(np.array([1.0, 5.0]), count, rank, slot, share, 2, 2)


def _reference_split(tokens, shares):
    """An independent numpy reference of the largest-remainder split (the
    package's former pure-Python implementation)."""
    s = np.asarray(shares, dtype=np.float64)
    total = s.sum()
    if total <= 0:
        return np.zeros(s.size, dtype=np.int64)
    exact = tokens * (s / total)
    base = np.floor(exact).astype(np.int64)
    left = tokens - int(base.sum())
    if left > 0:
        order = np.argsort(-(exact - base), kind="stable")  # ties keep slot order
        base[order[:left]] += 1
    return base


def test_c_split_matches_the_numpy_reference():
    rng = np.random.default_rng(7)
    for _ in range(2000):
        n = int(rng.integers(1, 9))
        s = rng.random(n)
        if rng.random() < 0.3:  # equal shares: ties everywhere
            s = np.full(n, 1.0 / n)
        if rng.random() < 0.2:
            s[rng.integers(0, n)] = 0.0
        if s.sum() == 0:
            s[0] = 1.0
        t = int(rng.integers(0, 10**6))
        assert moeplace.split_tokens(t, s).tolist() == _reference_split(t, s).tolist()
