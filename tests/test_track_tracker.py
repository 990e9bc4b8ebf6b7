"""The Tracker: identity calibration, recentring, no-face hold and ease, neutral recalibration, face choice,
still-input steadiness on a real photo, and bad input."""

from dataclasses import replace

import numpy as np
import pytest

from realtime.track.fit import FitSettings
from realtime.track.sources import SourceError
from realtime.track.tracker import Tracker, TrackerSettings, interocular_distance
from track_helpers import camera, observe, random_params, rotation_error_deg, sphere_rig

# Landmarks projected from the rig itself: no MediaPipe whose flatter depth needs making up for.
RAW = TrackerSettings(filter=None, calibration_frames=3, depth_scale=1.0)


def face_like_rig():
    """The synthetic sphere with landmarks that do not turn with the eyeballs (as on a face): the tracker's gaze
    step then cannot disturb the landmark fit."""
    return sphere_rig(eyes_skinned=False, pose_correctives=False)


def pose(rig, seed=0, **changes):
    params = random_params(rig, np.random.default_rng(seed), expr_scale=0.5)
    return replace(params, **changes)


def test_calibration_recentres_and_reprojects():
    rig = face_like_rig()
    truth = pose(rig, shape=np.random.default_rng(9).normal(size=rig.n_shape) * 0.5)
    cam = camera()
    points = observe(rig, truth, cam)
    # no camera given: one with the assumed field of view (that of the test camera) is made
    tracker = Tracker(rig, detector=object(), settings=replace(RAW, fov_x_deg=40.0))
    results = [tracker.track_landmarks(points, t / 30, (512, 512)) for t in range(6)]
    assert all(r.face_found for r in results)
    assert not results[1].params is results[2].params and tracker.calibrated
    last = results[-1]
    assert np.linalg.norm(results[0].params.translation) > 0.05
    assert np.linalg.norm(last.params.translation) < 0.01  # the world origin moved to where the head was
    np.testing.assert_allclose(tracker.project(last.raw_params), points[tracker.basis.ids], atol=1.0)
    assert last.error_iod < 0.01
    assert last.params.expr.dtype == np.float32 and set(last.timings) >= {"landmarks", "fit", "filter", "total"}


def test_calibration_finds_the_field_of_view():
    from realtime.camera import frontal_camera

    rig = face_like_rig()
    cam = frontal_camera(np.zeros(3), 0.35, size=512, fov_x_deg=45.0)  # close and wide: strong perspective
    rng = np.random.default_rng(4)
    frames = [observe(rig, pose(rig, seed=int(rng.integers(100))), cam, noise=0.1, rng=rng) for _ in range(5)]
    settings = replace(RAW, calibration_frames=5, fov_x_deg=60.0, fov_candidates=(30.0, 45.0, 60.0))
    tracker = Tracker(rig, detector=object(), settings=settings)
    for k, points in enumerate(frames):
        tracker.track_landmarks(points, k / 30, (512, 512))
    assert tracker.calibrated
    np.testing.assert_allclose(tracker.camera.K, cam.K, rtol=1e-9)


def test_given_camera_gives_parameters_in_its_world():
    rig = face_like_rig()
    truth = pose(rig, seed=1)
    cam = camera()
    tracker = Tracker(rig, detector=object(), camera=cam, settings=replace(RAW, calibration_frames=0))
    result = tracker.track_landmarks(observe(rig, truth, cam, noise=0.2), 0.0, (512, 512))
    assert rotation_error_deg(result.params.rotation, truth.rotation) < 1.0
    np.testing.assert_allclose(result.params.translation, truth.translation, atol=3e-3)


def test_a_view_carries_head_motion_since_calibration_into_its_camera():
    from realtime.camera import rig_to_opencv
    from realtime.geometry import axis_angle_to_matrix

    rig = face_like_rig()
    cam = camera()
    rest = pose(rig, seed=6, rotation=np.array([0.25, 0.1, -0.05]))
    # the avatar's camera sees its rig pitched and rolled (a portrait's head pose)
    view = rig_to_opencv()[:3, :3] @ axis_angle_to_matrix(np.array([0.3, 0.05, -0.08]))
    tracker = Tracker(rig, detector=object(), camera=cam, settings=RAW, view=view)
    for k in range(3):
        calm = tracker.track_landmarks(observe(rig, rest, cam), k / 30, (512, 512)).params
    np.testing.assert_allclose(calm.rotation, 0.0, atol=2e-3)   # the calibration pose is the avatar's rest
    np.testing.assert_allclose(calm.translation, 0.0, atol=1e-3)
    turn = axis_angle_to_matrix(np.array([0.0, 0.4, 0.0]))       # a yaw about the camera's vertical axis
    moved = replace(rest, rotation=np.asarray(_axis_angle(turn @ axis_angle_to_matrix(rest.rotation))),
                    translation=rest.translation + np.array([0.02, 0.0, 0.0]))
    out = tracker.track_landmarks(observe(rig, moved, cam), 0.2, (512, 512)).params
    cam_r = cam.viewmat[:3, :3]
    seen_by_avatar = view @ axis_angle_to_matrix(np.asarray(out.rotation, np.float64)) @ view.T
    assert rotation_error_deg(_axis_angle(seen_by_avatar), _axis_angle(cam_r @ turn @ cam_r.T)) < 1.0
    np.testing.assert_allclose(view @ out.translation, cam_r @ [0.02, 0.0, 0.0], atol=2e-3)
    # the output projects back onto the landmarks it came from
    np.testing.assert_allclose(tracker.project(out), observe(rig, moved, cam)[tracker.basis.ids], atol=1.0)


def _axis_angle(matrix):
    from realtime.geometry import matrix_to_axis_angle

    return matrix_to_axis_angle(np.asarray(matrix, np.float64))


def test_no_face_holds_then_eases_to_neutral():
    rig = face_like_rig()
    truth = pose(rig, seed=2)
    cam = camera()
    settings = replace(RAW, hold_s=0.5, ease_s=1.0, calibration_frames=0)
    tracker = Tracker(rig, detector=object(), camera=cam, settings=settings)
    seen = tracker.track_landmarks(observe(rig, truth, cam), 0.0, (512, 512)).params
    held = tracker.track_landmarks(None, 0.4, (512, 512))
    assert not held.face_found and held.landmarks is None
    for name in ("expr", "rotation", "jaw_pose", "translation"):
        np.testing.assert_array_equal(getattr(held.params, name), getattr(seen, name))
    halfway = tracker.track_landmarks(None, 1.0, (512, 512)).params
    angle = np.linalg.norm(halfway.rotation)
    assert 0.2 * np.linalg.norm(seen.rotation) < angle < 0.8 * np.linalg.norm(seen.rotation)
    done = tracker.track_landmarks(None, 1.6, (512, 512)).params
    for name in ("expr", "rotation", "jaw_pose", "eyes_pose"):
        np.testing.assert_allclose(getattr(done, name), 0.0, atol=1e-6)
    # the face comes back: tracked again from a cold start
    back = tracker.track_landmarks(observe(rig, truth, cam), 2.0, (512, 512))
    assert back.face_found and rotation_error_deg(back.params.rotation, truth.rotation) < 1.0


def test_implausible_landmarks_count_as_no_face():
    rig = face_like_rig()
    cam = camera()
    tracker = Tracker(rig, detector=object(), camera=cam, settings=replace(RAW, calibration_frames=0))
    good = tracker.track_landmarks(observe(rig, pose(rig), cam), 0.0, (512, 512))
    junk = np.random.default_rng(0).uniform(0, 512, size=(478, 2))
    bad = tracker.track_landmarks(junk, 0.1, (512, 512))
    assert good.face_found and not bad.face_found
    np.testing.assert_array_equal(bad.params.rotation, good.params.rotation)  # held
    for degenerate in (np.full((478, 2), 100.0), np.zeros((478, 3))):  # every point in one place
        assert not tracker.track_landmarks(degenerate, 0.15, (512, 512)).face_found
    with pytest.raises(ValueError, match="landmarks must be"):
        tracker.track_landmarks(np.zeros((68, 2)), 0.2, (512, 512))
    with pytest.raises(ValueError, match="NaN"):
        tracker.track_landmarks(np.full((478, 2), np.nan), 0.3, (512, 512))


def test_calibration_holds_the_neutral_and_its_face_reads_as_zero():
    rig = sphere_rig(arkit=True, eyes_skinned=False, pose_correctives=False)
    cam = camera()
    rest = pose(rig, seed=8)  # a resting face with some activation of every shape
    assert rest.expr.min() > 0.01
    still = observe(rig, rest, cam, noise=0.3, rng=np.random.default_rng(8))  # one noisy still frame, repeated
    # no L1 pull: the sphere's shapes move landmarks by millimetres, the tracker's default would zero them all
    settings = replace(RAW, fit=FitSettings(expr_prior=1e-3))
    tracker = Tracker(rig, detector=object(), camera=cam, settings=settings)
    results = []
    for k in range(6):
        results.append(tracker.track_landmarks(still, k / 30, (512, 512)))
        assert tracker.calibrated == (k >= 2)
    # until the neutral is known the face holds it; after, the calibrated still face reads exactly neutral
    assert all(r.face_found for r in results)
    assert all(np.all(r.params.expr == 0.0) for r in results[:2])
    np.testing.assert_allclose([r.params.expr for r in results[2:]], 0.0, atol=3e-3)
    moved = tracker.track_landmarks(observe(rig, replace(rest, expr=rest.expr + 0.3), cam), 0.3, (512, 512))
    assert moved.params.expr.min() > 0.15  # and a change from it reads
    # a face found again after it was lost is fitted from a cold start; the calibration holds
    tracker.track_landmarks(None, 0.5, (512, 512))
    assert tracker.calibrated and tracker.track_landmarks(still, 2.0, (512, 512)).face_found


def test_recalibrated_neutral_reads_as_zero():
    rig = face_like_rig()
    cam = camera()
    rest = pose(rig, seed=3)
    exact = replace(RAW, calibration_frames=0, fit=FitSettings(expr_prior=1e-7, temporal=1e-8, iterations=10))
    tracker = Tracker(rig, detector=object(), camera=cam, settings=exact)
    first = tracker.track_landmarks(observe(rig, rest, cam), 0.0, (512, 512))
    assert np.abs(first.params.expr).max() > 0.2
    tracker.recalibrate_neutral()
    now = tracker.track_landmarks(observe(rig, rest, cam), 0.1, (512, 512))
    np.testing.assert_allclose(now.params.expr, 0.0, atol=1e-6)
    delta = np.zeros(rig.n_expr)
    delta[[1, 4]] = [0.4, -0.3]
    moved = tracker.track_landmarks(observe(rig, replace(rest, expr=rest.expr + delta), cam), 0.2, (512, 512))
    np.testing.assert_allclose(moved.params.expr, delta, atol=0.02)


# -- real MediaPipe on the astronaut photo ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def builtin():
    from realtime.rig.builtin import builtin_rig

    return builtin_rig()


@pytest.fixture(scope="module")
def astronaut():
    from skimage.data import astronaut

    return astronaut()


def test_still_photo_is_fitted_and_steady(builtin, astronaut):
    from realtime.track.sources import ImageSource

    with Tracker(builtin) as tracker:
        results = [tracker.track(frame) for frame in ImageSource(astronaut, repeat=40, fps=30)]
    assert all(r.face_found for r in results)
    iod = interocular_distance(results[-1].landmarks)
    assert np.mean([r.error_iod for r in results]) < 0.03
    projected = np.array([tracker.project(r.params) for r in results[10:]])     # filtered output
    jitter = np.mean(np.linalg.norm(projected - projected.mean(0), axis=2)) / iod
    assert jitter < 0.003
    assert results[-1].timings["landmarks"] > 0 and results[-1].timings["total"] >= results[-1].timings["fit"]


@pytest.mark.parametrize("big_on_left", [True, False])
def test_largest_of_two_faces_is_tracked(builtin, astronaut, big_on_left):
    import cv2

    from realtime.face.detector import LandmarkDetector

    face = astronaut[0:300, 100:400]
    big, small = cv2.resize(face, (384, 384)), cv2.resize(face, (256, 256))
    canvas = np.zeros((384, 640, 3), np.uint8)
    x_big, x_small = (0, 384) if big_on_left else (256, 0)
    canvas[:, x_big:x_big + 384] = big
    canvas[64:320, x_small:x_small + 256] = small
    with LandmarkDetector(static_image_mode=True, max_faces=2) as detector:
        assert len(detector.detect(canvas)) == 2  # both faces are there to choose from
    with Tracker(builtin) as tracker:
        result = tracker.track(canvas)
    assert result.face_found
    xs = result.landmarks[:, 0]
    assert x_big <= xs.min() and xs.max() <= x_big + 384


def test_frame_without_a_face_and_bad_frames(builtin):
    with Tracker(builtin) as tracker:
        blank = tracker.track(np.full((240, 320, 3), 90, np.uint8))
        assert not blank.face_found and blank.landmarks is None
        np.testing.assert_array_equal(blank.params.expr, 0.0)
        with pytest.raises(SourceError, match="uint8"):
            tracker.track(np.zeros((240, 320, 3), np.float64))
        with pytest.raises(SourceError, match=r"\(H, W, 3\)"):
            tracker.track(np.zeros((240, 320), np.uint8))


def test_rig_embedding_only_some_landmarks_is_tracked():
    """FLAME's MediaPipe embedding covers about a hundred of the 478 ids (no irises): the tracker fits those."""
    from realtime.rig.model import Rig
    from realtime.face.landmark_ids import fit_ids

    full = face_like_rig()
    keep = np.isin(full.lmk_ids, fit_ids()[::2])  # no iris points, half of the contours
    rig = Rig(**{**full.__dict__, "lmk_ids": full.lmk_ids[keep], "lmk_faces": full.lmk_faces[keep],
                 "lmk_bary": full.lmk_bary[keep]})
    cam = camera()
    truth = pose(rig, seed=5)
    points = observe(full, truth, cam)  # MediaPipe gives all 478 points; the rig embeds some of them
    tracker = Tracker(rig, detector=object(), camera=cam, settings=replace(RAW, calibration_frames=0))
    assert len(tracker.basis.ids) == keep.sum()
    result = tracker.track_landmarks(points, 0.0, (512, 512))
    assert result.face_found and rotation_error_deg(result.params.rotation, truth.rotation) < 1.0
    assert np.all(np.isfinite(result.params.eyes_pose))
