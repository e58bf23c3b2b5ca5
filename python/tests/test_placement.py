"""place(), Placement, plan(), Topology."""

import os
import sys

import numpy as np
import pytest

import moeplace

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "scripts"))
import eplb_compare  # noqa: E402  (scripts/: equal-split scoring in numpy)
import eplb_reference  # noqa: E402  (scripts/: EPLB re-implemented, and made valid)


def test_place_two_ranks():
    loads = np.array([[100.0, 10, 10, 10], [25, 25, 25, 25]])
    p = moeplace.place(loads, ranks=2, slots=3)
    L, E, R, S = 2, 4, 2, 3
    assert (p.layers, p.experts, p.ranks, p.slots) == (L, E, R, S)
    phy2log, share, logcnt, log2phy = p.phy2log, p.share, p.logcnt, p.log2phy
    assert phy2log.shape == (L, R * S) and phy2log.dtype == np.int32
    assert share.shape == (L, R * S)
    assert logcnt.shape == (L, E)
    assert log2phy.shape == (L, E, p.max_replicas)
    # EPLB conventions hold together
    for l in range(L):
        for e in range(E):
            slots = [s for s in log2phy[l, e] if s >= 0]
            assert len(slots) == logcnt[l, e] >= 1
            assert all(phy2log[l, s] == e for s in slots)
            assert abs(share[l, slots].sum() - 1) < 1e-9
            assert len({s // S for s in slots}) == len(slots)  # one replica per rank
            assert all(x == -1 for x in log2phy[l, e, len(slots):])
    st = p.stats
    assert st.imbalance >= st.lower_bound > 0 and st["gap"] >= 0
    assert st.ranks == 2 and st.moves == 0
    assert abs(p.imbalance(loads) - st.imbalance) < 1e-9
    # the hot expert is replicated: imbalance near 1
    assert logcnt[0, 0] == 2 and st.imbalance < 1.05
    rl = p.rank_loads(loads)
    assert rl.shape == (L, R) and np.allclose(rl.sum(axis=1), loads.sum(axis=1))


def test_plan_between_placements():
    topo = moeplace.Topology.shape(2, 2)
    assert (topo.ranks, topo.nodes) == (4, 2)
    assert topo.link_class(0, 1) == "same_numa" and topo.link_class(0, 2) == "other_node"
    assert topo.rank_node(3) == 1 and topo.cost("other_node") == 8.0
    cur = moeplace.Placement.from_arrays([[0, 1, 2, 3]], experts=4, ranks=4, slots=1)
    assert cur.phy2log.tolist() == [[0, 1, 2, 3]] and np.allclose(cur.share, 1)
    new = moeplace.Placement.from_arrays([[1, 0, 2, 3]], experts=4, ranks=4, slots=1)
    t = moeplace.plan(cur, new, topo, expert_bytes=100)
    assert t.dtype == moeplace.TRANSFER_DTYPE and len(t) == 2
    assert sorted(t["expert"].tolist()) == [0, 1]
    for row in t:
        assert row["bytes"] == 100 and moeplace.LINK_CLASSES[row["link"]] == "same_numa"
        assert new.phy2log[row["layer"], row["dst_rank"]] == row["expert"]
        assert cur.phy2log[row["layer"], row["src_rank"]] == row["expert"]
    assert cur.diff(new, topo, 100)["moves"] == 2
    assert len(moeplace.plan(cur, cur.copy())) == 0
    # two same-NUMA transfers of 100 bytes, rank 0 -> 1 and 1 -> 0, in parallel
    topo.set_bandwidth("same_numa", 50.0)
    assert topo.bandwidth("same_numa") == 50.0
    assert moeplace.migration_seconds(t, topo) == pytest.approx(2.0)
    with pytest.raises(moeplace.Error):
        topo.set_bandwidth("same_node", 0)
    for bad in (np.nan, -100.0):  # were priced 0 s
        t["bytes"][0] = bad
        with pytest.raises(moeplace.Error, match="bytes"):
            moeplace.migration_seconds(t, topo)


def test_copies_and_stats_attributes():
    # copy.copy shared the C handle: both copies freed it (double free)
    import copy
    p = moeplace.place(np.ones((1, 4)), ranks=2, slots=2)
    q = copy.copy(p)
    r = copy.deepcopy(p)
    ph = p.phy2log.copy()
    del p
    assert (q.phy2log == ph).all() and (r.phy2log == ph).all()
    for obj in (moeplace.Topology.shape(2, 2), moeplace.Forecaster(2, 4)):
        with pytest.raises(TypeError, match="cannot be copied"):
            copy.copy(obj)
    st = moeplace.place(np.ones((1, 4)), ranks=2, slots=2).stats
    assert not hasattr(st, "no_such_figure") and getattr(st, "moves", None) == 0
    assert copy.deepcopy(st) == st


def test_huge_loads_refused():
    # 1e308 gave NaN figures and 1e306 a lower bound of 0 (sums of squares
    # overflowed); such loads are refused, naming the bound
    for x in (1e308, 1e200):
        with pytest.raises(moeplace.Error, match="1e[+]150"):
            moeplace.place(np.full((1, 8), x), ranks=4, slots=3)
    p = moeplace.place(np.full((1, 8), 1e150), ranks=4, slots=3)
    assert p.stats.imbalance == pytest.approx(1.0)


def test_place_migration_aware():
    loads = np.array([[40.0, 30, 20, 10]])
    cur = moeplace.Placement.from_arrays([[0, 1, 2, 3]], experts=4, ranks=2, slots=2)
    keep = moeplace.place(loads, ranks=2, slots=2, current=cur, byte_budget=0,
                          expert_bytes=1e6)
    assert keep.stats.moves == 0 and keep.stats.kept_current == 1
    free = moeplace.place(loads, ranks=2, slots=2, current=cur, migration_weight=0)
    assert free.stats.imbalance <= keep.stats.imbalance + 1e-12


def test_samples_keep_bursting_experts_apart():
    # experts 0 and 1 burst together, 2 and 3 too; equal means. The samples'
    # mean max is recomputed in numpy from the result's shares.
    loads = np.ones((1, 4))
    x = np.array([[[2.0, 2, 0, 0]], [[0, 0, 2, 2]]])
    cur = moeplace.Placement.from_arrays([[0, 1, 2, 3]], experts=4, ranks=2, slots=2)

    def sample_max(p):
        share, ph = p.share[0], p.phy2log[0]
        rank = np.array([[share[i] * xt[0, ph[i]] for i in range(4)] for xt in x])
        return rank.reshape(len(x), 2, 2).sum(axis=2).max(axis=1).mean()

    kw = dict(ranks=2, slots=2, current=cur, shares="even", step_time_s=1e-3,
              horizon_steps=1e6)
    plain = moeplace.place(loads, **kw)
    assert plain.stats.moves == 0 and sample_max(plain) == 4
    p = moeplace.place(loads, samples=x, **kw)
    assert p.stats.moves == 2 and sample_max(p) == 2
    with pytest.raises(ValueError, match="samples must have shape"):
        moeplace.place(loads, samples=x[:, :, :3], **kw)
    with pytest.raises(ValueError, match="non-negative"):
        moeplace.place(loads, samples=-x, **kw)


def test_topology_table_and_json(tmp_path):
    topo = moeplace.Topology.table([0, 0, 1, 1])
    assert topo.nodes == 2
    topo.set_cost("other_node", 3)
    assert topo.cost(4) == 3
    p = moeplace.place(np.ones((1, 4)), topology=topo, slots=1)
    p.write_json(tmp_path / "p.json")
    q = moeplace.Placement.read_json(tmp_path / "p.json")
    assert np.array_equal(p.phy2log, q.phy2log)


def test_topology_load(tmp_path):
    f = tmp_path / "cluster"
    f.write_text("nodes 2\nranks_per_node 3\ncost other_node 5\n")
    t = moeplace.Topology.load(f)
    assert (t.ranks, t.nodes) == (6, 2) and t.cost("other_node") == 5
    assert t.link_class(2, 3) == "other_node"
    f.write_text("nodes 2\nbogus 1\n")
    with pytest.raises(moeplace.Error) as e:
        moeplace.Topology.load(f)
    assert e.value.status in (-1, -4) and str(f) in e.value.message


def test_errors():
    with pytest.raises(ValueError):
        moeplace.place(np.ones(4), ranks=2, slots=2)  # not [L][E]
    with pytest.raises(ValueError):
        moeplace.place(-np.ones((1, 4)), ranks=2, slots=2)
    with pytest.raises(ValueError):
        moeplace.place(np.full((1, 4), np.inf), ranks=2, slots=2)
    with pytest.raises(TypeError):
        moeplace.place(np.ones((1, 4)), ranks=2, slots=2, bogus=1)
    with pytest.raises(TypeError):
        moeplace.place(np.ones((1, 4)), slots=2)  # neither ranks nor topology
    with pytest.raises(TypeError):
        moeplace.place(np.array([["a", "b"]]), ranks=2, slots=2)
    with pytest.raises(moeplace.Error) as e:
        moeplace.place(np.ones((1, 4)), ranks=1, slots=2)  # R*S < E
    assert e.value.status == -1 and e.value.message
    with pytest.raises(moeplace.Error) as e:  # expert 3 missing
        moeplace.Placement.from_arrays([[0, 1, 2, 2]], experts=4, ranks=4, slots=1)
    with pytest.raises(moeplace.Error):
        moeplace.Topology.load("/nonexistent/cluster")
    with pytest.raises(TypeError):
        moeplace.plan("a", "b")
    with pytest.raises(moeplace.Error):
        moeplace.Topology.shape(1, 2).link_class(0, 7)


def test_accessors_refuse_bad_arguments():
    """Each of these was accepted and gave a meaningless figure."""
    topo = moeplace.Topology.shape(2, 2)
    for bad in (7, -1):
        with pytest.raises(ValueError, match="link class"):
            topo.cost(bad)
        with pytest.raises(ValueError, match="link class"):
            topo.bandwidth(bad)
    p = moeplace.place(np.ones((1, 4)), topology=topo, slots=1)
    with pytest.raises(moeplace.Error, match="load of layer 0 expert 0 is -1"):
        p.imbalance(-np.ones((1, 4)))
    with pytest.raises(ValueError):
        p.imbalance(np.full((1, 4), np.nan))
    with pytest.raises(moeplace.Error, match="groups must be >= 0"):
        p.split_groups(topo, -1)
    with pytest.raises(moeplace.Error, match="time_limit_ms is NaN"):
        moeplace.place(np.ones((1, 4)), topology=topo, slots=1, time_limit_ms=float("nan"))


def test_place_groups_node_limited(tmp_path):
    rng = np.random.default_rng(7)
    loads = rng.lognormal(0, 1, (3, 32)) * 1000
    topo = moeplace.Topology.shape(4, 2)  # 4 nodes x 2 ranks
    p = moeplace.place(loads, topology=topo, slots=5, groups=8)
    assert p.stats.groups == 8 and p.stats.split_groups == 0
    assert (p.split_groups(topo, 8) == 0).all()
    # independently: every group's slots on one node (node = rank // 2)
    node = np.arange(8 * 5) // 5 // 2
    for l in range(3):
        for g in range(8):
            held = (p.phy2log[l] >= 0) & (p.phy2log[l] // 4 == g)
            assert len(set(node[held])) == 1
    free = moeplace.place(loads, topology=topo, slots=5)
    assert free.stats.groups == 0
    # the balance cost of the constraint is what it is, never a gain
    assert p.stats.imbalance >= free.stats.lower_bound - 1e-12
    with pytest.raises(moeplace.Error, match="must divide the experts"):
        moeplace.place(loads, topology=topo, slots=5, groups=5)
    assert topo.node_limited(8) and topo.node_limited(4) and not topo.node_limited(2)
    assert not topo.node_limited(1) and not topo.node_limited(0)
    # 2 groups on 4 nodes: EPLB's global fallback, the groups spread and counted
    g2 = moeplace.place(loads, topology=topo, slots=5, groups=2)
    assert (g2.phy2log == free.phy2log).all()
    assert g2.stats.split_groups == g2.split_groups(topo, 2).sum() > 0


def test_eplb_map_with_duplicates(tmp_path):
    f = tmp_path / "eplb.json"
    f.write_text('{"ranks": 2, "slots": 3, "phy2log": [[0, 1, 1, 2, 3, 0]]}')
    with pytest.raises(moeplace.Error, match="twice"):
        moeplace.Placement.read_json(f)
    p = moeplace.Placement.read_json(f, repair=True)
    assert p.repaired == 1
    assert p.phy2log.tolist() == [[0, 1, -1, 2, 3, 0]]
    assert np.allclose(p.share, [[0.5, 1, 0, 1, 1, 0.5]])
    assert p.logcnt.tolist() == [[2, 1, 1, 1]]
    assert p.log2phy.tolist() == [[[0, 5], [1, -1], [3, -1], [4, -1]]]
    assert p.repair() == 0


def test_even_no_worse_than_valid_eplb():
    # Random shapes up to 128 slots, heavy-tailed and flat loads. EPLB itself
    # may put two replicas of one expert on one rank (a double share there,
    # which moeplace's maps never hold); its construction under the
    # no-duplicate rule, at any replica total, is the reference here. The
    # fresh even solver tried only "all slots" above 64 slots before, and
    # lost to this reference on 10 of these 80 shapes (all above 64 slots),
    # by up to 2.1%.
    rng = np.random.default_rng(11)
    worse, n = [], 0
    while n < 80:
        E, R, S, w = eplb_compare.random_layer(rng, n % 3)
        if R * S > 128:
            continue
        p = moeplace.place(w[None, :], ranks=R, slots=S, shares="even")
        ph = np.asarray(p.phy2log)[0]
        for r in range(R):  # valid: no rank holds an expert twice, every expert held
            held = ph[r * S:(r + 1) * S]
            held = held[held >= 0]
            assert len(set(held)) == len(held)
        assert set(ph[ph >= 0]) == set(range(E))
        ours = eplb_compare.equal_split_imbalance(w[None, :], ph[None, :], R, S)
        ref = eplb_reference.valid_max(w, R, S) / (w.sum() / R)
        assert abs(ours - p.stats.imbalance) < 1e-9
        if ours > ref * (1 + 1e-9):
            worse.append((E, R, S, ours / ref - 1))
        n += 1
    assert not worse, worse


def fill_reference(w, ph, R, S):
    """docs/PLACEMENT.md's fill rule in numpy, independently of the C: each
    empty slot of ph [R*S] (slot order) gets the expert its rank does not
    hold whose equal split leaves the lowest max rank load, then the lowest
    sum of squares, then the lowest index."""
    ph = ph.copy()
    E = w.size
    for g in np.flatnonzero(ph < 0):
        r = g // S
        best = None
        for e in range(E):
            if e in ph[r * S:(r + 1) * S]:
                continue
            trial = ph.copy()
            trial[g] = e
            cnt = np.bincount(trial[trial >= 0], minlength=E)
            x = np.where(trial >= 0, w[np.maximum(trial, 0)] / cnt[np.maximum(trial, 0)], 0)
            loads = x.reshape(R, S).sum(1)
            key = (loads.max(), (loads * loads).sum(), e)
            if best is None or key < best:
                best = key
        ph[g] = best[2]
    return ph


def test_fill_slots_matches_the_rule():
    # layers with idle experts (slots only they could take stay empty) and
    # spare slots, every one then filled by the rule
    rng = np.random.default_rng(21)
    filled = 0
    for trial in range(40):
        R, S, E = int(rng.integers(2, 6)), int(rng.integers(2, 5)), int(rng.integers(3, 12))
        if R * S < E or S > E:
            continue
        w = rng.lognormal(0, 1.5, (1, E)) * 100
        w[0, rng.integers(0, E, max(1, E // 3))] = 0
        p = moeplace.place(w, ranks=R, slots=S, shares="even")
        q = moeplace.place(w, ranks=R, slots=S, shares="even", fill_slots=True)
        assert (q.phy2log >= 0).all()
        filled += int((p.phy2log < 0).sum())
        ref = fill_reference(w[0], p.phy2log[0].astype(int), R, S)
        assert (q.phy2log[0] == ref).all(), (trial, p.phy2log[0], q.phy2log[0], ref)
        assert q.stats.imbalance == pytest.approx(
            eplb_compare.equal_split_imbalance(w, q.phy2log, R, S), rel=1e-12)
    assert filled >= 20  # the rule was exercised (measured: 29 slots)
    with pytest.raises(moeplace.Error, match="fill_slots needs shares = even"):
        moeplace.place(w, ranks=R, slots=S, fill_slots=True)
    # node-limited groups: each node's slots filled from its own groups
    topo = moeplace.Topology.shape(2, 4)
    w = rng.lognormal(0, 1.5, (3, 16)) * 100
    w[:, ::3] = 0
    q = moeplace.place(w, topology=topo, slots=4, shares="even", groups=4, fill_slots=True)
    assert (q.phy2log >= 0).all() and q.stats.split_groups == 0
    # against a current placement with an empty slot: filled by a transfer
    # (counted), except under a byte budget of 0, where it stays empty
    cur = moeplace.Placement.from_arrays(np.array([[0, 1, 2, -1]]), experts=3, ranks=2, slots=2)
    w = np.array([[10.0, 1.0, 1.0]])
    q = moeplace.place(w, ranks=2, slots=2, shares="even", fill_slots=True, current=cur)
    assert (q.phy2log >= 0).all() and q.stats.moves >= 1
    q = moeplace.place(w, ranks=2, slots=2, shares="even", fill_slots=True, current=cur,
                       byte_budget=0)
    assert q.stats.moves == 0 and (q.phy2log < 0).sum() == 1


def test_even_counts_break_ties_as_eplb():
    # Layers of eplb_compare.py random 500 --seed S (index i) where the
    # fresh even solver lost to EPLB's valid construction by 0.04-2.0%
    # (E=50 R=12 S=6: 1.0280 against 1.0080): tied loads (integer counts
    # often are) got their extra replicas in heap order, not EPLB's (the
    # lowest index first), and no local search step undid it.
    for seed, index in ((1, 249), (2, 18), (2, 240), (3, 36), (3, 319), (3, 361), (5, 9),
                        (7, 273)):
        rng = np.random.default_rng(seed)
        for i in range(index + 1):
            E, R, S, w = eplb_compare.random_layer(rng, i % 3)
        p = moeplace.place(w[None, :], ranks=R, slots=S, shares="even")
        ref = eplb_reference.valid_max(w, R, S) / (w.sum() / R)
        assert p.stats.imbalance <= ref * (1 + 1e-9), (seed, index, p.stats.imbalance, ref)


def test_groups_even_no_worse_than_eplb_hierarchical():
    # Random node-limited layers (2 or 4 nodes, up to 96 experts), scored
    # with equal splits. Where EPLB's hierarchical map holds no duplicate,
    # moeplace --groups must be at least as balanced. Before the second
    # start (groups.c), 3 of the 217 such layers of these 1000 lost: the
    # swaps balanced the node totals, but a node's experts packed onto its
    # ranks worse than on EPLB's assignment (up to 1.712 against 1.555).
    worse, n = [], 0
    for seed in (1, 6):
        rng = np.random.default_rng(seed)
        for i in range(500):
            E, R, S, N, G, w = eplb_compare.random_grouped_layer(rng, i % 3)
            p = moeplace.place(w[None, :], topology=moeplace.Topology.shape(N, R // N), slots=S,
                               shares="even", groups=G)
            ours, dups, split = eplb_reference.evaluate(w[None, :], np.asarray(p.phy2log),
                                                        np.asarray(p.logcnt), R, S, N, G)
            assert dups == 0 and split == 0 and p.stats.split_groups == 0
            assert abs(ours - p.stats.imbalance) < 1e-9  # empty slots carry nothing
            e_ph, e_cnt = eplb_reference.rebalance(w[None, :], R * S, G, N, R)
            theirs, e_dups, _ = eplb_reference.evaluate(w[None, :], np.asarray(e_ph),
                                                        np.asarray(e_cnt), R, S, N, G)
            if e_dups == 0:
                n += 1
                if ours > theirs * (1 + 1e-9):
                    worse.append((E, R, S, N, G, ours, theirs))
    assert n > 200, n
    assert not worse, worse
