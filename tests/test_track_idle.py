"""The idle face: without a face (or a frame) to follow, the tracker's output eases to neutral and blinks."""

from dataclasses import replace

import numpy as np

from realtime.track.idle import BLINK_EVERY_S, BLINK_S, blink_indices, idle_blink
from realtime.track.tracker import Tracker, TrackerSettings
from track_helpers import camera, observe, random_params, sphere_rig

FPS = 30


def blink_count(curve: np.ndarray) -> int:
    """Closures in a sampled blink curve (rises through 0.5)."""
    closed = curve > 0.5
    return int(np.count_nonzero(closed[1:] & ~closed[:-1]) + closed[0])


def test_idle_blinks_come_at_a_resting_rate_at_uneven_intervals():
    t = np.arange(0, 120, 1 / 200)
    curve = np.array([idle_blink(x) for x in t])
    assert curve.min() == 0.0 and curve.max() > 0.999
    assert blink_count(curve) == int(120 / BLINK_EVERY_S)
    starts = t[1:][(curve[1:] > 0) & (curve[:-1] == 0)]
    gaps = np.diff(starts)
    assert gaps.min() > BLINK_S and gaps.std() > 0.3          # never overlapping, not a metronome
    assert np.mean(curve > 0) < 2 * BLINK_S / BLINK_EVERY_S   # the eyes are open most of the time
    assert idle_blink(-1.0) == 0.0
    assert [idle_blink(x) for x in t[:500]] == list(curve[:500])  # the same time gives the same blink


def test_blink_shapes_are_found_by_name():
    rig = sphere_rig(arkit=True)
    found = blink_indices(rig.expr_names)
    assert [rig.expr_names[i] for i in found] == ["eyeBlinkLeft", "eyeBlinkRight"]
    assert len(blink_indices(("jawOpen", "mouthClose"))) == 0


def arkit_tracker(**settings):
    rig = sphere_rig(arkit=True, eyes_skinned=False, pose_correctives=False)
    base = TrackerSettings(filter=None, calibration_frames=0, depth_scale=1.0)
    return rig, Tracker(rig, detector=object(), camera=camera(), settings=replace(base, **settings))


def test_no_face_at_all_gives_a_neutral_face_that_blinks():
    rig, tracker = arkit_tracker()
    blinks = blink_indices(rig.expr_names)
    outputs = [tracker.track_landmarks(None, k / FPS, (512, 512)).params for k in range(12 * FPS)]
    expr = np.array([p.expr for p in outputs])
    others = np.setdiff1d(np.arange(rig.n_expr), blinks)
    assert np.all(expr[:, others] == 0.0)
    assert all(np.all(p.rotation == 0.0) and np.all(p.jaw_pose == 0.0) for p in outputs)
    assert blink_count(expr[:, blinks[0]]) >= 2 and np.array_equal(expr[:, blinks[0]], expr[:, blinks[1]])
    assert np.mean(expr[:, blinks[0]] > 0) < 0.3


def test_a_lost_face_eases_to_neutral_within_about_half_a_second_and_then_blinks():
    rig, tracker = arkit_tracker()
    cam = camera()
    seen = random_params(rig, np.random.default_rng(5), expr_scale=0.6)
    first = tracker.track_landmarks(observe(rig, seen, cam), 0.0, (512, 512)).params
    assert np.abs(first.expr).max() > 0.2 and np.linalg.norm(first.rotation) > 0.05
    lost = [tracker.track_landmarks(None, k / FPS, (512, 512)).params for k in range(1, 10 * FPS)]
    settle = tracker.settings.hold_s + tracker.settings.ease_s
    assert settle <= 0.75
    at = int(np.ceil(settle * FPS))
    blinks = blink_indices(rig.expr_names)
    others = np.setdiff1d(np.arange(rig.n_expr), blinks)
    for params in lost[at:]:
        np.testing.assert_allclose(params.expr[others], 0.0, atol=1e-6)
        np.testing.assert_allclose(params.rotation, 0.0, atol=1e-6)
    halfway = lost[int(0.35 * FPS)]
    turn = np.linalg.norm(first.rotation)
    assert 0.1 * turn < np.linalg.norm(halfway.rotation) < 0.9 * turn
    curve = np.array([p.expr[blinks[0]] for p in lost[at:]])
    assert blink_count(curve) >= 2  # not frozen: it keeps blinking


def test_idle_between_frames_is_the_no_face_output():
    rig, tracker = arkit_tracker()
    a = [tracker.idle(k / FPS).expr for k in range(6 * FPS)]
    _, other = arkit_tracker()
    b = [other.track_landmarks(None, k / FPS, (512, 512)).params.expr for k in range(6 * FPS)]
    np.testing.assert_array_equal(a, b)
