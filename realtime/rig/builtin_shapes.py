"""The built-in rig's identity blend shapes: a few smooth, named modes of head shape.

Each mode is a displacement field over space (metres at coefficient 1, about
one standard deviation of adult variation), evaluated at the template's
vertices. Eyeballs and teeth do not stretch: they take the field's value at
their centre as a translation.
"""

from __future__ import annotations

import numpy as np

from realtime.rig.builtin_head import NECK, HeadMesh, smoothstep

SHAPE_NAMES = ("head_width", "head_height", "head_length", "face_length", "jaw_width", "chin", "nose_size",
               "nose_projection", "eye_spacing", "mouth_width", "lip_fullness", "cheek_fullness", "brow_ridge",
               "neck_width", "forehead_slope")
RIGID_PARTS = ("eyeball_left", "eyeball_right", "teeth_upper", "teeth_lower")


def _ramp(t: np.ndarray, top: float = np.inf, soft: float = 0.01) -> np.ndarray:
    """Smooth max(t, 0), held at `top` above it."""
    r = 0.5 * (t + np.sqrt(t * t + soft * soft))
    return r if not np.isfinite(top) else top - 0.5 * ((top - r) + np.sqrt((top - r) ** 2 + soft * soft))


def _bump(p: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    return np.exp(-((p - center) ** 2).sum(-1) / (2 * radius * radius))


def identity_fields(p: np.ndarray, landmarks: np.ndarray, eye_centers: np.ndarray) -> np.ndarray:
    """Displacements of points p (N, 3) for each identity mode: (N, 3, S), S = len(SHAPE_NAMES).

    landmarks: (478, 3) the template's MediaPipe vertices; eye_centers: (2, 3).
    """
    x, y, z = p[:, 0], p[:, 1], p[:, 2]
    zero = np.zeros_like(x)
    eye_y = eye_centers[:, 1].mean()
    mouth = 0.5 * (landmarks[13] + landmarks[14])
    tip, chin = landmarks[4], landmarks[152]
    nose_root = np.array([0.0, tip[1], tip[2] - 0.02])
    face_front = smoothstep((z + 0.03) / 0.04)
    jaw = smoothstep((mouth[1] - y) / 0.04) * face_front * smoothstep((y + 0.15) / 0.04)
    cheeks = sum(_bump(p, c, 0.02) for c in (mouth + [0.045, 0.015, -0.02], mouth + [-0.045, 0.015, -0.02]))
    brows = sum(_bump(p, c, 0.015) for c in (landmarks[334], landmarks[105]))
    eyes = _bump(p, eye_centers[0], 0.018) - _bump(p, eye_centers[1], 0.018)
    lips = _bump(p, mouth, 0.015)
    neck = smoothstep((-0.08 - y) / 0.04)
    fields = [
        (0.05 * x, zero, zero),
        (zero, 0.06 * _ramp(y - eye_y), zero),
        (zero, zero, -0.05 * _ramp(-z)),
        (zero, -0.05 * _ramp(eye_y - y, top=0.12), zero),
        (0.08 * x * jaw, zero, zero),
        (zero, -0.003 * _bump(p, chin, 0.015), 0.002 * _bump(p, chin, 0.015)),
        tuple(0.12 * (p - nose_root).T * _bump(p, tip, 0.015)),
        (zero, zero, 0.003 * _bump(p, tip, 0.012)),
        (0.002 * eyes, zero, zero),
        (0.12 * x * _bump(p, mouth, 0.025), zero, zero),
        (zero, 0.002 * np.tanh((y - mouth[1]) / 0.004) * lips, 0.001 * lips),
        (0.004 * np.sign(x) * cheeks, zero, 0.0012 * cheeks),
        (zero, zero, 0.003 * brows),
        (0.1 * x * neck, zero, 0.1 * (z - NECK[0][1]) * neck),
        (zero, zero, -0.003 * _ramp(y - 0.05, top=0.09) / 0.09 * face_front),
    ]
    return np.stack([np.stack(f, -1) for f in fields], -1)


def shape_basis(head: HeadMesh) -> np.ndarray:
    """shape_dirs: (V, 3, S) for the template, with eyeballs and teeth moved rigidly."""
    v = head.vertices
    landmarks = v[:478]
    dirs = identity_fields(v, landmarks, head.eye_centers)
    for name in RIGID_PARTS:
        ids = head.parts[name]
        dirs[ids] = identity_fields(v[ids].mean(0, keepdims=True), landmarks, head.eye_centers)
    return dirs
