"""Expert-load traces (docs/trace-format.md) as numpy arrays."""

import ctypes

import numpy as np

from . import _lib
from ._lib import check
from ._util import NoCopy, Owned, array, as_int, as_str, path_bytes, ptr

__all__ = ["Trace", "read_trace", "write_trace", "TraceWriter"]


class Trace(Owned):
    """A streaming trace reader over moeplace_trace_open(): ``path`` may end
    in ``.gz``; ``"-"`` is stdin. Iterating yields ``(step, counts)`` with
    counts a uint64 array [layers][experts]. Use as a context manager, or
    call close()."""
    _kind = "trace"
    _destroy = "moeplace_trace_close"

    def __init__(self, path):
        """Opens the trace and reads its header and first step."""
        lib = _lib.core()
        self._lib = lib
        self._h = ctypes.c_void_p()
        check(lib.moeplace_trace_open(ctypes.byref(self._h), path_bytes(path)))
        self.layers = lib.moeplace_trace_layers(self._h)
        self.experts = lib.moeplace_trace_experts(self._h)

    @classmethod
    def from_bytes(cls, data, name="<memory>"):
        """A reader over an uncompressed trace held in ``data`` (bytes)."""
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise TypeError("data must be bytes, not %s" % type(data).__name__)
        self = cls.__new__(cls)
        lib = _lib.core()
        self._lib = lib
        self._data = bytes(data)  # the reader keeps pointing at it
        self._h = ctypes.c_void_p()
        check(lib.moeplace_trace_open_memory(ctypes.byref(self._h), self._data, len(self._data),
                                             as_str(name, "name").encode()))
        self.layers = lib.moeplace_trace_layers(self._h)
        self.experts = lib.moeplace_trace_experts(self._h)
        return self

    @property
    def name(self):
        """The name the trace was opened with."""
        return _lib.text(self._lib.moeplace_trace_name(self._handle()))

    @property
    def meta(self):
        """The "# key: value" metadata read so far, as a dict."""
        h = self._handle()
        out = {}
        for i in range(self._lib.moeplace_trace_meta_count(h)):
            m = self._lib.moeplace_trace_meta_get(h, i)
            out[_lib.text(m.key)] = _lib.text(m.value)
        return out

    @property
    def progress(self):
        """The reader's progress (moeplace_trace_progress) as a dict."""
        return _lib.struct_dict(self._lib.moeplace_trace_get_progress(self._handle()))

    def read_step(self):
        """The next ``(step, counts[layers][experts])``, or None at the end.
        Raises moeplace.Error on a malformed line (message "file:line: ...")."""
        h = self._handle()
        counts = np.empty((self.layers, self.experts), dtype=np.uint64)
        step = ctypes.c_int64()
        if check(self._lib.moeplace_trace_read_step(h, ctypes.byref(step), ptr(counts))) == 0:
            return None
        return step.value, counts

    def read_window(self, window):
        """Sums the next ``window`` steps: ``(first_step, steps_read, totals)``,
        or None at the end; steps_read < window only for the last window."""
        h = self._handle()
        window = as_int(window, "window", 1)
        totals = np.empty((self.layers, self.experts), dtype=np.uint64)
        first = ctypes.c_int64()
        n = ctypes.c_int()
        if check(self._lib.moeplace_trace_read_window(h, window, ctypes.byref(first),
                                                      ctypes.byref(n), ptr(totals))) == 0:
            return None
        return first.value, n.value, totals

    def __iter__(self):
        while True:
            s = self.read_step()
            if s is None:
                return
            yield s

    def read_all(self):
        """The remaining steps: ``(steps int64 [N], counts uint64 [N][L][E])``."""
        steps, counts = [], []
        for step, c in self:
            steps.append(step)
            counts.append(c)
        if not counts:
            return (np.empty(0, np.int64),
                    np.empty((0, self.layers, self.experts), np.uint64))
        return np.array(steps, dtype=np.int64), np.stack(counts)


def read_trace(path):
    """Reads a whole trace: ``(steps int64 [N], counts uint64 [N][L][E], meta dict)``."""
    with Trace(path) as t:
        steps, counts = t.read_all()
        return steps, counts, t.meta


class TraceWriter(NoCopy):
    """An atomic trace writer (moeplace_trace_writer_*): steps go to a
    temporary file beside ``path`` that commit() renames into place; leaving
    the ``with`` block by an exception (or abort()) removes it, so a failed
    write never leaves a half-written trace. ``.gz`` paths are compressed."""
    _kind = "trace writer"

    def __init__(self, path, layers, experts, meta=None):
        """Opens the writer for [layers][experts] counts; meta: a dict of
        "# key: value" comments written first."""
        lib = _lib.core()
        self._lib = lib
        self.layers = as_int(layers, "layers", 1)
        self.experts = as_int(experts, "experts", 1)
        meta = dict(meta or {})
        keep = []
        arr = (_lib.TraceMeta * max(1, len(meta)))()
        for i, (k, v) in enumerate(meta.items()):
            kb = as_str(k, "meta key").encode()
            vb = as_str(str(v), "meta value").encode()
            keep += [kb, vb]
            arr[i].key, arr[i].value = kb, vb
        self._h = ctypes.c_void_p()
        check(lib.moeplace_trace_writer_open(ctypes.byref(self._h), path_bytes(path),
                                             self.layers, self.experts, arr, len(meta)))

    def write_step(self, step, counts):
        """Writes one step: counts [layers][experts], non-negative integers;
        steps must not decrease."""
        if not self._h:
            raise ValueError("the writer is committed or aborted")
        step = int(step) if isinstance(step, (int, np.integer)) else None
        if step is None:
            raise TypeError("step must be an integer")
        if not 0 <= step < 2**63:  # ctypes would wrap it through int64
            raise ValueError("step must be in [0, 2**63), got %d" % step)
        c = array(counts, "uint64", (self.layers, self.experts), "counts")
        check(self._lib.moeplace_trace_writer_write_step(self._h, step, ptr(c)))

    def commit(self):
        """Flushes, syncs and renames the file into place; the writer is done."""
        if not self._h:
            raise ValueError("the writer is committed or aborted")
        h, self._h = self._h, ctypes.c_void_p()
        check(self._lib.moeplace_trace_writer_commit(h))

    def abort(self):
        """Removes the temporary file; the writer is done. Idempotent."""
        if getattr(self, "_h", None):
            h, self._h = self._h, ctypes.c_void_p()
            self._lib.moeplace_trace_writer_abort(h)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, *rest):
        if exc_type is None and self._h:
            self.commit()
        else:
            self.abort()

    def __del__(self):
        self.abort()


def write_trace(path, steps, counts, meta=None):
    """Writes ``counts`` [N][L][E] (non-negative integers) at ``steps`` [N]
    (non-decreasing) atomically to ``path``."""
    c = np.asarray(counts)
    if c.ndim != 3:
        raise ValueError("counts must have shape [steps][layers][experts], got %d dimensions"
                         % c.ndim)
    s = np.asarray(steps)
    if s.shape != (c.shape[0],):
        raise ValueError("steps must have shape [%d], got %s" % (c.shape[0], s.shape))
    if s.dtype.kind not in "iu":
        raise TypeError("steps must be integers, got dtype %s" % s.dtype)
    c = array(c, "uint64", c.shape, "counts")
    with TraceWriter(path, c.shape[1], c.shape[2], meta) as w:
        for i in range(c.shape[0]):
            w.write_step(int(s[i]), c[i])
