"""Plain Python/numpy reader of moeplace traces (docs: trace-format.md), for
the fixture generators and plotting scripts. Deliberately independent of the
C reader so that fixtures made with it check the C code.

    from trace_csv import load_counts, window_proportions
    steps, counts = load_counts("trace.csv.gz")   # counts: [T][L][E] int64
    q = window_proportions(counts, 10)            # [N][L][E], complete windows only
"""
import gzip

import numpy as np


def load_counts(path):
    opener = gzip.open if path.endswith(".gz") else open
    rows, header = [], None
    with opener(path, "rt") as f:
        for line in f:
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            if header is None:
                header = line.split(",")
                continue
            rows.append([int(x) for x in line.split(",")])
    a = np.array(rows, dtype=np.int64)
    steps = np.unique(a[:, 0])
    layers, experts = int(a[:, 1].max()) + 1, len(header) - 2
    counts = np.zeros((len(steps), layers, experts), dtype=np.int64)  # [T][L][E]
    counts[np.searchsorted(steps, a[:, 0]), a[:, 1], :] = a[:, 2:]
    return steps, counts


def window_proportions(counts, window):
    """Proportions per complete window of `window` steps; a window in which a
    layer saw no tokens counts as uniform (1/E), as in common/trace_stats.h."""
    T, L, E = counts.shape
    n = T // window
    win = counts[: n * window].reshape(n, window, L, E).sum(axis=1).astype(np.float64)
    sums = win.sum(axis=2, keepdims=True)
    return np.where(sums > 0, win / np.where(sums > 0, sums, 1), 1.0 / E)  # [N][L][E]
