"""Load forecasting and transient/stable state detection (docs/PREDICT.md)."""

import ctypes

import numpy as np

from . import _lib
from ._lib import check
from ._util import Owned, array, as_float, as_int, as_str, ptr

__all__ = ["StateDetector", "Forecaster", "methods", "TRANSIENT", "STABLE", "state_name"]

TRANSIENT = 0
STABLE = 1


def state_name(state):
    """"stable" or "transient"."""
    return _lib.text(_lib.core().moeplace_layer_state_name(as_int(state, "state")))


def methods():
    """The forecasting methods this build has ("last", "sw_avg", "arima", ...)."""
    lib = _lib.core()
    return [_lib.text(lib.moeplace_predict_method_name(i))
            for i in range(lib.moeplace_predict_method_count())]


_DETECTOR_FIELDS = {"k": as_int, "var_threshold": as_float, "range_threshold": as_float,
                    "hysteresis": as_float}


def _detector_config(cfg, options, where):
    for key, value in options.items():
        if key not in _DETECTOR_FIELDS:
            raise TypeError("%s: unknown detector option %r (known: %s)"
                            % (where, key, ", ".join(_DETECTOR_FIELDS)))
        setattr(cfg, key, _DETECTOR_FIELDS[key](value, key))


class StateDetector(Owned):
    """Transient/stable detector for [layers][experts] proportions, one
    window at a time. Options (defaults from moeplace_detector_config_init):
    k, var_threshold, range_threshold, hysteresis."""
    _kind = "detector"
    _destroy = "moeplace_state_detector_destroy"

    def __init__(self, layers, experts, **options):
        """Creates the detector; unknown options raise TypeError, values out
        of range moeplace.Error (ERR_ARG)."""
        lib = _lib.core()
        self._lib = lib
        self.layers = as_int(layers, "layers", 1)
        self.experts = as_int(experts, "experts", 1)
        cfg = _lib.DetectorConfig()
        lib.moeplace_detector_config_init(ctypes.byref(cfg))
        _detector_config(cfg, options, "StateDetector")
        self.config = _lib.struct_dict(cfg)
        self._h = ctypes.c_void_p()
        check(lib.moeplace_state_detector_create(ctypes.byref(self._h), self.layers,
                                                 self.experts, ctypes.byref(cfg)))

    def observe(self, proportions):
        """Feeds one window of proportions [layers][experts]; returns a bool
        array [layers]: the layers whose state changed with this window."""
        p = array(proportions, "float", (self.layers, self.experts), "proportions")
        changed = np.zeros(self.layers, dtype=np.uint8)
        check(self._lib.moeplace_state_detector_observe(self._handle(), ptr(p), ptr(changed)))
        return changed.astype(bool)

    def state(self, layer):
        """The layer's state: TRANSIENT (0) or STABLE (1)."""
        return check(self._lib.moeplace_state_detector_state(self._handle(),
                                                             as_int(layer, "layer")))

    def states(self):
        """The state of every layer, an int array [layers]."""
        return np.array([self.state(l) for l in range(self.layers)], dtype=np.int32)

    def figures(self, layer):
        """``(var_max, range_max)`` of a layer over the last k windows."""
        v, r = ctypes.c_double(), ctypes.c_double()
        check(self._lib.moeplace_state_detector_figures(self._handle(), as_int(layer, "layer"),
                                                        ctypes.byref(v), ctypes.byref(r)))
        return v.value, r.value

_PREDICT_FIELDS = {"window": as_int, "horizon": as_int, "sw_avg_k": as_int,
                   "arima_history": as_int, "arima_refit": as_int, "auto_power": as_float,
                   "seed": as_int}


class Forecaster(Owned):
    """Forecasts each layer's expert load proportions over the next
    ``horizon`` steps from completed windows of counts or proportions.

    ``Forecaster(layers, experts, method="sw_avg", window=10, horizon=1000,
    sw_avg_k=50, arima_history=200, arima_refit=10, auto_power=4, seed=0,
    detector={"k": 20, ...})``; defaults from moeplace_predict_config_init
    (method "auto")."""
    _kind = "forecaster"
    _destroy = "moeplace_forecaster_destroy"

    def __init__(self, layers, experts, method=None, detector=None, **options):
        """Creates the forecaster; unknown options raise TypeError, invalid
        values moeplace.Error (ERR_ARG, message naming the parameter)."""
        lib = _lib.core()
        self._lib = lib
        self.layers = as_int(layers, "layers", 1)
        self.experts = as_int(experts, "experts", 1)
        cfg = _lib.PredictConfig()
        lib.moeplace_predict_config_init(ctypes.byref(cfg), self.layers, self.experts)
        for key, value in options.items():
            if key not in _PREDICT_FIELDS:
                raise TypeError("Forecaster: unknown option %r (known: method, detector, %s)"
                                % (key, ", ".join(_PREDICT_FIELDS)))
            if key == "seed":
                if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
                    raise TypeError("seed must be an integer")
                value = int(value)
                if value < 0 or value >= 2**64:
                    raise ValueError("seed must be in [0, 2**64)")
                cfg.seed = value
                continue
            setattr(cfg, key, _PREDICT_FIELDS[key](value, key))
        if method is not None:
            self._method = as_str(method, "method").encode()
            cfg.method = self._method  # kept alive with the object
        if detector is not None:
            if not isinstance(detector, dict):
                raise TypeError("detector must be a dict of detector options")
            _detector_config(cfg.detector, detector, "Forecaster")
        self.config = _lib.struct_dict(cfg)
        self._h = ctypes.c_void_p()
        check(lib.moeplace_forecaster_create(ctypes.byref(self._h), ctypes.byref(cfg)))

    def observe_counts(self, counts):
        """Feeds one completed window of token counts [layers][experts]
        (non-negative integers); returns the number of layers whose state
        changed."""
        c = array(counts, "uint64", (self.layers, self.experts), "counts")
        return check(self._lib.moeplace_forecaster_observe_counts(self._handle(), ptr(c)))

    def observe(self, proportions):
        """Feeds one completed window of proportions [layers][experts];
        returns the number of layers whose state changed."""
        p = array(proportions, "float", (self.layers, self.experts), "proportions")
        return check(self._lib.moeplace_forecaster_observe(self._handle(), ptr(p)))

    def forecast(self, layer=None):
        """The forecast mean proportions over the horizon: [layers][experts]
        (each row sums to 1), or [experts] for one ``layer``."""
        h = self._handle()
        if layer is None:
            out = np.empty((self.layers, self.experts), dtype=np.float64)
            check(self._lib.moeplace_forecaster_forecast(h, ptr(out)))
        else:
            out = np.empty(self.experts, dtype=np.float64)
            check(self._lib.moeplace_forecaster_forecast_layer(h, as_int(layer, "layer"),
                                                               ptr(out)))
        return out

    def state(self, layer):
        """A layer's state: TRANSIENT (0) or STABLE (1)."""
        return check(self._lib.moeplace_forecaster_state(self._handle(), as_int(layer, "layer")))

    def states(self):
        """The state of every layer, an int array [layers]."""
        return np.array([self.state(l) for l in range(self.layers)], dtype=np.int32)

    def last_change(self, layer):
        """The number of windows observed when the layer last changed state
        (1 = with the first window), or None if it never changed."""
        w = ctypes.c_int64()
        check(self._lib.moeplace_forecaster_last_change(self._handle(), as_int(layer, "layer"),
                                                        ctypes.byref(w)))
        return None if w.value < 0 else w.value

    @property
    def windows(self):
        """Windows observed so far."""
        return self._lib.moeplace_forecaster_windows(self._handle())

