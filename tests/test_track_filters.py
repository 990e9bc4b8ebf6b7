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
    """A held step in every filtered slot moves the output at once, never past the target, and is reached most
    of the way within a second; identity and neck pass through unfiltered."""
    f = RigParamsFilter(n_expr=3, settings=FilterSettings())
    first = RigParams(shape=np.ones(4), expr=np.zeros(3))
    second = RigParams(shape=np.full(4, 2.0), expr=np.ones(3), rotation=np.array([0.0, 0.5, 0.0]),
                       translation=np.array([0.0, 0.0, 0.1]), jaw_pose=np.array([0.3, 0.0, 0.0]),
                       eyes_pose=np.array([0.0, 0.2, 0.0, 0.0, 0.2, 0.0]), neck_pose=np.array([0.1, 0.0, 0.0]))
    f(first, 0.0)
    outputs = [f(second, i / 30) for i in range(1, 31)]
    np.testing.assert_array_equal(outputs[0].shape, second.shape)
    np.testing.assert_array_equal(outputs[0].neck_pose, second.neck_pose)
    for name in ("expr", "rotation", "translation", "jaw_pose", "eyes_pose"):
        target = np.asarray(getattr(second, name))
        moving = target != 0
        step = np.asarray(getattr(outputs[0], name))[moving] / target[moving]
        held = np.asarray(getattr(outputs[-1], name))[moving] / target[moving]
        assert np.all((step > 0.02) & (step <= 1.0 + 1e-9)), f"{name}: the first frame after the step did not move"
        assert np.all(held > 0.8), f"{name}: a held target is not reached most of the way within a second"


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="cutoff"):
        OneEuroFilter(min_cutoff=0.0, beta=1.0)
    f = OneEuroFilter(1.0, 1.0)
    f(np.zeros(3), 0.0)
    with pytest.raises(ValueError, match="holds"):
        f(np.zeros(4), 0.1)
