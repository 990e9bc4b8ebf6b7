"""The outside measure of expression transfer: face signals read from MediaPipe landmarks, and their comparison."""

import numpy as np
import pytest
from skimage.data import astronaut

from realtime.app.fidelity import MIN_FRAMES, compare, signal_range, spread, transfer_report
from realtime.face.detector import LandmarkDetector
from realtime.face.signals import ANGLES, SIGNALS, face_signals, head_rotations, rotation_angles


@pytest.fixture(scope="module")
def photo_points():
    """(478, 3) MediaPipe landmarks of the astronaut photo and of its mirror image."""
    image = astronaut()
    with LandmarkDetector(static_image_mode=True) as detector:
        return (detector.detect_largest(image).points.astype(np.float64),
                detector.detect_largest(np.ascontiguousarray(image[:, ::-1])).points.astype(np.float64))


def test_a_mirrored_face_swaps_left_and_right_and_turns_its_gaze(photo_points):
    face, mirrored = (face_signals(p[None]) for p in photo_points)
    for name in ("mouth_open", "mouth_width"):
        assert mirrored[name][0] == pytest.approx(face[name][0], rel=0.1, abs=0.01)
    assert mirrored["eye_left"][0] == pytest.approx(face["eye_right"][0], rel=0.15)
    assert mirrored["brow_left"][0] == pytest.approx(face["brow_right"][0], rel=0.1)
    assert mirrored["gaze_x"][0] == pytest.approx(-face["gaze_x"][0], abs=0.03)
    assert 0.5 < face["mouth_width"][0] < 1.2 and 0.05 < face["eye_left"][0] < 0.3  # inter-ocular units


def test_distances_do_not_depend_on_the_face_size_in_the_picture(photo_points):
    face = photo_points[0]
    centre = face.mean(0)
    both = face_signals(np.stack([face, centre + 0.5 * (face - centre)]))
    for name in SIGNALS:
        if name not in ("yaw", "pitch", "roll"):
            assert both[name][1] == pytest.approx(both[name][0], rel=1e-6), name


def _rotation(axis: int, degrees: float) -> np.ndarray:
    a = np.radians(degrees)
    c, s = np.cos(a), np.sin(a)
    i, j = [k for k in range(3) if k != axis]
    m = np.eye(3)
    m[i, i], m[i, j], m[j, i], m[j, j] = c, -s, s, c
    return m


@pytest.mark.parametrize("name, axis", [("pitch", 0), ("yaw", 1), ("roll", 2)])
def test_head_angles_follow_a_turning_face(photo_points, name, axis):
    face = photo_points[0]
    centre = face.mean(0)
    truth = np.linspace(-25, 25, 11)
    frames = np.stack([(face - centre) @ _rotation(axis, t).T + centre for t in truth])
    got = face_signals(frames)
    sign = np.sign(np.corrcoef(got[name], truth)[0, 1])
    np.testing.assert_allclose(sign * got[name], truth - truth.mean(), atol=0.5)
    for other in ("yaw", "pitch", "roll"):
        if other != name:
            assert np.abs(got[other]).max() < 1.0
    angles = rotation_angles(head_rotations(frames))
    assert np.ptp(angles[:, ANGLES.index(name)]) == pytest.approx(50.0, abs=1.0)  # before the mean is taken off


def test_frames_without_a_face_read_as_missing(photo_points):
    frames = np.stack([photo_points[0], np.full((478, 3), np.nan), photo_points[0]])
    got = face_signals(frames)
    assert all(np.isnan(got[name][1]) and np.isfinite(got[name][0]) for name in SIGNALS)
    with pytest.raises(ValueError, match=r"\(T, 478, 3\)"):
        face_signals(photo_points[0])


def _signals(t: np.ndarray, gain: float = 1.0, shift: float = 0.0) -> dict:
    wave = np.sin(2 * np.pi * t / 3.0)
    out = {name: 0.2 + 0.05 * gain * wave + shift for name in SIGNALS}
    out.update(yaw=10 * gain * wave, pitch=np.zeros_like(t), roll=5 * gain * wave)
    return out


def test_compare_gives_correlation_and_amplitude_of_exercised_signals():
    t = np.arange(200) / 25
    driver, avatar = _signals(t), _signals(t, gain=0.5, shift=0.1)
    avatar["mouth_open"] = 1.0 - avatar["mouth_open"]        # moving against the driver
    avatar["eye_left"][:150] = np.nan                       # the avatar's face lost for a while
    result = compare(driver, avatar)
    assert "pitch" not in result                            # the driver never pitches: left out
    for name in ("yaw", "roll", "brow_left", "mouth_width"):
        assert result[name].r == pytest.approx(1.0) and result[name].amplitude == pytest.approx(0.5)
        assert result[name].frames == 200
    assert result["mouth_open"].r < 0
    assert result["eye_left"].frames == 50
    avatar["eye_right"][MIN_FRAMES - 1:] = np.nan
    assert "eye_right" not in compare(driver, avatar)


def test_a_still_avatar_correlates_zero_and_has_no_amplitude():
    t = np.arange(100) / 25
    driver = _signals(t)
    still = {name: np.full_like(t, 0.3) for name in SIGNALS}
    result = compare(driver, still)
    assert all(r.r == 0.0 and r.amplitude == 0.0 for r in result.values())


def test_transfer_report_and_signal_range(photo_points):
    face = photo_points[0]
    centre = face.mean(0)
    frames = np.stack([(face - centre) @ _rotation(1, a).T + centre for a in np.linspace(-20, 20, 40)])
    lost = frames.copy()
    lost[:5] = np.nan
    report = transfer_report(frames, lost)
    assert report.driver_faces == 40 and report.avatar_faces == 35 and report.frames == 40
    assert "yaw" in report.signals and not {"pitch", "roll"} & set(report.signals)
    assert report.signals["yaw"].r == pytest.approx(1.0, abs=1e-6)
    summary = report.summary()
    assert summary["min_r"] == pytest.approx(1.0, abs=1e-6) and "yaw" in summary["signals"]
    reach = signal_range(report.driver)["yaw"]
    assert reach["min"] < reach["p5"] < reach["p95"] < reach["max"]
    assert spread(report.driver["yaw"]) == pytest.approx(reach["p95"] - reach["p5"])
    assert np.isnan(spread(np.full(4, np.nan)))
