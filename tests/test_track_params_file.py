"""Tracking a whole video into per-frame parameters, and the .npz they are saved in."""

from dataclasses import dataclass, replace

import numpy as np
import pytest

from realtime.track.params_file import PARAM_FIELDS, ParamsFileError, TrackedSequence, load_params_npz, save_params_npz
from realtime.track.video import track_video
from realtime.track.fit import FitSettings
from realtime.track.tracker import TrackerSettings
from track_helpers import camera, observe, random_params, rotation_error_deg, sphere_rig, write_video


@dataclass
class _Face:
    points: np.ndarray


class ScriptedDetector:
    """Stands in for MediaPipe: gives the landmarks of known parameters, one set per frame, None for a gap."""

    def __init__(self, frames):
        self.frames = list(frames)
        self.calls = 0

    def detect_largest(self, image):
        points = self.frames[self.calls]
        self.calls += 1
        return None if points is None else _Face(points)


def test_track_video_gives_one_parameter_set_per_frame(tmp_path):
    rig = sphere_rig(eyes_skinned=False, pose_correctives=False)
    cam = camera(size=64)
    rng = np.random.default_rng(0)
    truths = [random_params(rig, rng, expr_scale=0.3) for _ in range(6)]
    landmarks = [observe(rig, t, cam) for t in truths]
    landmarks[3] = None  # a frame without a face
    path = tmp_path / "clip.mp4"
    write_video(path, [(90, 90, 90)] * 6, fps=24, size=(64, 64))
    # the scripted frames are unrelated poses, not a video's small steps: allow the fit more steps a frame;
    # the landmarks are the rig's own projections (no MediaPipe depth flattening to make up for)
    settings = TrackerSettings(filter=None, calibration_frames=0, depth_scale=1.0, fit=FitSettings(iterations=10))
    sequence = track_video(path, rig, settings=settings, detector=ScriptedDetector(landmarks), camera=cam)
    assert len(sequence) == 6 and sequence.fps == pytest.approx(24)
    np.testing.assert_allclose(sequence.timestamps, np.arange(6) / 24, atol=1e-6)
    np.testing.assert_array_equal(sequence.face_found, [True, True, True, False, True, True])
    for k in (0, 1, 2, 4, 5):
        assert rotation_error_deg(sequence.frames[k].rotation, truths[k].rotation) < 1.0
    np.testing.assert_array_equal(sequence.frames[3].rotation, sequence.frames[2].rotation)  # held

    out = tmp_path / "params.npz"
    save_params_npz(out, sequence)
    with np.load(out) as data:
        assert set(data.files) >= set(PARAM_FIELDS) | {"fps", "timestamps", "face_found"}
        assert data["expr"].shape == (6, rig.n_expr) and data["eyes_pose"].shape == (6, 6)
        assert data["rotation"].dtype == np.float32
    back = load_params_npz(out, rig)
    assert back.fps == sequence.fps and len(back) == 6
    np.testing.assert_array_equal(back.face_found, sequence.face_found)
    for a, b in zip(back.frames, sequence.frames):
        for name in PARAM_FIELDS:
            np.testing.assert_array_equal(getattr(a, name), np.asarray(getattr(b, name), np.float32))


def test_bad_parameter_files_are_refused(tmp_path):
    rig = sphere_rig()
    frame = random_params(rig, np.random.default_rng(1))
    good = TrackedSequence(frames=[frame, frame], fps=30.0, timestamps=np.array([0.0, 1 / 30]),
                           face_found=np.array([True, True]))
    with pytest.raises(ParamsFileError, match="not found"):
        load_params_npz(tmp_path / "none.npz")
    (tmp_path / "junk.npz").write_bytes(b"junk")
    with pytest.raises(ParamsFileError, match="cannot read"):
        load_params_npz(tmp_path / "junk.npz")
    np.savez(tmp_path / "partial.npz", fps=30.0, timestamps=np.zeros(2), expr=np.zeros((2, 3)))
    with pytest.raises(ParamsFileError, match="lacks shape"):
        load_params_npz(tmp_path / "partial.npz")
    save_params_npz(tmp_path / "ok.npz", good)
    data = dict(np.load(tmp_path / "ok.npz"))
    np.savez(tmp_path / "short.npz", **{**data, "rotation": data["rotation"][:1]})
    with pytest.raises(ParamsFileError, match="rotation must be"):
        load_params_npz(tmp_path / "short.npz")
    np.savez(tmp_path / "wide.npz", **{**data, "jaw_pose": np.zeros((2, 4))})
    with pytest.raises(ParamsFileError, match="jaw_pose must have 3"):
        load_params_npz(tmp_path / "wide.npz")
    other = sphere_rig(n_expr=5)
    with pytest.raises(Exception, match="expr"):
        load_params_npz(tmp_path / "ok.npz", other)
    with pytest.raises(ParamsFileError, match="no frames"):
        save_params_npz(tmp_path / "empty.npz", replace(good, frames=[]))


def test_track_video_with_mediapipe_on_a_real_face(tmp_path):
    import av
    import cv2
    from skimage.data import astronaut

    from realtime.rig.builtin import builtin_rig

    photo = astronaut()
    path = tmp_path / "face.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for k in range(12):  # the face drifts right, 2 px a frame
            shifted = cv2.warpAffine(photo, np.float32([[0.5, 0, 2 * k], [0, 0.5, 0]]), (256, 256))
            for packet in stream.encode(av.VideoFrame.from_ndarray(shifted, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    sequence = track_video(path, builtin_rig(), settings=TrackerSettings(filter=None))
    assert len(sequence) == 12 and sequence.fps == pytest.approx(25) and sequence.face_found.all()
    x = np.array([f.translation[0] for f in sequence.frames[5:]])  # after calibration: world x follows the face
    assert np.all(np.diff(x) > 0)
