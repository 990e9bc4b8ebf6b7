"""Per-person gains: a person's full blink reads as a full blink, however far their eyes open at rest."""

from dataclasses import replace

import numpy as np
import pytest

from realtime.rig.builtin import builtin_rig
from realtime.rig.model import RigParams
from realtime.track.gains import MAX_GAIN, blink_gains, fit_responses, person_gains
from realtime.track.tracker import Tracker, TrackerSettings, interocular_distance
from track_helpers import camera, observe

# Landmarks projected from the rig itself: no MediaPipe depth to make up for.
EXACT = TrackerSettings(filter=None, calibration_frames=3, depth_scale=1.0)
BLINKS = ("eyeBlinkLeft", "eyeBlinkRight")


@pytest.fixture(scope="module")
def rig():
    return builtin_rig()


def face(rig, blink: float) -> RigParams:
    params = RigParams.neutral(rig, np.float64)
    for name in BLINKS:
        params.expr[rig.expr_names.index(name)] = blink
    params.rotation = np.array([0.05, -0.1, 0.02])
    return params


def track(rig, rest_blink: float, blinks: list[float]) -> tuple[Tracker, list[np.ndarray]]:
    """Calibrate on a person whose eyes rest `rest_blink` closed (by the rig's measure), then track `blinks`."""
    cam = camera()
    tracker = Tracker(rig, detector=object(), camera=cam, settings=EXACT)
    for k in range(3):
        tracker.track_landmarks(observe(rig, face(rig, rest_blink), cam), k / 30, (512, 512))
    assert tracker.calibrated
    out = [tracker.track_landmarks(observe(rig, face(rig, b), cam), (4 + k) / 30, (512, 512)).params
           for k, b in enumerate(blinks)]
    return tracker, [np.array([p.expr[rig.expr_names.index(n)] for n in BLINKS]) for p in out]


def test_a_narrow_eyed_persons_closed_eyes_close_the_avatars(rig):
    tracker, (shut, half, open_) = track(rig, 0.4, [1.0, 0.7, 0.4])
    gains = blink_gains(tracker.basis, rig)
    np.testing.assert_allclose(gains[[rig.expr_names.index(n) for n in BLINKS]], 1 / 0.6, rtol=0.05)
    assert np.all(shut > 0.9)                       # a 60 % lid travel is this person's whole blink
    np.testing.assert_allclose(half, 0.5, atol=0.12)  # about half (the L1 pull's threshold bends the response)
    np.testing.assert_allclose(open_, 0.0, atol=0.02)
    others = np.setdiff1d(np.arange(rig.n_expr), [rig.expr_names.index(n) for n in BLINKS])
    assert np.all(gains[others] == 1.0)


def test_the_output_with_its_gains_projects_back_onto_the_landmarks(rig):
    cam = camera()
    tracker = Tracker(rig, detector=object(), camera=cam, settings=EXACT)
    for k in range(3):
        tracker.track_landmarks(observe(rig, face(rig, 0.4), cam), k / 30, (512, 512))
    shut = observe(rig, face(rig, 0.9), cam)
    result = tracker.track_landmarks(shut, 0.2, (512, 512))
    assert result.params.expr[rig.expr_names.index("eyeBlinkLeft")] > 1.2 * 0.5  # the gain is in the output
    error = np.linalg.norm(tracker.project(result.params) - shut[tracker.basis.ids], axis=1).mean()
    assert error == pytest.approx(result.error_iod * interocular_distance(shut), rel=0.02)  # the fit's own error


def test_an_eye_like_the_rigs_keeps_its_blinks(rig):
    tracker, (shut, half) = track(rig, 0.0, [1.0, 0.5])
    np.testing.assert_allclose(blink_gains(tracker.basis, rig)[[rig.expr_names.index(n) for n in BLINKS]], 1.0,
                               atol=0.02)
    assert np.all(shut > 0.95)
    np.testing.assert_allclose(half, 0.5, atol=0.12)


def test_the_fits_shrinking_of_small_shapes_is_undone(rig):
    tracker, _ = track(rig, 0.0, [])
    pose = face(rig, 0.0)
    responses = fit_responses(tracker.basis, tracker.camera, pose, tracker.settings.fit)
    blink = [rig.expr_names.index(n) for n in BLINKS]
    assert np.all(responses[blink] < 0.95)          # the priors shrink a blink
    assert np.all((responses >= 0.0) & (responses <= 1.0 + 1e-6))
    gains = person_gains(tracker.basis, rig, tracker.camera, pose, tracker.settings.fit)
    seen = responses >= 1 / MAX_GAIN
    np.testing.assert_allclose(gains[seen], np.minimum(1 / responses[seen], MAX_GAIN), rtol=1e-6)
    assert np.all(gains[~seen] == 1.0)            # shapes the fit cannot see alone are not amplified


def test_rigs_without_blink_shapes_get_no_gains():
    from track_helpers import sphere_rig

    rig = sphere_rig(eyes_skinned=False, pose_correctives=False)
    tracker = Tracker(rig, detector=object(), camera=camera(), settings=replace(EXACT, calibration_frames=0))
    assert np.all(blink_gains(tracker.basis, rig) == 1.0)
