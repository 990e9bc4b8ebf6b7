"""Offline rendering and the CLI that starts it, as a user would run them."""

import subprocess
import sys

from dataclasses import replace

import av
import numpy as np
import pytest
from skimage.data import astronaut

from realtime.avatar.native import save_avatar
from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.app.motions import TOUR_JAW, tour
from realtime.app.offline import render_to_file
from realtime.rig.synthetic import synthetic_rig
from realtime.painter import AvatarPainter
from realtime.pipeline import drive
from realtime.track.params_file import TrackedSequence, load_params_npz, save_params_npz


@pytest.fixture(scope="module")
def avatar():
    rig = synthetic_rig()
    a = random_avatar(rig, 3000, seed=2)
    return replace(a, camera=frontal_camera(rig.v_template.mean(0), distance=1.0, size=64))


def _decode(path):
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, float(stream.average_rate)


def test_still_png_is_a_rendered_picture(avatar, tmp_path):
    out = tmp_path / "still.png"
    assert render_to_file(avatar, "still", out, size=96, progress=False) == 1
    (image,), _ = _decode(out)
    assert image.shape == (96, 96, 3)
    assert image.max() > 50 and image[0, 0].max() < 10  # the avatar in the middle, black corners


def test_tour_mp4_has_one_frame_per_driver_frame_at_its_rate(avatar, tmp_path):
    out = tmp_path / "tour.mp4"
    expected = len(tour(avatar.rig, avatar.shape))
    assert render_to_file(avatar, "tour", out, size=64, progress=False) == expected
    frames, fps = _decode(out)
    assert len(frames) == expected and fps == pytest.approx(25.0)
    jaw_peak = int(round((TOUR_JAW[0] + TOUR_JAW[1] / 2) * fps))
    assert np.abs(frames[0].astype(int) - frames[jaw_peak].astype(int)).max() > 20  # the jaw moved


def test_parameter_file_drives_the_avatar(avatar, tmp_path):
    """The .npz's frames are drawn in order: each decoded frame is the in-process drawing of its parameters."""
    motion = tour(avatar.rig, avatar.shape, fps=12.0, seconds=10.0)
    chosen = motion.frames[::20][:6]
    sequence = TrackedSequence(frames=chosen, fps=12.0, timestamps=np.arange(6) / 12.0, face_found=np.ones(6, bool))
    params = tmp_path / "params.npz"
    save_params_npz(params, sequence)
    out = tmp_path / "from_params.mp4"
    assert render_to_file(avatar, str(params), out, size=64, progress=False) == 6
    frames, fps = _decode(out)
    assert len(frames) == 6 and fps == pytest.approx(12.0)
    painter = AvatarPainter(avatar, avatar.camera.resized(64, 64), backend="cpu")
    expected = [frame.image for frame in drive(load_params_npz(params, avatar.rig).frames, painter)]
    errors = [np.abs(got.astype(float) - want).mean() for got, want in zip(frames, expected)]
    changes = [np.abs(want.astype(float) - expected[0]).mean() for want in expected[1:]]
    assert max(changes) > 4 * max(errors), "the parameter file's frames do not move the avatar"
    assert max(errors) < 6, f"decoded frames differ from the in-process drawing of their parameters: {errors}"


def test_face_video_drives_one_output_frame_per_input_frame(avatar, tmp_path):
    video = tmp_path / "face.mp4"
    face = np.ascontiguousarray(astronaut()[:256, 100:356])
    with av.open(str(video), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for i in range(8):
            shifted = np.roll(face, 2 * i, axis=1)
            for packet in stream.encode(av.VideoFrame.from_ndarray(shifted, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    out = tmp_path / "driven.mp4"
    assert render_to_file(avatar, str(video), out, size=64, progress=False) == 8
    frames, fps = _decode(out)
    assert len(frames) == 8 and fps == pytest.approx(10.0)


def _face_video(path, faces: list[bool]) -> None:
    """A 10 fps clip of the astronaut's face (True) or of a blank grey frame (False), frame by frame."""
    face = np.ascontiguousarray(astronaut()[:256, 100:356])
    blank = np.full_like(face, 128)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=10)
        stream.width, stream.height, stream.pix_fmt = 256, 256, "yuv420p"
        for shown in faces:
            for packet in stream.encode(av.VideoFrame.from_ndarray(face if shown else blank, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def test_frames_without_a_face_are_reported_and_idled_through(avatar, tmp_path):
    from realtime.rig.builtin import builtin_rig

    face_rig = random_avatar(builtin_rig(), 2000, seed=3)  # a rig the astronaut's face is fitted to
    face_rig = replace(face_rig, camera=frontal_camera(face_rig.rig.v_template.mean(0), distance=0.6, size=64))
    video = tmp_path / "half.mp4"
    _face_video(video, [True] * 6 + [False] * 6)
    notes = []
    assert render_to_file(face_rig, str(video), tmp_path / "half_out.mp4", size=64, progress=False,
                          report=notes.append) == 12
    assert notes == [f"6 of 12 frames of {video} had no face: the avatar idled through them"]
    empty = tmp_path / "empty.mp4"
    _face_video(empty, [False] * 8)
    notes.clear()
    assert render_to_file(avatar, str(empty), tmp_path / "empty_out.mp4", size=64, progress=False,
                          report=notes.append) == 8
    assert len(notes) == 1 and "no face found in any of the 8 frames" in notes[0]
    notes.clear()
    render_to_file(avatar, "tour", tmp_path / "tour.mp4", size=32, progress=False, report=notes.append)
    assert notes == []  # a scripted motion has nothing to report


def test_cli_render_says_when_the_video_shows_no_face(avatar, tmp_path):
    path = tmp_path / "avatar.rtav"
    save_avatar(avatar, path)
    empty = tmp_path / "empty.mp4"
    _face_video(empty, [False] * 5)
    done = subprocess.run([sys.executable, "-m", "realtime.app.cli", "render", "--avatar", str(path), "--driver",
                           str(empty), "--out", str(tmp_path / "out.mp4"), "--size", "32", "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "no face found in any of the 5 frames" in done.stderr


def test_bad_requests_are_refused_with_clear_errors(avatar, tmp_path):
    with pytest.raises(ValueError, match="neither a built-in motion"):
        render_to_file(avatar, "dance", tmp_path / "x.mp4", progress=False)
    with pytest.raises(ValueError, match=r"must end in \.mp4 or \.png"):
        render_to_file(avatar, "still", tmp_path / "x.avi", progress=False)
    with pytest.raises(ValueError, match="--size must be"):
        render_to_file(avatar, "still", tmp_path / "x.png", size=7, progress=False)


def test_cli_info_and_render_run_as_a_user_runs_them(avatar, tmp_path):
    path = tmp_path / "avatar.rtav"
    save_avatar(avatar, path)
    info = subprocess.run([sys.executable, "-m", "realtime.app.cli", "info", str(path)], capture_output=True, text=True,
                          timeout=120)
    assert info.returncode == 0, info.stderr
    assert "3000" in info.stdout and "synthetic" in info.stdout
    out = tmp_path / "cli.png"
    done = subprocess.run([sys.executable, "-m", "realtime.app.cli", "render", "--avatar", str(path), "--driver", "still",
                           "--out", str(out), "--size", "64", "--quiet"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert out.stat().st_size > 100
    bad = subprocess.run([sys.executable, "-m", "realtime.app.cli", "render", "--avatar", str(tmp_path / "missing.rtav"),
                          "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "error" in bad.stderr and "missing.rtav" in bad.stderr
