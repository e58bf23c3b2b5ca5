"""Traces to and from numpy."""

import gzip
import os

import numpy as np
import pytest

import moeplace

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PERL = os.path.join(SRC, "data", "perl-L4-E8-top1-4k.csv.gz")


def test_read_real_trace():
    steps, counts, meta = moeplace.read_trace(PERL)
    assert counts.dtype == np.uint64 and steps.dtype == np.int64
    assert counts.shape[1:] == (4, 8) and counts.shape[0] == steps.shape[0] > 100
    assert np.all(np.diff(steps) > 0)
    # top-1, 1024 tokens per step: every layer's row sums to the tokens
    assert np.all(counts.sum(axis=2) == 1024)
    assert "model" in meta
    # the same numbers as the CSV itself
    with gzip.open(PERL, "rt") as f:
        rows = [l for l in f if l[0].isdigit()]
    first = [int(x) for x in rows[0].split(",")]
    assert first[0] == steps[0] and list(counts[0, first[1]]) == first[2:]


def test_write_read_roundtrip(tmp_path):
    rng = np.random.default_rng(1)
    counts = rng.integers(0, 1000, size=(7, 2, 3)).astype(np.uint64)
    steps = np.arange(0, 70, 10)
    for name in ("t.csv", "t.csv.gz"):
        path = tmp_path / name
        moeplace.write_trace(path, steps, counts, meta={"model": "test", "note": 1})
        s, c, meta = moeplace.read_trace(path)
        assert np.array_equal(s, steps) and np.array_equal(c, counts)
        assert meta["model"] == "test" and meta["note"] == "1"


def test_reader_windows_and_progress(tmp_path):
    counts = np.ones((5, 1, 2), dtype=np.int64)
    moeplace.write_trace(tmp_path / "t.csv", np.arange(5), counts)
    with moeplace.Trace(tmp_path / "t.csv") as t:
        assert (t.layers, t.experts) == (1, 2)
        first, n, tot = t.read_window(3)
        assert (first, n) == (0, 3) and tot.tolist() == [[3, 3]]
        first, n, tot = t.read_window(3)
        assert (first, n) == (3, 2)
        assert t.read_window(3) is None
        assert t.progress["steps_read"] == 5 and t.progress["stride"] == 1
    with pytest.raises(ValueError):
        t.read_step()  # closed


def test_from_bytes_and_format_error():
    t = moeplace.Trace.from_bytes(b"step,layer,e0,e1\n0,0,1,2\n1,0,3,4\n", "mem")
    s, c = t.read_all()
    assert s.tolist() == [0, 1] and c[:, 0].tolist() == [[1, 2], [3, 4]]
    with pytest.raises(moeplace.Error) as e:
        moeplace.Trace.from_bytes(b"step,layer,e0,e1\n0,0,1\n", "bad.csv").read_all()
    assert e.value.status == -4 and "bad.csv:2" in e.value.message


def test_writer_step_range(tmp_path):
    # ctypes wrapped 2**64 + 6 to step 6 through int64
    w = moeplace.TraceWriter(str(tmp_path / "x.csv"), 1, 2)
    w.write_step(5, np.ones((1, 2), int))
    for bad in (2**64 + 6, 2**63, -1):
        with pytest.raises(ValueError, match="step must be in"):
            w.write_step(bad, np.ones((1, 2), int))
    w.abort()


def test_missing_file():
    with pytest.raises(moeplace.Error) as e:
        moeplace.read_trace("/nonexistent/x.csv")
    assert e.value.status == -3 and "/nonexistent/x.csv" in str(e.value)


def test_writer_is_atomic(tmp_path):
    path = tmp_path / "t.csv"
    with pytest.raises(RuntimeError):
        with moeplace.TraceWriter(path, 1, 2) as w:
            w.write_step(0, [[1, 2]])
            raise RuntimeError("trainer died")
    assert not os.path.exists(path) and os.listdir(tmp_path) == []
    # decreasing steps are refused by C, the partial file is not left
    with pytest.raises(moeplace.Error):
        moeplace.write_trace(path, [1, 0], np.zeros((2, 1, 2), np.uint64))
    assert os.listdir(tmp_path) == []


def test_bad_input_is_refused_before_c(tmp_path):
    p = tmp_path / "t.csv"
    with pytest.raises(ValueError):
        moeplace.write_trace(p, [0], np.zeros((1, 2), np.uint64))  # not 3-D
    with pytest.raises(ValueError):
        moeplace.write_trace(p, [0], -np.ones((1, 1, 2), np.int64))  # negative
    with pytest.raises(TypeError):
        moeplace.write_trace(p, [0], np.zeros((1, 1, 2), np.float64))  # not integers
    with pytest.raises(ValueError):
        moeplace.write_trace(p, [0, 1], np.zeros((1, 1, 2), np.uint64))  # steps shape
    with pytest.raises(TypeError):
        moeplace.Trace(3.5)
    with moeplace.TraceWriter(p, 1, 2) as w:
        with pytest.raises(ValueError):
            w.write_step(0, [[1, 2, 3]])
        w.write_step(0, [[1, 2]])
    assert moeplace.read_trace(p)[1].tolist() == [[[1, 2]]]
