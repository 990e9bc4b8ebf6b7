"""Face signals read from MediaPipe landmarks alone: how open the mouth and eyes are, how high the brows sit, how
wide the mouth is, where the irises look and how the head is turned.

These are the outside measure of expression transfer (``realtime.app.fidelity``): the same function reads the
driving person's landmarks and the avatar's, so neither the rig nor the fit enters the measure. Distances are in
units of the inter-ocular (iris centre to iris centre) distance, which cancels the face's size in the picture;
gaze is the iris centre's offset from the middle of its eye's corners, in eye widths (image axes: x right, y
down), the mean of both eyes; head angles are degrees of the rotation (Kabsch, on the 3D points) that takes the
sequence's mean face to each frame's. "Left" is the subject's left, as everywhere in the project.
"""

from __future__ import annotations

import numpy as np

from realtime.face import landmark_ids as ids

SIGNALS = ("mouth_open", "eye_left", "eye_right", "brow_left", "brow_right", "mouth_width", "gaze_x", "gaze_y",
           "yaw", "pitch", "roll")
ANGLES = ("yaw", "pitch", "roll")

# point pairs whose distance is a signal (subject's left and right as in landmark_ids)
DISTANCES = {
    "mouth_open": (13, 14),      # inner lips, upper and lower middle
    "eye_left": (386, 374),      # left eye's lids, middle
    "eye_right": (159, 145),     # right eye's lids, middle
    "brow_left": (334, 263),     # left brow's middle to the left eye's outer corner
    "brow_right": (105, 33),     # right brow's middle to the right eye's outer corner
    "mouth_width": (61, 291),    # mouth corners
}


def _distance(points: np.ndarray, a: int, b: int) -> np.ndarray:
    """(T,) image-plane distances between landmarks a and b of (T, 478, 2+) points."""
    return np.linalg.norm(points[:, a, :2] - points[:, b, :2], axis=1)


def gaze(points: np.ndarray) -> np.ndarray:
    """(T, 2) x, y of the irises against their eye corners, in eye widths, both eyes averaged.

    points: (T, 478, 2+) pixels (NaN rows where no face)."""
    offsets = []
    for iris, (outer, inner) in ((ids.LEFT_IRIS_CENTER, ids.LEFT_EYE_CORNERS),
                                 (ids.RIGHT_IRIS_CENTER, ids.RIGHT_EYE_CORNERS)):
        middle = 0.5 * (points[:, outer, :2] + points[:, inner, :2])
        width = _distance(points, outer, inner)[:, None]
        offsets.append((points[:, iris, :2] - middle) / width)
    return 0.5 * (offsets[0] + offsets[1])


def rotation_angles(rotation: np.ndarray) -> np.ndarray:
    """(T, 3) yaw, pitch, roll in degrees of (T, 3, 3) rotations in image axes (x right, y down, z away):
    R = Rz(roll) Ry(yaw) Rx(pitch)."""
    r = rotation
    yaw = np.arctan2(-r[:, 2, 0], np.hypot(r[:, 2, 1], r[:, 2, 2]))
    pitch = np.arctan2(r[:, 2, 1], r[:, 2, 2])
    roll = np.arctan2(r[:, 1, 0], r[:, 0, 0])
    return np.degrees(np.stack([yaw, pitch, roll], axis=1))


def head_rotations(points: np.ndarray) -> np.ndarray:
    """(T, 3, 3) rotations taking the sequence's mean face to each frame's (Kabsch on the 468 face points).

    points: (T, 478, 3) pixels with MediaPipe's depth (NaN rows where no face); NaN rotations for those rows."""
    face = points[:, :ids.N_FACE, :3].astype(np.float64)
    centred = face - face.mean(axis=1, keepdims=True)
    valid = np.all(np.isfinite(centred), axis=(1, 2))
    out = np.full((len(points), 3, 3), np.nan)
    if not valid.any():
        return out
    mean = centred[valid].mean(0)                                             # (468, 3)
    cross = np.einsum("nd,tne->tde", mean, centred[valid])                    # (T', 3, 3) Σ mean_n frame_nᵀ
    u, _, vt = np.linalg.svd(cross)
    flip = np.sign(np.linalg.det(np.einsum("tij,tjk->tik", u, vt)))
    d = np.ones((len(flip), 3))
    d[:, 2] = flip
    out[valid] = np.einsum("tji,tj,tkj->tik", vt, d, u)                       # V D Uᵀ
    return out


def face_signals(points: np.ndarray) -> dict[str, np.ndarray]:
    """Every signal of SIGNALS for a sequence of faces.

    points: (T, 478, 3) float MediaPipe landmarks in pixels (x right, y down, depth scaled like x), NaN where a
    frame has no face. Returns name -> (T,) float64, NaN where no face.
    """
    p = np.asarray(points, np.float64)
    if p.ndim != 3 or p.shape[1] != ids.N_LANDMARKS or p.shape[2] != 3:
        raise ValueError(f"points must be (T, {ids.N_LANDMARKS}, 3), got {p.shape}")
    iod = _distance(p, ids.LEFT_IRIS_CENTER, ids.RIGHT_IRIS_CENTER)
    out = {name: _distance(p, a, b) / iod for name, (a, b) in DISTANCES.items()}
    g = gaze(p)
    out["gaze_x"], out["gaze_y"] = g[:, 0], g[:, 1]
    angles = rotation_angles(head_rotations(p))
    for k, name in enumerate(ANGLES):
        out[name] = angles[:, k] - np.nanmean(angles[:, k]) if np.isfinite(angles[:, k]).any() else angles[:, k]
    return {name: out[name] for name in SIGNALS}
