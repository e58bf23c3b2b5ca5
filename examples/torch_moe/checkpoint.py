"""Checkpoints of the trainer: one torch.save file per rank (this rank's
slots and optimizer state, the non-expert parameters, the losses so far),
the runtime's own checkpoint (Runtime.save: placement, shares, counters,
load history), and DIR/latest.json naming the last complete checkpoint and
the placement it was taken under. Every file is written to a temporary name and renamed,
and latest.json only after every rank wrote its file, so a job killed at
any moment leaves the previous checkpoint intact."""

import json
import os
import shutil

import torch


def _atomic(path, write):
    tmp = path + ".tmp"
    write(tmp)
    os.replace(tmp, path)


def runtime_file(directory, step):
    return os.path.join(directory, "step-%08d" % step, "runtime.ckpt")


def save(comm, directory, step, model, opt, extra, rt):
    """Collective, after Runtime.step() of `step`. extra: a dict of plain
    values saved with this rank's state."""
    d = os.path.join(directory, "step-%08d" % step)
    os.makedirs(d, exist_ok=True)
    rt.save(runtime_file(directory, step))         # collective; written atomically
    placement = rt.get_placement()
    params = [p for g in opt.param_groups for p in g["params"]]
    state = {"model": model.state_dict(),
             "optim": [opt.state[p] for p in params],
             "extra": extra}
    _atomic(os.path.join(d, "rank-%d.pt" % comm.rank), lambda t: torch.save(state, t))
    comm.Barrier()
    if comm.rank == 0:
        meta = {"step": step, "ranks": comm.size, "phy2log": placement[0].tolist(),
                "share": placement[1].tolist()}

        def write(t):
            with open(t, "w") as f:
                json.dump(meta, f)
                f.flush()
                os.fsync(f.fileno())
        old = latest(directory)
        _atomic(os.path.join(directory, "latest.json"), write)
        if old and old["step"] != step:
            shutil.rmtree(os.path.join(directory, "step-%08d" % old["step"]), ignore_errors=True)
    comm.Barrier()


def latest(directory):
    """The metadata of the last complete checkpoint, or None."""
    try:
        with open(os.path.join(directory, "latest.json")) as f:
            return json.load(f)
    except FileNotFoundError:
        return None


def find(comm, directory):
    """latest.json of `directory`, checked against the job."""
    meta = latest(directory)
    if meta is None:
        raise FileNotFoundError("no checkpoint in %s (no latest.json)" % directory)
    if meta["ranks"] != comm.size:
        raise ValueError("checkpoint %s was taken on %d ranks, this job has %d"
                         % (directory, meta["ranks"], comm.size))
    return meta


def load(comm, directory, meta, model, opt):
    """Copies this rank's state saved at meta["step"] INTO the existing
    parameters and optimizer state tensors (the runtime holds their
    addresses). Returns the saved extra."""
    path = os.path.join(directory, "step-%08d" % meta["step"], "rank-%d.pt" % comm.rank)
    state = torch.load(path)
    model.load_state_dict(state["model"])          # copies in place
    params = [p for g in opt.param_groups for p in g["params"]]
    with torch.no_grad():
        for p, saved in zip(params, state["optim"]):
            for k, v in saved.items():
                opt.state[p][k].copy_(v)
    return state["extra"]
