#!/usr/bin/python3
"""Same-size PyTorch reference for bench/bench_lstm (docs/BENCHMARKS.md).

Times one training step of LAYERS independent torch.nn.LSTM(4, HID) +
nn.Linear(HID, 1) models (one per MoE layer, like the C predictor): forward
over a [T][BATCH][4] window from a zero state, the masked MSE of
predict/lstm_net.h (first BURN_IN steps masked), backward, torch.optim.Adam,
and, separately, one forecast-sized forward (no grad) of EXPERTS sequences.
Minimum and median of REPEATS runs after one warm-up run, float32, at the thread count
given (default: torch's default).

Usage: scripts/bench_lstm_torch.py [--threads N] [LAYERS EXPERTS BATCH REPEATS]
"""
import argparse
import statistics
import time

import torch

IN, HID, T, BURN_IN = 4, 16, 32, 8


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=0, help="torch.set_num_threads (0: default)")
    ap.add_argument("layers", type=int, nargs="?", default=64)
    ap.add_argument("experts", type=int, nargs="?", default=256)
    ap.add_argument("batch", type=int, nargs="?", default=64)
    ap.add_argument("repeats", type=int, nargs="?", default=5)
    a = ap.parse_args()
    if a.threads > 0:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    models = []
    for _ in range(a.layers):
        lstm, head = torch.nn.LSTM(IN, HID), torch.nn.Linear(HID, 1)
        opt = torch.optim.Adam(list(lstm.parameters()) + list(head.parameters()), lr=3e-3)
        models.append((lstm, head, opt))
    x = torch.rand(T, a.batch, IN) * 2 - 1
    target = torch.rand(T, a.batch) - 0.5
    mask = torch.ones(T, a.batch)
    mask[:BURN_IN] = 0
    msum = mask.sum()

    def train_all():
        for lstm, head, opt in models:
            opt.zero_grad()
            h, _ = lstm(x)
            y = head(h).squeeze(-1)
            loss = (mask * (y - target) ** 2).sum() / msum
            loss.backward()
            torch.nn.utils.clip_grad_norm_(list(lstm.parameters()) + list(head.parameters()), 1.0)
            opt.step()

    xf = torch.rand(T, a.experts, IN) * 2 - 1

    def forecast_all():
        with torch.no_grad():
            for lstm, head, _ in models:
                h, _ = lstm(xf)
                head(h[-1])

    def timed(fn):
        fn()
        ts = []
        for _ in range(a.repeats):
            t0 = time.perf_counter()
            fn()
            ts.append(time.perf_counter() - t0)
        return min(ts), statistics.median(ts)

    (tt, tt_med), (tf, tf_med) = timed(train_all), timed(forecast_all)
    print(f"torch {torch.__version__} threads {torch.get_num_threads()}:\n"
          f"torch train_step ({a.layers} layers x batch {a.batch} x T {T}): min {tt * 1e3:.3f} ms, "
          f"median {tt_med * 1e3:.3f} ms  ({tt * 1e6 / a.layers:.1f} us per layer)\n"
          f"torch forecast forward ({a.layers} layers x {a.experts} experts): "
          f"min {tf * 1e3:.3f} ms, median {tf_med * 1e3:.3f} ms")


if __name__ == "__main__":
    main()
