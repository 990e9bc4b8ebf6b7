"""Built-in motions: `still`, `turntable` and `tour` (an expression tour).

A motion is a scripted sequence of RigParams at a frame rate: one kind of driver (the other kinds are camera
frames from a browser, a webcam or a video file, which the tracker turns into RigParams). The tour names ARKit-style
expressions; on a rig without those names (FLAME) it drives its leading
expression components instead, so every rig moves.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.rig.model import Rig, RigParams

BUILTIN_MOTIONS = ("still", "turntable", "tour")


@dataclass
class Motion:
    """frames: the parameter set of each output frame; fps: their rate."""

    frames: list[RigParams]
    fps: float

    def __len__(self) -> int:
        return len(self.frames)


def _bump(t: np.ndarray, start: float, length: float) -> np.ndarray:
    """A raised-cosine pulse from 0 up to 1 and back over [start, start + length] seconds."""
    x = np.clip((t - start) / length, 0.0, 1.0)
    return 0.5 - 0.5 * np.cos(2 * np.pi * x)


def _expression_index(rig: Rig, name: str, fallback: int) -> int | None:
    if name in rig.expr_names:
        return rig.expr_names.index(name)
    return fallback if fallback < rig.n_expr else None


# (expression name, fallback component on rigs without names, start s, length s, weight)
_TOUR_EXPRESSIONS = (
    ("eyeBlinkLeft", 0, 1.0, 0.4, 1.0), ("eyeBlinkRight", 0, 1.0, 0.4, 1.0),
    ("mouthSmileLeft", 1, 2.0, 1.5, 1.0), ("mouthSmileRight", 1, 2.0, 1.5, 1.0),
    ("browInnerUp", 2, 3.5, 1.2, 1.0), ("browOuterUpLeft", 2, 3.5, 1.2, 0.8), ("browOuterUpRight", 2, 3.5, 1.2, 0.8),
    ("mouthPucker", 3, 5.0, 1.0, 1.0), ("eyeBlinkLeft", 0, 6.2, 0.4, 1.0), ("eyeBlinkRight", 0, 6.2, 0.4, 1.0),
    ("cheekPuff", 4, 7.5, 1.0, 0.8),
    ("eyeWideLeft", 5, 12.5, 1.0, 1.0), ("eyeWideRight", 5, 12.5, 1.0, 1.0),
    ("browInnerUp", 2, 12.5, 1.0, 1.0), ("browOuterUpLeft", 2, 12.5, 1.0, 1.0), ("browOuterUpRight", 2, 12.5, 1.0, 1.0),
)
TOUR_JAW = (0.0, 1.0, 0.55)             # start s, length s, peak radians (a wide-open mouth)
TOUR_GAZE_YAW = (10.0, 1.5, 0.5)        # start s, length s, peak radians: left, then right
TOUR_GAZE_PITCH = (11.5, 1.0, 0.3)      # up, then down


def _swing(t: np.ndarray, start: float, length: float) -> np.ndarray:
    """One period of a sine from 0 over [start, start + length] seconds, 0 outside."""
    return np.sin(2 * np.pi * np.clip((t - start) / length, 0.0, 1.0))


def tour(rig: Rig, shape: np.ndarray, fps: float = 25.0, seconds: float = 13.5) -> Motion:
    """An expression tour: jaw open and close, blinks, smile, brows, pucker, cheek puff, head yaw, pitch and roll,
    the eyes looking left, right, up and down, then surprise (eyes wide, brows up)."""
    t = np.arange(int(round(seconds * fps))) / fps
    expr = np.zeros((len(t), rig.n_expr))
    for name, fallback, start, length, weight in _TOUR_EXPRESSIONS:
        index = _expression_index(rig, name, fallback)
        if index is not None:
            expr[:, index] = np.maximum(expr[:, index], weight * _bump(t, start, length))
    jaw = TOUR_JAW[2] * _bump(t, *TOUR_JAW[:2])
    yaw = np.radians(30) * _swing(t, 6.0, 2.0)
    pitch = np.radians(15) * _swing(t, 8.0, 1.0)
    roll = np.radians(15) * _swing(t, 9.0, 1.0)
    eye_yaw = TOUR_GAZE_YAW[2] * _swing(t, *TOUR_GAZE_YAW[:2])
    eye_pitch = -TOUR_GAZE_PITCH[2] * _swing(t, *TOUR_GAZE_PITCH[:2])
    frames = []
    for i in range(len(t)):
        p = RigParams.neutral(rig)
        p.shape = shape.astype(np.float32)
        p.expr = expr[i].astype(np.float32)
        p.jaw_pose = np.array([jaw[i], 0, 0], np.float32)
        p.rotation = np.array([pitch[i], yaw[i], roll[i]], np.float32)
        p.eyes_pose = np.array([eye_pitch[i], eye_yaw[i], 0, eye_pitch[i], eye_yaw[i], 0], np.float32)
        frames.append(p)
    return Motion(frames=frames, fps=fps)


def with_lead_in(motion: Motion, rig: Rig, shape: np.ndarray, seconds: float = 1.0) -> Motion:
    """`motion` after `seconds` at rest: a driving clip made from it starts on the neutral face that a tracker
    calibrates on."""
    rest = still(rig, shape, motion.fps).frames[0]
    return Motion(frames=[rest] * int(round(seconds * motion.fps)) + motion.frames, fps=motion.fps)


def turntable(rig: Rig, shape: np.ndarray, fps: float = 25.0, seconds: float = 6.0) -> Motion:
    """One full turn of the head about the vertical axis."""
    n = int(round(seconds * fps))
    frames = []
    for i in range(n):
        p = RigParams.neutral(rig)
        p.shape = shape.astype(np.float32)
        p.rotation = np.array([0, 2 * np.pi * i / n, 0], np.float32)
        frames.append(p)
    return Motion(frames=frames, fps=fps)


def still(rig: Rig, shape: np.ndarray, fps: float = 25.0) -> Motion:
    """One frame at rest."""
    p = RigParams.neutral(rig)
    p.shape = shape.astype(np.float32)
    return Motion(frames=[p], fps=fps)


def builtin_motion(name: str, rig: Rig, shape: np.ndarray) -> Motion:
    """The built-in motion called `name` (one of BUILTIN_MOTIONS)."""
    makers = {"still": still, "turntable": turntable, "tour": tour}
    if name not in makers:
        raise ValueError(f"unknown built-in motion {name!r}; expected one of {', '.join(BUILTIN_MOTIONS)}")
    return makers[name](rig, shape)
