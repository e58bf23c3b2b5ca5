"""optimizer_state: the optimizer's tensors for a parameter, created before
the first step with torch's own initial values (training unchanged)."""

import pytest

torch = pytest.importorskip("torch")
import moeplace  # noqa: E402


def _train(opt_cls, force, steps=5, **kw):
    torch.manual_seed(0)
    lin = torch.nn.Linear(8, 4)
    opt = opt_cls(lin.parameters(), lr=0.1, **kw)
    forced = [moeplace.optimizer_state(opt, p) for p in lin.parameters()] if force else None
    x = torch.randn(16, 8)
    for _ in range(steps):
        opt.zero_grad()
        lin(x).pow(2).mean().backward()
        opt.step()
    return lin, opt, forced


@pytest.mark.parametrize("opt_cls,kw,keys", [
    (torch.optim.Adam, {}, ["exp_avg", "exp_avg_sq", "step"]),
    (torch.optim.Adam, {"amsgrad": True}, ["exp_avg", "exp_avg_sq", "max_exp_avg_sq", "step"]),
    (torch.optim.AdamW, {"weight_decay": 0.1}, ["exp_avg", "exp_avg_sq", "step"]),
    (torch.optim.SGD, {"momentum": 0.9}, ["momentum_buffer"]),
])
def test_forced_state_trains_identically(opt_cls, kw, keys):
    ref, ref_opt, _ = _train(opt_cls, False, **kw)
    got, opt, forced = _train(opt_cls, True, **kw)
    for p, q in zip(ref.parameters(), got.parameters()):
        assert torch.equal(p, q)  # bit-identical to torch's lazy creation
    for p, tensors in zip(got.parameters(), forced):
        st = opt.state[p]
        assert sorted(k for k in st if torch.is_tensor(st[k])) == keys
        # the tensors returned before training are the ones the optimizer used
        assert all(t is st[k] for t, k in zip(tensors, keys))


def test_state_values_before_a_step():
    lin = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(lin.parameters())
    avg, sq, step = moeplace.optimizer_state(opt, lin.weight)
    assert torch.equal(avg, torch.zeros(2, 3)) and torch.equal(sq, torch.zeros(2, 3))
    assert step.shape == () and float(step) == 0.0
    # a second call returns the same tensors, not new ones
    assert [t is u for t, u in zip(moeplace.optimizer_state(opt, lin.weight),
                                   (avg, sq, step))] == [True] * 3


def test_plain_sgd_has_no_state():
    lin = torch.nn.Linear(3, 2)
    assert moeplace.optimizer_state(torch.optim.SGD(lin.parameters(), lr=0.1), lin.weight) == []


def test_refused():
    lin = torch.nn.Linear(3, 2)
    with pytest.raises(ValueError, match="dampening"):
        moeplace.optimizer_state(torch.optim.SGD(lin.parameters(), lr=0.1, momentum=0.9,
                                                 dampening=0.5), lin.weight)
    with pytest.raises(TypeError, match="one optimizer step"):
        moeplace.optimizer_state(torch.optim.RMSprop(lin.parameters()), lin.weight)
    with pytest.raises(ValueError, match="param_group"):
        moeplace.optimizer_state(torch.optim.Adam([lin.bias]), lin.weight)
    with pytest.raises(TypeError):
        moeplace.optimizer_state(object(), lin.weight)
    with pytest.raises(TypeError):
        moeplace.optimizer_state(torch.optim.Adam(lin.parameters()), [1.0])
