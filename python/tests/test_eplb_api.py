"""moeplace.eplb.rebalance_experts: EPLB's interface and conventions, and
its balance against EPLB (scripts/eplb_reference.py) scored the way EPLB's
routers split (equal parts per replica)."""

import os
import sys

import numpy as np
import pytest

import moeplace
from moeplace.eplb import EplbPolicy, VllmEplbPolicy, rebalance_experts

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import eplb_compare  # noqa: E402  (scripts/: the EPLB test inputs, equal-split scoring)
import eplb_reference  # noqa: E402  (scripts/: EPLB re-implemented)


def check_maps(phy2log, log2phy, logcnt, experts, num_replicas, ranks, nodes=1, groups=0):
    """EPLB's conventions, recomputed independently; with groups, every
    group's replicas on one node (ranks // nodes consecutive ranks)."""
    layers = phy2log.shape[0]
    S = num_replicas // ranks
    assert phy2log.shape == (layers, num_replicas)
    assert log2phy.shape == (layers, experts, num_replicas - experts + 1)
    assert logcnt.shape == (layers, experts)
    assert ((phy2log >= 0) & (phy2log < experts)).all()  # every slot holds a replica
    for l in range(layers):
        assert (logcnt[l] == np.bincount(phy2log[l], minlength=experts)).all()
        for e in range(experts):
            slots = log2phy[l, e][log2phy[l, e] >= 0]
            assert (log2phy[l, e][len(slots):] == -1).all() and len(slots) == logcnt[l, e]
            assert (phy2log[l, slots] == e).all() and (np.diff(slots) > 0).all()
        for r in range(ranks):  # moeplace's rule: no rank holds an expert twice
            held = phy2log[l, r * S:(r + 1) * S]
            assert len(set(held.tolist())) == S
        node = np.arange(num_replicas) // S // (ranks // nodes)
        for g in range(groups):
            size = experts // groups
            assert len(set(node[(phy2log[l] // size) == g].tolist())) == 1, (l, g)


def eplb_map(w, num_replicas, groups, nodes, ranks):
    """EPLB's phy2log for these arguments (hierarchical when nodes divide
    the groups, its global fallback otherwise), and whether a rank holds
    two replicas of one expert in it."""
    hier = nodes > 1 and groups % nodes == 0
    ph, _ = eplb_reference.rebalance(w, num_replicas, groups if hier else 1, nodes if hier else 1,
                                     ranks)
    ph = np.asarray(ph)
    S = num_replicas // ranks
    return ph, any(len(set(x)) < S for row in ph for x in row.reshape(ranks, S))


def test_eplb_test_inputs():
    # The inputs of DeepSeek's EPLB README and vLLM's EPLB tests
    # (eplb_compare.CASES): as balanced as EPLB or better, except where
    # EPLB's map holds two replicas of one expert on a rank (a double share
    # there, which no moeplace map holds). Two of those are optimal without
    # it, by hand: 4 experts on 2 ranks x 3 slots ("device") and 6 on 2 x 5
    # ("two-distributions") leave each rank missing one expert, a on one
    # and b on the other, so the max is at best total / 2 + |w_a - w_b| / 2.
    optimum = {"device": 1.1, "two-distributions": (537 + 13) / 537}
    for name, w, P, G, N, R in eplb_compare.CASES:
        w = np.array(w, dtype=float)
        ph, l2p, cnt = rebalance_experts(w, P, G, N, R)
        assert isinstance(ph, np.ndarray) and ph.dtype == np.int64
        hier = N > 1 and G % N == 0
        check_maps(ph, l2p, cnt, w.shape[1], P, R, nodes=N, groups=G if hier else 0)
        ours = eplb_compare.equal_split_imbalance(w, ph, R, P // R)
        e_ph, dup = eplb_map(w, P, G, N, R)
        if name in optimum:
            assert ours == pytest.approx(optimum[name], rel=1e-12), name
        elif ours > eplb_compare.equal_split_imbalance(w, e_ph, R, P // R) * (1 + 1e-12):
            assert dup, name


def test_torch_in_torch_out_and_policy_class():
    torch = pytest.importorskip("torch")
    w = torch.tensor([[90, 132, 40, 61, 104, 165, 39, 4, 73, 56, 183, 86],
                      [20, 107, 104, 64, 19, 197, 187, 157, 172, 86, 16, 27]])
    out = EplbPolicy.rebalance_experts(w, 16, 4, 2, 8)
    assert all(isinstance(t, torch.Tensor) and t.dtype == torch.int64 for t in out)
    check_maps(*(t.numpy() for t in out), 12, 16, 8)
    ph = out[0].numpy()
    node = np.arange(16) // 8  # 2 nodes of 4 ranks x 2 slots: groups of 3 experts on one node
    for l in range(2):
        for g in range(4):
            assert len(set(node[np.isin(ph[l], range(3 * g, 3 * g + 3))].tolist())) == 1


def test_idle_experts_fill_every_slot():
    # EPLB starts from zero loads; no slot may stay empty (-1), which
    # consumers would use as an index.
    for w in (np.zeros((2, 12)), np.array([[5.0] + [0] * 11])):
        ph, l2p, cnt = rebalance_experts(w, 16, 4, 2, 8)
        check_maps(ph, l2p, cnt, 12, 16, 8, nodes=2, groups=4)
        assert cnt.sum() == 16 * w.shape[0]


def test_random_layers_lose_only_where_eplb_holds_a_duplicate():
    # 300 random layers: moeplace is as balanced as EPLB everywhere EPLB's
    # map has no rank holding two replicas of one expert (a double share
    # there, an uneven split no map of moeplace's holds). Where it has one,
    # the second candidate (the solver's own replica total, its spare slots
    # filled afterwards) cuts the losses: 24 layers (by up to 6.5%) with
    # every slot placed by the solver alone, 9 (up to 2.9%) with both.
    rng = np.random.default_rng(5)
    worse, lost, n = [], 0, 0
    while n < 300:
        E, R, S, w = eplb_compare.random_layer(rng, n % 3)
        if S > E:
            continue
        n += 1
        ph, l2p, cnt = rebalance_experts(w[None, :], R * S, 1, 1, R)
        check_maps(ph, l2p, cnt, E, R * S, R)
        e_ph, dup = eplb_map(w[None, :], R * S, 1, 1, R)
        ours = eplb_compare.equal_split_imbalance(w[None, :], ph, R, S)
        theirs = eplb_compare.equal_split_imbalance(w[None, :], e_ph, R, S)
        lost += ours > theirs * (1 + 1e-9)
        if ours > theirs * (1 + 1e-9) and not dup:
            worse.append((E, R, S, ours, theirs))
    assert not worse, worse
    assert lost <= 9, lost


def test_random_grouped_layers_stay_node_limited():
    # Random node-limited layers (eplb_compare.random_grouped_layer): the
    # free slots are filled only with experts of the node's own groups, and
    # moeplace is as balanced as EPLB's hierarchical policy wherever EPLB's
    # map holds no duplicate. (The first version filled from any group and
    # split groups over nodes.)
    rng = np.random.default_rng(8)
    worse, n = [], 0
    while n < 150:
        E, R, S, N, G, w = eplb_compare.random_grouped_layer(rng, n % 3)
        if S > E // N:
            continue
        n += 1
        ph, l2p, cnt = rebalance_experts(w[None, :], R * S, G, N, R)
        check_maps(ph, l2p, cnt, E, R * S, R, nodes=N, groups=G)
        e_ph, dup = eplb_map(w[None, :], R * S, G, N, R)  # N divides G: hierarchical
        ours = eplb_compare.equal_split_imbalance(w[None, :], ph, R, S)
        theirs = eplb_compare.equal_split_imbalance(w[None, :], e_ph, R, S)
        if ours > theirs * (1 + 1e-9) and not dup:
            worse.append((E, R, S, N, G, ours, theirs))
    assert not worse, worse


def test_current_map_with_duplicates_is_repaired_and_kept_close():
    # EPLB's own map as the one in force (it may hold duplicates), loads
    # drifted by 5%: moeplace (default options) is at least as balanced as
    # EPLB re-placing from scratch, for under a third of its moves (measured:
    # 1.0140 against 1.0163, 31 moves against 110).
    rng = np.random.default_rng(3)
    w = rng.lognormal(0, 1, (4, 32)) * 100
    R, S = 8, 5
    old, _ = eplb_reference.rebalance(w, R * S, 1, 1, R)
    old = np.asarray(old)
    w2 = w * rng.normal(1, 0.05, w.shape).clip(0.5)
    ph, l2p, cnt = rebalance_experts(w2, R * S, 1, 1, R, current=old)
    check_maps(ph, l2p, cnt, 32, R * S, R)
    fresh, _ = eplb_reference.rebalance(w2, R * S, 1, 1, R)

    def moves(a, b):  # (layer, expert, rank) in b and not in a
        held = lambda m: {(l, e, g // S) for l in range(m.shape[0]) for g, e in enumerate(m[l])}
        return len(held(b) - held(a))

    fresh = np.asarray(fresh)
    assert moves(old, ph) * 3 < moves(old, fresh)
    score = lambda m: eplb_compare.equal_split_imbalance(w2, m, R, S)
    assert score(ph) <= score(fresh) < score(old)


def test_vllm_phy2log_policy_keeps_the_map_in_force():
    """vLLM's newer policy shape: phy2log alone, old_global_expert_indices
    the map in force (its test_eplb_algo cases re-created: the DeepSeek
    example, 3 groups on 2 nodes falling back to one pool, 7 replicas on 4
    ranks refused as an AssertionError)."""
    torch = pytest.importorskip("torch")
    w = torch.tensor(eplb_compare.CASES[0][1])  # DeepSeek README example
    ph = VllmEplbPolicy.rebalance_experts(w, 16, 4, 2, 8)
    assert isinstance(ph, torch.Tensor) and ph.dtype == torch.int64 and ph.shape == (2, 16)
    assert (ph == rebalance_experts(w, 16, 4, 2, 8)[0]).all()
    small = torch.tensor([[10, 20, 30, 40]])
    assert VllmEplbPolicy.rebalance_experts(small, 8, 3, 2, 4).shape == (1, 8)
    with pytest.raises(AssertionError):
        VllmEplbPolicy.rebalance_experts(small, 7, 2, 2, 4)
    # the map in force: a drift of 5% keeps most replicas where they are,
    # every kept replica in its old local slot (vLLM copies nothing for it)
    rng = np.random.default_rng(5)
    R, S, E = 8, 5, 32
    w1 = torch.from_numpy(rng.lognormal(0, 1, (4, E)) * 100)
    old = VllmEplbPolicy.rebalance_experts(w1, R * S, 4, 2, R)
    w2 = w1 * torch.from_numpy(rng.normal(1, 0.05, (4, E)).clip(0.5))
    new = VllmEplbPolicy.rebalance_experts(w2, R * S, 4, 2, R, old_global_expert_indices=old)
    fresh = VllmEplbPolicy.rebalance_experts(w2, R * S, 4, 2, R)
    maps = rebalance_experts(w2, R * S, 4, 2, R, current=old)
    assert (maps[0] == new).all()
    check_maps(*(t.numpy() for t in maps), E, R * S, R, nodes=2, groups=4)
    grid = lambda m: m.numpy().reshape(4, R, S)
    moved = lambda a, b: int(sum(e not in set(a[l, r]) for l in range(4) for r in range(R)
                                 for e in b[l, r]))
    # against vLLM's own policy (EPLB from scratch on the drifted loads;
    # measured: 26 moves against 71)
    eplb_new = torch.from_numpy(eplb_map(w2.numpy(), R * S, 4, 2, R)[0])
    assert moved(grid(old), grid(new)) * 2 < moved(grid(old), grid(eplb_new))
    score = lambda m: eplb_compare.equal_split_imbalance(w2.numpy(), m.numpy(), R, S)
    assert score(new) <= score(eplb_new) < score(old)  # measured: 1.1612, 1.1626, 1.1710
    o, n = grid(old), grid(new)
    for l in range(4):
        for r in range(R):
            for k in range(S):
                if n[l, r, k] in set(o[l, r]):
                    assert o[l, r, k] == n[l, r, k], (l, r, k)
    # a map in force of another shape (elastic EP) is ignored
    other = VllmEplbPolicy.rebalance_experts(w2, R * S, 4, 2, R,
                                             old_global_expert_indices=old[:, :R * S - R])
    assert (other == fresh).all()


def test_samples_pass_through():
    # equal means, experts 0 and 2 bursting together, 1 and 3 too (the
    # pairs the map without samples puts on one rank): with the samples
    # every rank holds one of each pair (every step's max is 2, not 4)
    w = np.ones((1, 4))
    x = np.array([[[2.0, 0, 2, 0]], [[0, 2, 0, 2]]])
    for samples, apart in ((None, False), (x, True)):
        ph, _, _ = rebalance_experts(w, 4, 1, 1, 2, samples=samples)
        held = [set(ph[0, 2 * r:2 * r + 2].tolist()) for r in range(2)]
        assert (held[0] not in ({0, 2}, {1, 3})) == apart, (samples is None, ph)


def test_sglang_keywords():
    """SGLang calls DeepSeek's function with keywords: num_gpus (DeepSeek's
    name for the ranks), enable_hierarchical, num_groups possibly None."""
    w = np.array(eplb_compare.CASES[0][1], dtype=float)
    hier = rebalance_experts(w, 16, 4, 2, 8)
    flat = rebalance_experts(w, 16, 1, 1, 8)
    kw = dict(weight=w, num_replicas=16, num_groups=4, num_nodes=2, num_gpus=8)
    for got, want in ((rebalance_experts(**kw, enable_hierarchical=True), hier),
                      (rebalance_experts(**kw, enable_hierarchical=False), flat),
                      (rebalance_experts(**kw), hier),
                      (rebalance_experts(w, 16, None, 2, num_gpus=8), flat)):
        assert all((a == b).all() for a, b in zip(got, want))
    with pytest.raises(AssertionError, match="multiple of num_nodes"):
        rebalance_experts(w, 16, 3, 2, num_gpus=8, enable_hierarchical=True)
    with pytest.raises(AssertionError, match="num_ranks or num_gpus"):
        rebalance_experts(w, 16, 4, 2, 8, num_gpus=8)
    with pytest.raises(AssertionError, match="num_ranks or num_gpus"):
        rebalance_experts(w, 16, 4, 2)


def test_bad_arguments_raise_as_eplb_asserts_do():
    w = np.array([[10.0, 20, 30, 40]])
    # 7 slots on 4 ranks; 4 ranks on 3 nodes; 2 slots for 4 experts; 10 slots per rank > 4 experts
    for args in ((7, 2, 2, 4), (8, 2, 3, 4), (2, 1, 1, 1), (20, 1, 1, 2)):
        with pytest.raises(ValueError) as e:
            rebalance_experts(w, *args)
        assert isinstance(e.value, AssertionError), args
    with pytest.raises(ValueError):
        rebalance_experts(np.ones(4), 8, 1, 1, 4)


def test_malformed_input_gives_clear_errors():
    # Bad weights, shapes and current maps: a clear exception naming the
    # problem, never a crash or a map.
    w = np.array([[10.0, 20, 30, 40]])
    cases = [
        ((np.array([[np.nan, 1, 2, 3]]), 8, 1, 1, 4), {}, ValueError, "finite"),
        ((-w, 8, 1, 1, 4), {}, ValueError, "non-negative"),
        ((np.array([[1e200, 1, 2, 3]]), 8, 1, 1, 4), {}, moeplace.Error, r"<= 1e\+150"),
        ((w, 8, 0, 1, 4), {}, ValueError, "num_groups"),
        ((w, 8, 1, 0, 4), {}, ValueError, "num_nodes"),
        ((w, 8.5, 1, 1, 4), {}, TypeError, "num_replicas"),
        ((w, 8, 1, 1, 4), {"current": np.zeros((1, 7), int)}, ValueError, "shape"),
        ((w, 8, 1, 1, 4), {"current": np.full((1, 8), 9)}, moeplace.Error, "out of range"),
        ((w, 8, 1, 1, 4), {"current": np.zeros((1, 8), int)}, moeplace.Error, "no replica"),
        ((w, 8, 1, 1, 4), {"bogus": 1}, TypeError, "unknown option"),
    ]
    for args, kw, exc, text in cases:
        with pytest.raises(exc, match=text):
            rebalance_experts(*args, **kw)
