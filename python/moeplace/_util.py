"""Input checking shared by the modules: everything a C call reads is
checked here first, so that bad Python input raises TypeError/ValueError
and never reaches C."""

import ctypes
import numbers

import numpy as np


def as_int(x, name, minimum=None):
    """x as a Python int; TypeError for a non-integer, ValueError below minimum."""
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Integral):
        raise TypeError("%s must be an integer, not %s" % (name, type(x).__name__))
    x = int(x)
    if minimum is not None and x < minimum:
        raise ValueError("%s must be >= %d, got %d" % (name, minimum, x))
    if x > 2**31 - 1:
        raise ValueError("%s is too large: %d" % (name, x))
    return x


def as_float(x, name):
    if isinstance(x, (bool, np.bool_)) or not isinstance(x, numbers.Real):
        raise TypeError("%s must be a number, not %s" % (name, type(x).__name__))
    return float(x)


def as_str(x, name, allow_none=False):
    if x is None and allow_none:
        return None
    if isinstance(x, bytes):
        x = x.decode()
    if not isinstance(x, str):
        raise TypeError("%s must be a str, not %s" % (name, type(x).__name__))
    if "\0" in x:
        raise ValueError("%s contains a NUL character" % name)
    return x


def path_bytes(p, name="path"):
    import os
    if not isinstance(p, (str, bytes, os.PathLike)):
        raise TypeError("%s must be a path (str or os.PathLike), not %s" % (name, type(p).__name__))
    b = os.fsencode(p)
    if b"\0" in b:
        raise ValueError("%s contains a NUL character" % name)
    return b


def _shape_str(shape):
    return "[" + "][".join(str(s) for s in shape) + "]"


def array(x, kind, shape, name):
    """A C-contiguous numpy copy/view of x for C to read.

    kind: "float" (float64; ints accepted), "uint64" (non-negative
    integers), "int32" (integers in int32 range). shape: the exact shape
    wanted (a tuple of ints). Raises TypeError for a wrong element type,
    ValueError for a wrong shape or a value out of range (negative counts,
    NaN or infinite loads)."""
    a = np.asarray(x)
    if a.dtype == object or a.dtype.kind not in "biuf":
        raise TypeError("%s must be a numeric array, got dtype %s" % (name, a.dtype))
    if a.shape != tuple(shape):
        raise ValueError("%s must have shape %s, got %s" % (name, _shape_str(shape),
                                                            _shape_str(a.shape)))
    if kind == "float":
        if a.dtype.kind == "b":
            raise TypeError("%s must be numeric, not bool" % name)
        out = np.ascontiguousarray(a, dtype=np.float64)
        if not np.all(np.isfinite(out)):
            raise ValueError("%s must be finite (no NaN or infinity)" % name)
        return out
    if a.dtype.kind not in "iu":
        raise TypeError("%s must be an integer array, got dtype %s" % (name, a.dtype))
    if kind == "uint64":
        if a.dtype.kind == "i" and a.size and a.min() < 0:
            raise ValueError("%s must be non-negative" % name)
        return np.ascontiguousarray(a, dtype=np.uint64)
    if kind == "int32":
        if a.size and (int(a.min()) < -2**31 or int(a.max()) > 2**31 - 1):
            raise ValueError("%s is out of the int32 range" % name)
        return np.ascontiguousarray(a, dtype=np.int32)
    raise AssertionError(kind)


def ptr(a):
    """The address of a numpy array's data, for a void* argument."""
    return a.ctypes.data_as(__import__("ctypes").c_void_p)


class NoCopy:
    """Base of the classes that hold a C handle: copy.copy() would share it
    and both copies would free it. A class with a copy() method is copied
    with it (a new C object); the others refuse with TypeError."""
    _kind = "object"

    def __copy__(self):
        if callable(getattr(self, "copy", None)):
            return self.copy()
        raise TypeError("a %s owns a C object and cannot be copied" % self._kind)

    def __deepcopy__(self, memo):
        return self.__copy__()


class AttrDict(dict):
    """A dict whose keys are also attributes (an unknown one is an
    AttributeError, so hasattr, getattr(..., default) and copy work)."""

    def __getattr__(self, name):
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


class Owned(NoCopy):
    """Base of the classes that own one C object (``self._h``, freed with
    the C function named by ``_destroy`` from ``self._lib``): close() frees
    it, and so do the end of a ``with`` block and the garbage collector;
    using the object afterwards raises ValueError."""
    _kind = "object"  # named in the error after close()
    _destroy = None   # the C function that frees the handle

    def _handle(self):
        if not getattr(self, "_h", None):
            raise ValueError("the %s is closed" % self._kind)
        return self._h

    def close(self):
        """Frees the C object; using it afterwards raises ValueError."""
        if getattr(self, "_h", None):
            getattr(self._lib, self._destroy)(self._h)
            self._h = ctypes.c_void_p()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
