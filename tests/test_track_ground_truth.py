"""Ground truth: render the demo avatar with known parameter sequences, track the rendered frames with MediaPipe,
and recover the parameters (the tracking issue's check).

Six seconds at 30 fps, 384x384, in the avatar's own camera (given to the tracker, so the parameters are in the
render's world): a neutral start (the tracker's calibration), then jaw opening, a blink of both eyes, a wink of
the left, a smile, raised brows (the head swaying by a few degrees), then head yaw, pitch and roll in turn.
"""

import numpy as np
import pytest

from realtime.geometry import axis_angle_to_matrix
from realtime.rig.model import RigParams
from realtime.track.sources import Frame
from realtime.track.tracker import Tracker, TrackerSettings

FPS, SECONDS, SIZE = 30, 6.0, 384
CONTROLS = {  # name: (peak, centre s, width s)
    "jaw": (0.25, 1.2, 0.25),
    "eyeBlinkLeft": (1.0, 2.0, 0.12), "eyeBlinkRight": (1.0, 2.0, 0.12),
    "mouthSmileLeft": (0.8, 2.8, 0.3), "mouthSmileRight": (0.8, 2.8, 0.3),
    "browInnerUp": (0.9, 3.4, 0.25), "browOuterUpLeft": (0.7, 3.4, 0.25), "browOuterUpRight": (0.7, 3.4, 0.25),
}
WINK = (1.0, 3.0, 0.12)  # a second, left-only closure


def truth_sequence(rig, shape):
    """(T,) RigParams and the (T,) curve of every control."""
    t = np.arange(int(SECONDS * FPS)) / FPS

    def bump(peak, centre, width):
        return peak * np.exp(-0.5 * ((t - centre) / width) ** 2)

    curves = {name: bump(*spec) for name, spec in CONTROLS.items()}
    curves["eyeBlinkLeft"] = curves["eyeBlinkLeft"] + bump(*WINK)
    sway = np.radians(4) * np.sin(2 * np.pi * t / 3.0) * (t > 0.4)
    turn = t > 3.8
    yaw = np.where(turn, np.radians(25) * np.sin(2 * np.pi * (t - 3.8) / 1.2) * (t < 5.0), sway)
    pitch = np.where(turn, np.radians(12) * np.sin(2 * np.pi * (t - 4.4)) * (t > 4.4) * (t < 5.4), 0.5 * sway)
    roll = np.where(turn, np.radians(10) * np.sin(2 * np.pi * (t - 5.0)) * (t > 5.0), 0.0)
    frames = []
    for k in range(len(t)):
        params = RigParams.neutral(rig, np.float64)
        params.shape = np.asarray(shape, np.float64)
        params.jaw_pose = np.array([curves["jaw"][k], 0.0, 0.0])
        for name, curve in curves.items():
            if name != "jaw":
                params.expr[rig.expr_names.index(name)] = curve[k]
        params.rotation = np.array([pitch[k], yaw[k], roll[k]])
        frames.append(params)
    return frames, curves


@pytest.fixture(scope="module")
def tracked():
    from realtime.deform.reference import deform
    from realtime.app.library import demo_avatar
    from realtime.render import render

    avatar, _ = demo_avatar()
    camera = avatar.camera.resized(SIZE, SIZE)
    truth, curves = truth_sequence(avatar.rig, avatar.shape)
    with Tracker(avatar.rig, camera=camera, settings=TrackerSettings(filter=None)) as tracker:
        results = []
        for index, params in enumerate(truth):
            world = deform(avatar, params).gaussians
            image = render(world.means, world.quats, world.scales, avatar.opacities, avatar.sh, camera,
                           background=(1.0, 1.0, 1.0), backend="cpu").image
            frame = Frame((np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), index, 0, media_time=index / FPS)
            results.append(tracker.track(frame))
    return avatar.rig, truth, curves, results


def recovered(rig, results, name):
    """The tracked value of control `name` in every frame."""
    if name == "jaw":
        return [r.raw_params.jaw_pose[0] for r in results]
    return [r.raw_params.expr[rig.expr_names.index(name)] for r in results]


def correlation(rig, results, curves, name):
    return np.corrcoef(recovered(rig, results, name), curves[name])[0, 1]


def test_every_frame_has_a_face(tracked):
    _, _, _, results = tracked
    assert all(r.face_found for r in results)
    assert np.mean([r.error_iod for r in results]) < 0.03


def test_head_rotation_is_recovered(tracked):
    _, truth, _, results = tracked
    errors = []
    for r, p in zip(results, truth):
        rel = axis_angle_to_matrix(np.asarray(r.raw_params.rotation, np.float64)).T @ axis_angle_to_matrix(p.rotation)
        errors.append(np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))))
    assert np.mean(errors) <= 3.0
    for axis in range(3):
        fitted = [r.raw_params.rotation[axis] for r in results]
        true = [p.rotation[axis] for p in truth]
        assert np.corrcoef(fitted, true)[0, 1] > 0.95
        slope = np.polyfit(true, fitted, 1)[0]
        assert 0.6 <= slope <= 1.4, f"rotation axis {axis} comes back at {slope:.2f} of the truth"


_SHRUNK = pytest.mark.xfail(strict=True, reason="the tracker recovers this control at about half its size "
                            "(slope 0.4-0.57): remaining fidelity work (#13), not to be met by loosening the bound")


@pytest.mark.parametrize("name", ["jaw", "eyeBlinkLeft", "eyeBlinkRight",
                                  pytest.param("mouthSmileLeft", marks=_SHRUNK),
                                  pytest.param("mouthSmileRight", marks=_SHRUNK),
                                  "browInnerUp", "browOuterUpLeft",
                                  pytest.param("browOuterUpRight", marks=_SHRUNK)])
def test_expressions_are_recovered(tracked, name):
    rig, _, curves, results = tracked
    assert correlation(rig, results, curves, name) >= 0.9
    fitted = np.asarray(recovered(rig, results, name))
    true = np.asarray(curves[name])
    slope = np.polyfit(true, fitted, 1)[0]
    assert 0.6 <= slope <= 1.4, f"{name} comes back at {slope:.2f} of the truth"
    rms = np.sqrt(np.mean((fitted - true) ** 2))
    assert rms <= 0.25 * np.ptp(true), f"{name}: rms error {rms:.3f} over a range of {np.ptp(true):.3f}"
