"""What a trainer needs from the runtime, on 2 ranks (tests/python.sh mpi):
many buffers per slot with the optimizer state, per-expert records, the
dispatch split, replica consistency and groups, checkpoint/restart. Every
test makes the same collective calls on every rank; the mpi_lockstep fixture (conftest.py)
makes every rank fail a test that failed on one."""

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
import moeplace  # noqa: E402

COMM = MPI.COMM_WORLD
L, E, S = 2, 4, 2
S3 = 3  # 6 slots for 4 experts: room for replicas


pytestmark = pytest.mark.usefixtures("mpi_lockstep")


def _expert(torch, e):
    """An expert (two Linear layers) whose weights depend on e only."""
    torch.manual_seed(100 + e)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 6))


def test_parameters_and_adam_state_migrate_together():
    torch = pytest.importorskip("torch")
    torch.set_num_threads(1)  # two ranks share the machine
    with moeplace.Runtime(COMM, L, E, S) as rt:
        slots = {}
        for l in range(L):
            for s in range(S):
                e, _ = rt.local_expert(l, s)
                m = _expert(torch, e)
                opt = torch.optim.Adam(m.parameters(), lr=0.01)
                n = 0
                for p in m.parameters():  # weight, bias, weight, bias
                    n += len(rt.register_parameter(l, s, p, opt))
                assert n == 16  # each: the tensor, exp_avg, exp_avg_sq, step
                # one training step with data that depends on the expert
                torch.manual_seed(e)
                m(torch.randn(3, 6)).pow(2).sum().backward()
                opt.step()
                slots[l, s] = (m, opt)
        # swap the ranks' experts in layer 0
        new = np.array([[[2, 3], [0, 1]], [[0, 1], [2, 3]]])
        info = rt.apply_placement(new)
        assert info.moves == 4
        for l in range(L):
            for s in range(S):
                e = int(new[l][COMM.rank][s])
                ref = _expert(torch, e)  # the same expert trained the same way here
                ropt = torch.optim.Adam(ref.parameters(), lr=0.01)
                torch.manual_seed(e)
                ref(torch.randn(3, 6)).pow(2).sum().backward()
                ropt.step()
                m, opt = slots[l, s]
                for p, q in zip(m.parameters(), ref.parameters()):
                    assert torch.equal(p, q)
                    for k in ("exp_avg", "exp_avg_sq", "step"):
                        assert torch.equal(opt.state[p][k], ropt.state[q][k]), k


def test_many_buffers_per_slot():
    bufs = [[[np.zeros(33 + b, np.uint8) for b in range(20)] for _ in range(S)]
            for _ in range(L)]
    with moeplace.Runtime(COMM, L, E, S) as rt:
        for l in range(L):
            for s in range(S):
                for b in range(20):
                    rt.register_buffer(l, s, bufs[l][s][b])
                    bufs[l][s][b][:] = (rt.local_expert(l, s)[0] * 20 + b) % 251
        new = np.array([[[3, 2], [1, 0]], [[1, 0], [3, 2]]])
        rt.apply_placement(new)
        for l in range(L):
            for s in range(S):
                e = new[l][COMM.rank][s]
                assert all(np.all(bufs[l][s][b] == (e * 20 + b) % 251) for b in range(20))


def _router(step, layer):
    """This rank's router counts [E] at a step: skewed, rank- and step-dependent."""
    base = np.array([60, 25, 10, 5]) if layer == 0 else np.array([5, 10, 25, 60])
    if step >= 90:  # the hot experts change: later rebalances move replicas again
        base = base[::-1]
    return (base * (1 + COMM.rank) + (step * 7 + layer * 3 + COMM.rank) % 5).astype(np.uint64)


def _run(per_expert, steps=200):
    """The decisions of a run recording per slot (dispatch + all-to-all) or
    per expert: [(step, phy2log, share)] at every committed rebalance."""
    out = []
    # decision_wait: the two runs must take each decision at the same step
    with moeplace.Runtime(COMM, L, E, S3, window=10, rebalance_interval=50, horizon=50,
                          decision_wait=1) as rt:
        for step in range(steps):
            for l in range(L):
                tokens = _router(step, l)
                if per_expert:
                    rt.record_experts(l, tokens)
                else:
                    send = rt.dispatch(l, tokens)
                    got = np.sum(COMM.alltoall(list(send)), axis=0)
                    rt.record(l, got)
            info = rt.step()
            if info.rebalanced:
                se, sh = rt.get_placement()
                out.append((info.step, se.copy(), sh.copy()))
    return out


def test_record_experts_decides_as_record_per_slot():
    a, b = _run(False), _run(True)
    assert len(a) >= 1, "the skewed load should rebalance"
    assert len(a) == len(b)
    for (sa, pa, ha), (sb, pb, hb) in zip(a, b):
        assert sa == sb and np.array_equal(pa, pb) and np.array_equal(ha, hb)
    # the hot experts got replicas: decisions really followed the counts
    assert (a[-1][1][0] == 0).sum() > 1


def test_dispatch_matches_the_routing_table():
    with moeplace.Runtime(COMM, L, E, S3) as rt:
        # layer 0: expert 0 on both ranks (3:1), layer 1: expert 3 on both (1:2)
        se = np.array([[[0, 1, 2], [3, 0, -1]], [[3, 1, -1], [2, 0, 3]]])
        sh = np.array([[[0.75, 1, 1], [1, 0.25, 0]], [[1 / 3, 1, 0], [1, 1, 2 / 3]]])
        rt.apply_placement(se, sh)
        count, rank, slot, share = rt.routing()
        assert count[0, 0] == 2 and count[1, 3] == 2
        for l in range(L):
            tokens = _router(3, l)
            ref = moeplace.dispatch_counts(tokens.astype(np.int64), count[l], rank[l], slot[l],
                                           share[l], rt.size, S3)
            got = rt.dispatch(l, tokens)
            assert got.shape == (2, S3) and got.tolist() == ref.tolist()
            assert got.sum() == tokens.sum() and got[0 if l else 1, 2] == 0  # empty slot
        with pytest.raises(ValueError):
            rt.dispatch(0, [1, 2])
        with pytest.raises(TypeError):
            rt.dispatch(0, [1.5] * E)
        with pytest.raises(ValueError):
            rt.record_experts(0, [1, 2, 3])
        with pytest.raises(ValueError):
            rt.record_experts(0, [-1] * E)
        with pytest.raises(moeplace.Error) as e:
            rt.record_experts(5, [1] * E)
        assert e.value.status == moeplace.ERR_ARG and "layer 5" in e.value.message


def _steps(rt, first, last):
    """Steps first..last recording per expert; the placement after each."""
    out = {}
    for step in range(first, last + 1):
        for l in range(L):
            rt.record_experts(l, _router(step, l))
        rt.step_at(step)
        out[step] = tuple(a.tobytes() for a in rt.get_placement())
    return out


def test_checkpoint_resume_continues_identically(tmp_path):
    path = COMM.bcast(str(tmp_path / "rt.ckpt"))
    # sw_avg: decisions after a restart match exactly (auto refits ARIMA warm)
    # decision_wait: the restarted run must take each decision at the same step
    kw = dict(window=10, rebalance_interval=50, horizon=50, predictor="sw_avg", decision_wait=1)
    with moeplace.Runtime(COMM, L, E, S3, **kw) as rt:
        ref = _steps(rt, 1, 160)
    with moeplace.Runtime(COMM, L, E, S3, **kw) as rt:
        got = _steps(rt, 1, 73)
        rt.save(path)  # mid-window
    assert ref[73] != ref[160], "the load should change the placement after the save"
    with moeplace.Runtime(COMM, L, E, S3, resume=path, **kw) as rt:
        assert tuple(a.tobytes() for a in rt.get_placement()) == ref[73]
        assert rt.stats()["steps"] == 73
        got.update(_steps(rt, 74, 160))
    assert got == ref
    # a damaged copy, another shape: refused on every rank
    bad = COMM.bcast(str(tmp_path / "bad.ckpt"))
    if COMM.rank == 0:
        data = bytearray(open(path, "rb").read())
        data[len(data) // 2] ^= 1
        open(bad, "wb").write(bytes(data))
    COMM.barrier()
    with pytest.raises(moeplace.Error) as e:
        moeplace.Runtime(COMM, L, E, S3, resume=bad, **kw)
    assert e.value.status == moeplace.ERR_FORMAT and "checksum" in e.value.message
    with pytest.raises(moeplace.Error) as e:
        moeplace.Runtime(COMM, L, E, 2, resume=path, **kw)
    assert e.value.status == moeplace.ERR_MISMATCH
    with pytest.raises(TypeError):
        moeplace.Runtime(COMM, L, E, S3, resume=42)


# layer 0: expert 0 on both ranks, layer 1: experts 3 and 1 on both
_REPLICATED = np.array([[[0, 1, 2], [3, 0, -1]], [[3, 1, 0], [2, 1, 3]]])
_SHARES = np.array([[[0.5, 1, 1], [1, 0.5, 0]], [[0.5, 0.5, 1], [1, 0.5, 0.5]]])


def test_sync_replicas_makes_replicas_identical():
    bufs = [[np.full(100, 10 * COMM.rank + s, np.float32) for s in range(S3)] for _ in range(L)]
    with moeplace.Runtime(COMM, L, E, S3) as rt:
        rt.apply_placement(_REPLICATED, _SHARES)  # nothing registered: placement only
        for l in range(L):
            for s in range(S3):
                rt.register_buffer(l, s, bufs[l][s])
        count, differ = rt.sync_replicas(copy=False)
        assert count == 3 and differ.tolist() == [[True, False, False, False],
                                                  [False, True, False, True]]
        assert bufs[0][0][0] == 10 * COMM.rank  # check mode changed nothing
        assert rt.sync_replicas()[0] == 3
        assert rt.sync_replicas(copy=False)[0] == 0
        # every replica now holds the primary's values (rank 0's, slot order)
        count, rank, slot, share = rt.routing()
        for l in range(L):
            for s in range(S3):
                e, _ = rt.local_expert(l, s)
                if e >= 0:
                    assert np.all(bufs[l][s] == 10 * rank[l, e, 0] + slot[l, e, 0])


def test_replica_groups_sum_gradients():
    with moeplace.Runtime(COMM, L, E, S3) as rt:
        rt.apply_placement(_REPLICATED, _SHARES)
        groups = moeplace.ReplicaGroups(rt, COMM)
        assert groups.ranks(0, 0) == (0, 1) and groups.ranks(0, 2) == (0,)
        assert groups.ranks(1, 3) == (0, 1) and groups.ranks(1, 2) == (1,)
        grads, want = {}, {}
        for l in range(L):
            for s in range(S3):
                e, _ = rt.local_expert(l, s)
                if e < 0:
                    continue
                # two tensors per expert; rank r holds (r + 1) * (e + 1)
                g = [np.full(7, (COMM.rank + 1) * (e + 1.0)), np.full((2, 3), COMM.rank + 1.0)]
                grads[l, s] = g
                k = len(groups.ranks(l, e))
                f = 3.0 if k == 2 else COMM.rank + 1.0  # 1 + 2 over both ranks
                want[l, s] = (f * (e + 1.0), f)
        groups.allreduce(grads)
        for key, (a, b) in grads.items():
            assert np.all(a == want[key][0]) and np.all(b == want[key][1]), key
        # a rebalance changes the groups: they follow
        rt.apply_placement(np.array([[[0, 1, 2], [3, -1, -1]], [[0, 1, 2], [3, 0, -1]]]),
                           np.array([[[1, 1, 1], [1, 0, 0]], [[0.5, 1, 1], [1, 0.5, 0]]]))
        assert groups.ranks(0, 0) == (0,) and groups.ranks(1, 0) == (0, 1)
        g = {(l, s): [np.ones(3)] for l in range(L) for s in range(S3)
             if rt.local_expert(l, s)[0] >= 0}
        groups.allreduce(g)
        for (l, s), (a,) in g.items():
            assert a[0] == len(groups.ranks(l, rt.local_expert(l, s)[0]))
        groups.free()
        with pytest.raises(TypeError):
            groups.allreduce({(0, 0): ["not an array"]})


def test_communicator_checks():
    sub = COMM.Split(COMM.rank % 1, COMM.rank)  # a real communicator, not WORLD
    with moeplace.Runtime(sub, L, E, S) as rt:
        assert rt.size == sub.size
    sub.Free()
    for bad in (COMM.Get_group(), object(), 3, None):
        with pytest.raises(TypeError):
            moeplace.Runtime(bad, L, E, S)
    with pytest.raises(ValueError):
        moeplace.Runtime(MPI.COMM_NULL, L, E, S)
    with pytest.raises(TypeError):
        moeplace.Runtime(COMM, L, E, S, resume=3.5)
    with pytest.raises(moeplace.Error) as e:  # the C layer's own check, on every rank
        moeplace.Runtime(COMM, L, E, 9)
    assert e.value.status == moeplace.ERR_ARG and "slots_per_rank" in e.value.message


def test_plan_only_mode():
    with moeplace.Runtime(COMM, L, E, S3, plan_only=1) as rt:
        for l in range(L):
            for s in range(S3):
                rt.register_size(l, s, 1 << 20)  # a GPU expert: its size only
        old, _ = rt.get_placement()
        info = rt.apply_placement(_REPLICATED, _SHARES)
        assert info.plan_pending and not info.rebalanced
        plan = rt.pending_plan()
        assert len(plan) == info.moves > 0 and plan.dtype == moeplace.TRANSFER_DTYPE
        for t in plan:  # from a slot holding the expert now to one holding it next
            assert old.reshape(L, -1)[t["layer"], t["src_slot"]] == t["expert"]
            assert _REPLICATED.reshape(L, -1)[t["layer"], t["dst_slot"]] == t["expert"]
        assert np.array_equal(rt.get_placement()[0], old)
        assert np.array_equal(rt.pending_placement()[0], _REPLICATED)
        with pytest.raises(moeplace.Error) as e:
            rt.step()
        assert e.value.status == moeplace.ERR_STATE and "confirm" in e.value.message
        rt.confirm(True)
        assert np.array_equal(rt.get_placement()[0], _REPLICATED)
        rt.apply_placement(old)
        with pytest.raises(moeplace.Error) as e:  # rank 1's transfers failed
            rt.confirm(COMM.rank == 0)
        assert e.value.status == moeplace.ERR_VERIFY
        assert np.array_equal(rt.get_placement()[0], _REPLICATED)
        with pytest.raises(moeplace.Error):
            rt.pending_plan()  # released
    with moeplace.Runtime(COMM, L, E, S3) as rt:
        with pytest.raises(moeplace.Error):  # sizes only in plan-only mode
            rt.register_size(0, 0, 64)
