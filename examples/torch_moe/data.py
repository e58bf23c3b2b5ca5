"""The training text: a few MB of bytes from files every Debian python3
installs (the interpreter's own standard library, *.py), and the batches.

A batch depends only on (seed, step, rank): no loader state to checkpoint,
and a resumed run sees exactly the batches of an uninterrupted one."""

import glob
import os
import sysconfig

import numpy as np
import torch


def load_corpus(max_bytes=4 << 20, root=None):
    """uint8 [n]: the stdlib's top-level *.py files in name order, joined,
    at most max_bytes. root: another directory of text files (*.py)."""
    root = root or sysconfig.get_paths()["stdlib"]
    files = sorted(glob.glob(os.path.join(root, "*.py")))
    if not files:
        raise FileNotFoundError("no *.py files in %s (pass --corpus DIR)" % root)
    chunks, n = [], 0
    for path in files:
        with open(path, "rb") as f:
            b = f.read(max_bytes - n)
        chunks.append(b)
        n += len(b)
        if n >= max_bytes:
            break
    return np.frombuffer(b"".join(chunks), dtype=np.uint8)


def batch(corpus, seed, step, rank, batch_size, seq_len):
    """(x, y): int64 [batch_size][seq_len] windows of the corpus at random
    offsets drawn from (seed, step, rank); y is x shifted by one byte."""
    rng = np.random.default_rng([seed, step, rank])
    off = rng.integers(0, corpus.size - seq_len - 1, size=batch_size)
    idx = off[:, None] + np.arange(seq_len + 1)[None, :]   # [B][T+1]
    w = torch.from_numpy(corpus[idx].astype(np.int64))
    return w[:, :-1], w[:, 1:]
