"""The tensors a torch optimizer keeps for a parameter, made to exist before
the first optimizer step, so that they can be registered with the runtime
and migrate with the parameter (docs/PYTHON.md, "Optimizer state").

torch creates optimizer state lazily, inside the first ``optimizer.step()``
that sees a gradient for the parameter. A rebalance before that step (or a
replica that got no tokens yet) would move the weights without their state,
and the state created later would sit in buffers the runtime never heard
of. optimizer_state() creates the state now, with the values torch would
give it, so that the first real step finds it and uses it as is:

  - Adam, AdamW: ``step`` = ``torch.tensor(0.)`` (``zeros((1,))`` with
    ``capturable`` or ``fused``), ``exp_avg`` and ``exp_avg_sq`` (and
    ``max_exp_avg_sq`` with ``amsgrad``) = ``zeros_like(param)``. These are
    exactly torch's initial values, so training is bit-identical to a run
    where torch created them.
  - SGD with momentum: ``momentum_buffer`` = ``zeros_like(param)``. torch
    would create it as a copy of the first gradient; with ``dampening`` 0
    (the default) ``momentum * 0 + grad`` is that same copy, so training is
    identical. With ``dampening`` != 0 it is not: refused (ValueError).
  - SGD without momentum keeps no state (nothing to register).
  - Any other optimizer: its state must already exist (take one
    optimizer step first), else TypeError.

Torch is imported only when these functions are called."""

__all__ = ["optimizer_state"]


def _group_of(optimizer, param):
    for g in optimizer.param_groups:
        for p in g["params"]:
            if p is param:
                return g
    raise ValueError("the parameter is not in any param_group of the optimizer")


def _init_state(optimizer, param, group):
    import torch
    name = type(optimizer).__name__
    state = optimizer.state[param]
    if isinstance(optimizer, (torch.optim.Adam, torch.optim.AdamW)):
        capturable = group.get("capturable", False) or group.get("fused", False)
        state["step"] = (torch.zeros((1,), dtype=torch.float, device=param.device)
                         if capturable else torch.tensor(0.))
        state["exp_avg"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        state["exp_avg_sq"] = torch.zeros_like(param, memory_format=torch.preserve_format)
        if group.get("amsgrad", False):
            state["max_exp_avg_sq"] = torch.zeros_like(param,
                                                       memory_format=torch.preserve_format)
    elif isinstance(optimizer, torch.optim.SGD):
        if group.get("momentum", 0) == 0:
            return
        if group.get("dampening", 0) != 0:
            raise ValueError("SGD with dampening != 0 creates its momentum buffer from the "
                             "first gradient; its state cannot be made in advance: take one "
                             "optimizer step before registering")
        state["momentum_buffer"] = torch.zeros_like(param,
                                                    memory_format=torch.preserve_format)
    else:
        raise TypeError("optimizer_state: %s creates its state lazily and moeplace cannot "
                        "create it in advance; take one optimizer step before registering"
                        % name)


def optimizer_state(optimizer, param):
    """The state tensors ``optimizer`` keeps for ``param``, in a fixed order
    (sorted by state key: the same on every rank), creating them first the
    way torch would if they do not exist yet (see the module docstring for
    Adam, AdamW and SGD). Non-tensor entries are skipped. Returns a list of
    tensors; register each with Runtime.register_buffer (or use
    Runtime.register_parameter)."""
    import torch
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise TypeError("optimizer must be a torch.optim.Optimizer, not %s"
                        % type(optimizer).__name__)
    if not isinstance(param, torch.Tensor):
        raise TypeError("param must be a torch tensor (nn.Parameter), not %s"
                        % type(param).__name__)
    group = _group_of(optimizer, param)
    if len(optimizer.state.get(param, {})) == 0:
        _init_state(optimizer, param, group)
    state = optimizer.state.get(param, {})
    return [state[k] for k in sorted(state) if isinstance(state[k], torch.Tensor)]
