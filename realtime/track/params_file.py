"""Parameter files: a sequence of rig parameters saved and loaded as .npz (what `realtime track` writes).

File layout: one array per RigParams field, stacked over frames (`shape` (T, S),
`expr` (T, E), `rotation` (T, 3), `neck_pose` (T, 3), `jaw_pose` (T, 3), `eyes_pose`
(T, 6), `translation` (T, 3), float32), plus `fps` (scalar), `timestamps` (T,) seconds
on the video's timeline, and `face_found` (T,) bool.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.npzfile import read_npz
from realtime.rig.model import Rig, RigParams

PARAM_FIELDS = ("shape", "expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation")
FIXED_SIZES = {"rotation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6, "translation": 3}


class ParamsFileError(ValueError):
    """A parameter file that is missing keys or whose arrays do not agree."""


@dataclass
class TrackedSequence:
    """frames: one RigParams per video frame; fps: the video's frame rate; timestamps: (T,) seconds;
    face_found: (T,) bool, False where the tracker held or eased the pose."""

    frames: list[RigParams]
    fps: float
    timestamps: np.ndarray
    face_found: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)


def save_params_npz(path: str | Path, sequence: TrackedSequence) -> None:
    """Write `sequence` to `path` (.npz, layout in the module doc)."""
    if not sequence.frames:
        raise ParamsFileError("nothing to save: the sequence has no frames")
    arrays = {name: np.stack([np.asarray(getattr(p, name), np.float32) for p in sequence.frames])
              for name in PARAM_FIELDS}
    np.savez(Path(path), fps=np.float64(sequence.fps), timestamps=np.asarray(sequence.timestamps, np.float64),
             face_found=np.asarray(sequence.face_found, bool), **arrays)


def load_params_npz(path: str | Path, rig: Rig | None = None) -> TrackedSequence:
    """Read a sequence written by :func:`save_params_npz`; with `rig`, check that the sizes fit it."""
    path = Path(path)
    if not path.is_file():
        raise ParamsFileError(f"parameter file not found: {path}")
    data = read_npz(path, PARAM_FIELDS + ("fps", "timestamps"), ParamsFileError, "cannot read the parameter file")
    arrays = {k: data[k] for k in PARAM_FIELDS}
    fps = float(data["fps"])
    stamps = data["timestamps"]
    found = data.get("face_found", np.ones(len(stamps), bool))
    n = len(stamps)
    for name, value in arrays.items():
        if value.ndim != 2 or value.shape[0] != n:
            raise ParamsFileError(f"{path}: {name} must be ({n}, K), got {value.shape}")
        if name in FIXED_SIZES and value.shape[1] != FIXED_SIZES[name]:
            raise ParamsFileError(f"{path}: {name} must have {FIXED_SIZES[name]} values a frame, got {value.shape[1]}")
    if not fps > 0:
        raise ParamsFileError(f"{path}: fps must be positive, got {fps}")
    frames = [RigParams(**{k: arrays[k][t] for k in PARAM_FIELDS}) for t in range(n)]
    if rig is not None and frames:
        frames[0].check(rig)
    return TrackedSequence(frames=frames, fps=fps, timestamps=stamps, face_found=found)
