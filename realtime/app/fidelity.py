"""Expression-transfer fidelity measured from outside: MediaPipe reads the driving video and the avatar video it
drove, and each face signal (``realtime.face.signals``) of the avatar is compared with the driver's.

Per signal: Pearson r over the frames where both show a face, and amplitude, the avatar's 5-95 % spread over the
driver's (1: the avatar moves as far as the person). Signals the driver hardly moves (standard deviation below
EXERCISED) are left out: their correlation would measure noise. `signal_range` gives the avatar's own reach
(for a scripted tour: how far it can close its lips, open its eyes, widen its mouth). `render_motion` makes
driving clips of known motion from any avatar (`other_identity` gives the demo avatar another head shape).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import islice
from pathlib import Path

import numpy as np

from realtime.face.detector import LandmarkDetector
from realtime.face.landmark_ids import N_LANDMARKS
from realtime.face.signals import ANGLES, SIGNALS, face_signals

# The least standard deviation a driver's signal must show to be compared: degrees for head angles, eye widths for
# gaze, inter-ocular distances for the rest.
EXERCISED = {**{name: 2.0 for name in ANGLES}, "gaze_x": 0.02, "gaze_y": 0.02}
EXERCISED_DEFAULT = 0.01
MIN_FRAMES = 10  # frames with a face in both videos below which a signal is not compared


def video_landmarks(path: str | Path, limit: int | None = None) -> np.ndarray:
    """(T, 478, 3) float32 MediaPipe landmarks (pixels) of every frame of a video, NaN where no face is found;
    FaceMesh in streaming mode, as the tracker runs it. limit: read at most this many frames."""
    from realtime.track.sources import VideoFileSource

    with VideoFileSource(path) as source, LandmarkDetector(static_image_mode=False) as detector:
        return frames_landmarks((frame.image for frame in islice(source, limit)), detector)


def frames_landmarks(images, detector: LandmarkDetector) -> np.ndarray:
    """(T, 478, 3) float32 landmarks of the largest face in each (H, W, 3) uint8 image, NaN where there is none."""
    rows = []
    for image in images:
        face = detector.detect_largest(image)
        rows.append(np.full((N_LANDMARKS, 3), np.nan, np.float32) if face is None else face.points)
    return np.stack(rows) if rows else np.zeros((0, N_LANDMARKS, 3), np.float32)


def spread(values: np.ndarray) -> float:
    """The 5-95 % percentile spread of the finite entries of (T,) values (NaN when none)."""
    v = values[np.isfinite(values)]
    return float(np.percentile(v, 95) - np.percentile(v, 5)) if len(v) else float("nan")


@dataclass(frozen=True)
class SignalFidelity:
    """r: Pearson correlation of avatar and driver; amplitude: avatar spread / driver spread; the two spreads
    (5-95 %, in the signal's unit); frames: how many frames both had a face."""

    r: float
    amplitude: float
    driver_spread: float
    avatar_spread: float
    frames: int


def compare(driver: dict[str, np.ndarray], avatar: dict[str, np.ndarray]) -> dict[str, SignalFidelity]:
    """Per exercised signal, the avatar's fidelity to the driver. driver, avatar: name -> (T,) as `face_signals`
    gives (the shorter sequence sets T; frames pair by index)."""
    out = {}
    for name in SIGNALS:
        n = min(len(driver[name]), len(avatar[name]))
        a, b = driver[name][:n], avatar[name][:n]
        both = np.isfinite(a) & np.isfinite(b)
        if both.sum() < MIN_FRAMES or np.std(a[both]) < EXERCISED.get(name, EXERCISED_DEFAULT):
            continue
        r = float(np.corrcoef(a[both], b[both])[0, 1]) if np.std(b[both]) > 1e-12 else 0.0
        ds, av = spread(a[both]), spread(b[both])
        out[name] = SignalFidelity(r=r, amplitude=av / ds if ds > 0 else float("nan"), driver_spread=ds,
                                   avatar_spread=av, frames=int(both.sum()))
    return out


def signal_range(signals: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Per signal, the min, 5 %, 95 % and max of its finite values (NaN throughout for a signal never seen)."""
    out = {}
    for name in SIGNALS:
        v = signals[name][np.isfinite(signals[name])]
        qs = np.percentile(v, [0, 5, 95, 100]) if len(v) else np.full(4, np.nan)
        out[name] = dict(zip(("min", "p5", "p95", "max"), (float(q) for q in qs)))
    return out


@dataclass
class TransferReport:
    """The fidelity of one avatar video to its driver: per-signal results, both videos' signals (name -> (T,))
    and how many frames of each had a face."""

    signals: dict[str, SignalFidelity]
    driver: dict[str, np.ndarray]
    avatar: dict[str, np.ndarray]
    driver_faces: int
    avatar_faces: int
    frames: int

    def summary(self) -> dict:
        """A JSON-able summary: per signal r, amplitude and spreads, frame counts, the least r."""
        rs = [s.r for s in self.signals.values()]
        return {"frames": self.frames, "driver_faces": self.driver_faces, "avatar_faces": self.avatar_faces,
                "signals": {name: asdict(s) for name, s in self.signals.items()},
                "min_r": float(min(rs)) if rs else float("nan")}


def measure_transfer(driver_video: str | Path, avatar_video: str | Path, limit: int | None = None) -> TransferReport:
    """Run MediaPipe on both videos and compare their signals frame by frame."""
    driver_points = video_landmarks(driver_video, limit)
    avatar_points = video_landmarks(avatar_video, limit)
    return transfer_report(driver_points, avatar_points)


def transfer_report(driver_points: np.ndarray, avatar_points: np.ndarray) -> TransferReport:
    """The report for (T, 478, 3) landmark sequences of driver and avatar (NaN rows: no face)."""
    driver, avatar = face_signals(driver_points), face_signals(avatar_points)
    faces = lambda p: int(np.all(np.isfinite(p[:, :, :2]), axis=(1, 2)).sum())  # noqa: E731
    return TransferReport(signals=compare(driver, avatar), driver=driver, avatar=avatar,
                          driver_faces=faces(driver_points), avatar_faces=faces(avatar_points),
                          frames=min(len(driver_points), len(avatar_points)))


def render_motion(avatar, motion, path: str | Path, size: int = 256, backend: str = "cpu") -> Path:
    """Write `motion` (realtime.app.motions.Motion) of `avatar` seen by its camera at size x size as an H.264 MP4
    at the motion's frame rate. Returns the path."""
    from realtime.app.offline import Mp4Writer
    from realtime.painter import AvatarPainter
    from realtime.pipeline import drive

    painter = AvatarPainter(avatar, avatar.camera.resized(size, size), backend=backend)
    with Mp4Writer(Path(path), size, size, motion.fps) as writer:
        for frame in drive(motion.frames, painter):
            writer.write(frame.image)
    return Path(path)


def other_identity(avatar, seed: int = 1, spread: float = 1.5):
    """`avatar` with another head shape: its identity coefficients plus `spread` times a random unit-normal
    draw per identity shape (seeded), so a clip of it shows a face the avatar's own rig has not been fitted to."""
    from dataclasses import replace

    rng = np.random.default_rng(seed)
    shape = np.asarray(avatar.shape, np.float32) + spread * rng.standard_normal(len(avatar.shape)).astype(np.float32)
    return replace(avatar, shape=shape, name=f"{avatar.name}-identity{seed}")
