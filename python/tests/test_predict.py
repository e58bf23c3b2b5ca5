"""Forecaster and StateDetector."""

import numpy as np
import pytest

import moeplace


def test_methods():
    m = moeplace.methods()
    assert "sw_avg" in m and "last" in m


def test_sw_avg_forecast_of_a_constant_load():
    f = moeplace.Forecaster(2, 4, method="sw_avg", window=10, horizon=100, sw_avg_k=5)
    counts = np.array([[10, 20, 30, 40], [0, 0, 0, 100]])
    for _ in range(6):
        assert f.observe_counts(counts) >= 0
    p = f.forecast()
    assert p.shape == (2, 4)
    assert np.allclose(p.sum(axis=1), 1.0)
    assert np.allclose(p, counts / counts.sum(axis=1, keepdims=True))
    assert np.allclose(f.forecast(1), p[1])
    assert f.windows == 6
    assert f.states().shape == (2,)
    assert f.last_change(0) is None or f.last_change(0) >= 1


def test_sw_avg_follows_the_average():
    f = moeplace.Forecaster(1, 2, method="sw_avg", sw_avg_k=2)
    f.observe([[1.0, 0.0]])
    f.observe([[0.0, 1.0]])
    assert np.allclose(f.forecast(), [[0.5, 0.5]])


def test_detector_turns_stable():
    d = moeplace.StateDetector(1, 2, k=3)
    changed_at = None
    for w in range(10):
        ch = d.observe([[0.5, 0.5]])
        assert ch.dtype == bool and ch.shape == (1,)
        if ch[0] and changed_at is None:
            changed_at = w
    assert d.state(0) == moeplace.STABLE and changed_at is not None
    assert moeplace.state_name(d.state(0)) == "stable"
    assert d.figures(0) == (0.0, 0.0)


def test_forecaster_with_detector_options():
    f = moeplace.Forecaster(1, 2, method="last", detector={"k": 2})
    assert f.config["detector"]["k"] == 2
    for _ in range(4):
        f.observe_counts([[5, 5]])
    assert f.state(0) == moeplace.STABLE and f.last_change(0) >= 1


def test_errors():
    with pytest.raises(moeplace.Error) as e:
        moeplace.Forecaster(1, 2, method="no-such-method")
    assert e.value.status == -1 and e.value.message
    with pytest.raises(TypeError):
        moeplace.Forecaster(1, 2, bogus=1)
    with pytest.raises(TypeError):
        moeplace.StateDetector(1, 2, k="3")
    f = moeplace.Forecaster(1, 2, method="last")
    with pytest.raises(ValueError):
        f.observe_counts([[1, 2, 3]])
    with pytest.raises(ValueError):
        f.observe_counts([[-1, 2]])
    with pytest.raises(TypeError):
        f.observe_counts([[1.5, 2.0]])
    with pytest.raises(ValueError):
        f.observe([[np.nan, 1.0]])
    with pytest.raises(moeplace.Error):
        f.state(5)
    f.close()
    with pytest.raises(ValueError):
        f.forecast()
