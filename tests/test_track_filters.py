"""One-Euro filtering of tracked parameters."""

import numpy as np
import pytest

from realtime.rig.model import RigParams
from realtime.track.filters import FilterSettings, OneEuroFilter, RigParamsFilter


def test_still_noisy_input_is_steadied():
    rng = np.random.default_rng(0)
    f = OneEuroFilter(min_cutoff=1.0, beta=0.5)
    times = np.arange(300) / 30.0
    noisy = 2.0 + rng.normal(scale=0.01, size=(300, 4))
    out = np.array([f(x, t) for x, t in zip(noisy, times)])
    raw_jitter = np.std(np.diff(noisy[100:], axis=0))
    filtered_jitter = np.std(np.diff(out[100:], axis=0))
    assert filtered_jitter < raw_jitter / 5
    np.testing.assert_allclose(out[100:].mean(0), 2.0, atol=0.005)  # no bias


def test_a_step_is_followed():
    f = OneEuroFilter(min_cutoff=1.0, beta=2.0)
    times = np.arange(60) / 30.0
    signal = np.where(times < 0.5, 0.0, 1.0)
    out = np.array([f(np.array([x]), t)[0] for x, t in zip(signal, times)])
    assert out[14] == 0.0
    after = times - 0.5
    assert out[after >= 0.2][0] > 0.9  # within 0.2 s of the step, 90 % of the way
    assert np.all(np.diff(out) >= -1e-12) and out[-1] <= 1.0 + 1e-12  # no overshoot


def test_a_faster_beta_lags_less():
    times = np.arange(30) / 30.0
    ramp = 3.0 * times
    lags = []
    for beta in (0.0, 5.0):
        f = OneEuroFilter(min_cutoff=1.0, beta=beta)
        out = [f(np.array([x]), t)[0] for x, t in zip(ramp, times)]
        lags.append(ramp[-1] - out[-1])
    assert lags[1] < lags[0] / 2


def test_repeated_timestamps_do_not_blow_up():
    f = OneEuroFilter(1.0, 1.0)
    f(np.zeros(2), 1.0)
    out = f(np.ones(2), 1.0)
    assert np.all(np.isfinite(out)) and np.all(out < 0.01)


def test_rig_params_filter_moves_pose_and_expression_but_not_identity():
    f = RigParamsFilter(n_expr=3, settings=FilterSettings())
    first = RigParams(shape=np.ones(4), expr=np.zeros(3))
    second = RigParams(shape=np.full(4, 2.0), expr=np.ones(3), rotation=np.array([0.0, 0.5, 0.0]),
                       translation=np.array([0.0, 0.0, 0.1]))
    f(first, 0.0)
    out = f(second, 1 / 30)
    np.testing.assert_array_equal(out.shape, second.shape)
    for name in ("expr", "rotation", "translation"):
        value, target = np.asarray(getattr(out, name)), np.asarray(getattr(second, name))
        assert np.all(np.abs(value) <= np.abs(target)) and np.any(value != target), name


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="cutoff"):
        OneEuroFilter(min_cutoff=0.0, beta=1.0)
    f = OneEuroFilter(1.0, 1.0)
    f(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="holds"):
        f(np.zeros(4), 0.1)
