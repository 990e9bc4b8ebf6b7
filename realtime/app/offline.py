"""Offline rendering: an avatar driven by a parameter file, a built-in driver or a face video, to MP4 or PNG.

The offline twin of the live loop: one output frame for every driving frame,
at the driver's frame rate, so input and output compare frame by frame.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import av
import numpy as np

from realtime.avatar.gaussians import Avatar
from realtime.app.motions import BUILTIN_MOTIONS, builtin_motion
from realtime.painter import AvatarPainter
from realtime.pipeline import drive
from realtime.rig.model import RigParams
from realtime.track.params_file import load_params_npz
from realtime.track.video import track_video

VIDEO_SUFFIXES = (".mp4", ".mov", ".mkv", ".webm", ".avi", ".m4v")


@dataclass
class Driving:
    """frames: one RigParams per output frame; fps: their rate; faceless: how many frames of a face video had no
    face (None for drivers that are not videos)."""

    frames: list[RigParams]
    fps: float
    faceless: int | None = None


def load_driver(spec: str, avatar: Avatar, progress: bool = False) -> Driving:
    """Resolve a driver spec to the frames that drive `avatar`.

    spec: a built-in name (still, turntable, tour), a parameter file (.npz, as `realtime track` writes),
    or a face video (tracked frame by frame with the avatar's rig, the head's turns carried into the avatar's
    camera; frames without a face idle: the avatar eases to neutral and blinks). Tracked parameters drive the
    avatar's own identity: their `shape` (the driving person's) is replaced by the avatar's.
    """
    if spec in BUILTIN_MOTIONS:
        motion = builtin_motion(spec, avatar.rig, avatar.shape)
        return Driving(motion.frames, motion.fps)
    path = Path(spec)
    suffix = path.suffix.lower()
    if suffix not in (".npz",) + VIDEO_SUFFIXES:
        raise ValueError(f"driver {spec!r} is neither a built-in motion ({', '.join(BUILTIN_MOTIONS)}), "
                         f"a parameter file (.npz) nor a video ({', '.join(VIDEO_SUFFIXES)})")
    faceless = None
    if suffix == ".npz":
        sequence = load_params_npz(path, avatar.rig)
    else:
        sequence = track_video(path, avatar.rig, progress=progress, view=avatar.camera.viewmat[:3, :3])
        faceless = int(np.count_nonzero(~sequence.face_found))
    for params in sequence.frames:
        params.shape = avatar.shape.astype(np.float32)
    return Driving(sequence.frames, sequence.fps, faceless)


def faceless_note(driving: Driving, driver: str) -> str | None:
    """What to tell the user about a face video's frames without a face (None when every frame had one)."""
    if not driving.faceless:
        return None
    n = len(driving.frames)
    if driving.faceless == n:
        return f"no face found in any of the {n} frames of {driver}: the avatar idled (neutral, blinking) throughout"
    return f"{driving.faceless} of {n} frames of {driver} had no face: the avatar idled through them"


def _to_stderr(line: str) -> None:
    print(line, file=sys.stderr)


def write_png(image: np.ndarray, path: Path) -> None:
    """(H, W, 3) uint8 RGB to a PNG file."""
    frame = av.VideoFrame.from_ndarray(image, format="rgb24")
    with av.open(str(path), mode="w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = image.shape[1], image.shape[0], "rgb24"
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


class Mp4Writer:
    """H.264 (libx264, yuv420p) MP4 writer through PyAV; frames are (H, W, 3) uint8 RGB."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 20) -> None:
        from fractions import Fraction

        self._container = av.open(str(path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=Fraction(fps).limit_denominator(1001))
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.options = {"crf": str(crf), "preset": "veryfast"}

    def write(self, image: np.ndarray) -> None:
        for packet in self._stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
            self._container.mux(packet)

    def close(self) -> None:
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()

    def __enter__(self) -> "Mp4Writer":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def render_to_file(avatar: Avatar, driver: str, out: str | Path, size: int = 512, backend: str = "auto",
                   progress: bool = True, report: Callable[[str], None] | None = None) -> int:
    """Render `avatar` driven by `driver` to `out` (.mp4: every frame; .png: the first frame). Returns frames written.

    report: called with a note when a face video has frames without a face (default: printed to stderr)."""
    out = Path(out)
    suffix = out.suffix.lower()
    if suffix not in (".mp4", ".png"):
        raise ValueError(f"--out must end in .mp4 or .png, got {out.name!r}")
    if not 16 <= size <= 4096 or size % 2:
        raise ValueError(f"--size must be an even number of pixels between 16 and 4096, got {size}")
    driving = load_driver(driver, avatar, progress=progress)
    frames, fps = driving.frames, driving.fps
    if not frames:
        raise ValueError(f"driver {driver!r} gave no frames")
    note = faceless_note(driving, driver)
    if note is not None:
        (report or _to_stderr)(note)
    camera = avatar.camera.resized(size, size)
    painter = AvatarPainter(avatar, camera, backend=backend)
    pictures = drive(frames, painter)
    if suffix == ".png":
        write_png(next(pictures).image, out)
        return 1
    from tqdm import tqdm

    written = 0
    with Mp4Writer(out, size, size, fps) as writer:
        for frame in tqdm(pictures, total=len(frames), unit="frame", disable=not progress, desc=out.name):
            writer.write(frame.image)
            written += 1
    return written
