"""What a trainer needs from the runtime, on 2 ranks (tests/python.sh mpi):
many buffers per slot with the optimizer state, per-expert records, the
dispatch split, replica consistency and groups, checkpoint/restart. Every
test makes the same collective calls on every rank; the lockstep fixture
makes every rank fail a test that failed on one."""

import numpy as np
import pytest

MPI = pytest.importorskip("mpi4py.MPI")
import moeplace  # noqa: E402

COMM = MPI.COMM_WORLD
L, E, S = 2, 4, 2


@pytest.fixture(autouse=True)
def lockstep(request):
    yield
    rep = getattr(request.node, "rep_call", None)
    failed = int(bool(rep is not None and rep.failed))
    if COMM.allreduce(failed) and not failed:
        pytest.fail("the test failed on another rank")


def _expert(torch, e):
    """An expert (two Linear layers) whose weights depend on e only."""
    torch.manual_seed(100 + e)
    return torch.nn.Sequential(torch.nn.Linear(6, 5), torch.nn.ReLU(), torch.nn.Linear(5, 6))


def test_parameters_and_adam_state_migrate_together():
    torch = pytest.importorskip("torch")
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
