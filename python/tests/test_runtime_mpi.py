"""The runtime from Python on 2 ranks (tests/python.sh mpi runs this file
under mpirun). Every test makes the same collective calls on every rank;
the mpi_lockstep fixture (conftest.py) makes every rank fail a test that failed on one."""

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
import moeplace  # noqa: E402

COMM = MPI.COMM_WORLD
L, E, S = 2, 4, 2


pytestmark = pytest.mark.usefixtures("mpi_lockstep")


def _fill(rt, bufs):
    for l in range(L):
        for s in range(S):
            e, _ = rt.local_expert(l, s)
            bufs[l][s][:] = e


def test_create_and_initial_placement():
    assert COMM.size == 2, "run with mpirun -np 2"
    with moeplace.Runtime(COMM, L, E, S) as rt:
        assert (rt.rank, rt.size) == (COMM.rank, 2)
        se, sh = rt.get_placement()
        assert se.shape == (L, 2, S) and se.dtype == np.int32
        assert se.reshape(L, -1).tolist() == [[0, 1, 2, 3]] * L and np.all(sh == 1)
        count, rank, slot, share = rt.routing()
        assert count.tolist() == [[1] * E] * L
        assert rank[0, :, 0].tolist() == [0, 0, 1, 1] and slot[0, :, 0].tolist() == [0, 1, 0, 1]
        assert np.all(rank[:, :, 1:] == -1) and np.all(share[:, :, 0] == 1)
        assert rt.local_expert(1, 1) == (2 * COMM.rank + 1, 1.0)
        assert rt.topology(COMM.rank)[0] >= 0
        assert rt.config["window"] == 10
        # the default predictor's choice (tests/runtime decider_cpus checks
        # it against the CPUs): one of two, the same on every rank
        assert rt.predictor() in ("auto", "sw_avg")
        assert COMM.allgather(rt.predictor()) == [rt.predictor()] * 2
    with moeplace.Runtime(COMM, L, E, S, predictor="lstm") as rt:
        assert rt.predictor() == "lstm"  # configured: kept
    with pytest.raises(ValueError):
        rt.step()  # destroyed


def test_apply_placement_moves_registered_buffers():
    # per slot: a float32 array (weights) and a bytearray (optimizer state)
    weights = [[np.zeros(256, np.float32) for _ in range(S)] for _ in range(L)]
    state = [[bytearray(64) for _ in range(S)] for _ in range(L)]
    with moeplace.Runtime(COMM, L, E, S) as rt:
        for l in range(L):
            for s in range(S):
                rt.register_buffer(l, s, weights[l][s])
                rt.register_buffer(l, s, state[l][s])
        _fill(rt, weights)
        with pytest.raises(BufferError):  # registered memory cannot move
            state[0][0].extend(b"x")
        for l in range(L):
            for s in range(S):
                state[l][s][:] = bytes([rt.local_expert(l, s)[0]]) * 64
        # swap the experts of the two ranks in layer 0, keep layer 1
        new = np.array([[[2, 3], [0, 1]], [[0, 1], [2, 3]]])
        info = rt.apply_placement(new)
        assert info.moves == 4 and info.bytes_moved > 0
        se, _ = rt.get_placement()
        assert np.array_equal(se, new)
        for l in range(L):
            for s in range(S):
                e = new[l][COMM.rank][s]
                assert rt.local_expert(l, s)[0] == e
                assert np.all(weights[l][s] == e) and state[l][s] == bytes([e]) * 64
                assert np.array_equal(rt.buffer(l, s, 0, np.float32), weights[l][s])


def test_loop_rebalances_owned_buffers():
    router = np.array([0.5, 0.3, 0.1, 0.1])
    with moeplace.Runtime(COMM, L, E, S, window=10, rebalance_interval=100,
                          horizon=100) as rt:
        views = [[rt.alloc_buffer(l, s, 1024 * 4, np.float32) for s in range(S)]
                 for l in range(L)]
        assert views[0][0].shape == (1024,) and np.all(views[0][0] == 0)
        _fill(rt, views)
        rebalanced = 0
        last = None
        table = rt.routing()
        per_expert = (2048 * router).astype(np.int64)  # this rank's router output
        for _ in range(300):
            count, rank, slot, share = table
            for l in range(L):
                # a trainer's dispatch: whole tokens per (rank, slot) by the
                # shares, exchanged; each rank records what its slots got
                send = moeplace.dispatch_counts(per_expert, count[l], rank[l], slot[l],
                                                share[l], rt.size, S)
                got = np.sum(COMM.alltoall(list(send)), axis=0)
                rt.record(l, got.astype(np.uint64))
            info = rt.step()
            if info.rebalanced:
                rebalanced += 1
                last = info
                table = count, rank, slot, share = rt.routing()
                for l in range(L):
                    for e in range(E):
                        assert abs(share[l, e, :count[l, e]].sum() - 1) < 1e-6
                        for i in range(count[l, e]):
                            if rank[l, e, i] == COMM.rank:
                                v = rt.buffer(l, slot[l, e, i], 0, np.float32)
                                assert np.all(v == e)
        st = rt.stats()
        assert st["steps"] == 300 and st["rebalances"] == rebalanced > 0
        if COMM.rank == 0:  # the coordinator's forecast: the skew was corrected
            assert last.predicted_imbalance_new < last.predicted_imbalance_old


def test_bad_input_is_local_and_raises():
    with moeplace.Runtime(COMM, L, E, S) as rt:
        with pytest.raises(ValueError):
            rt.record(0, [1, 2, 3])  # wrong shape
        with pytest.raises(ValueError):
            rt.record(0, [-1, 2])
        with pytest.raises(TypeError):
            rt.record(0, [1.5, 2.0])
        with pytest.raises(ValueError):
            rt.register_buffer(0, 0, b"read-only")
        with pytest.raises(TypeError):
            rt.register_buffer(0, 0, 42)
        with pytest.raises(ValueError):
            rt.register_buffer(0, 0, np.zeros((4, 4))[:, 0])  # not contiguous
        with pytest.raises(ValueError):
            rt.register_buffer(0, 5, bytearray(8))  # slot out of range
        with pytest.raises(moeplace.Error) as e:
            rt.record(7, [1, 2])  # layer out of range: C says so
        assert e.value.status == -1
        rt.step()
    with pytest.raises(TypeError):
        moeplace.Runtime(COMM, L, E, S, bogus=1)
    with pytest.raises(TypeError):
        moeplace.Runtime(object(), L, E, S)


def test_mismatched_config_fails_on_every_rank():
    with pytest.raises(moeplace.Error) as e:
        moeplace.Runtime(COMM, L, E, S, migration_tradeoff=0.05 + COMM.rank)
    assert e.value.status == moeplace.ERR_MISMATCH
    assert e.value.message


def test_torch_tensor_buffer():
    torch = pytest.importorskip("torch")
    # expert weights as nn.Parameters (requires_grad) and an Adam-like
    # moment as a plain tensor
    w = [[torch.nn.Parameter(torch.zeros(64)) for _ in range(S)] for _ in range(L)]
    m = [[torch.zeros(64, dtype=torch.float64) for _ in range(S)] for _ in range(L)]
    with moeplace.Runtime(COMM, L, E, S) as rt:
        for l in range(L):
            for s in range(S):
                rt.register_buffer(l, s, w[l][s])
                rt.register_buffer(l, s, m[l][s])
                with torch.no_grad():
                    w[l][s].fill_(rt.local_expert(l, s)[0])
                m[l][s].fill_(-rt.local_expert(l, s)[0])
        new = np.array([[[2, 3], [0, 1]], [[0, 1], [2, 3]]])
        rt.apply_placement(new)
        for s in range(S):
            assert torch.all(w[0][s] == float(new[0][COMM.rank][s]))
            assert torch.all(m[0][s] == -float(new[0][COMM.rank][s]))
        with pytest.raises(ValueError):  # not contiguous
            rt.register_buffer(0, 0, torch.zeros(4, 4).t())
