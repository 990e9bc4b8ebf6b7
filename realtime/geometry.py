"""Rotation helpers shared by the rig, the avatar, the deformers and the renderers.

Conventions (DESIGN.md): axis-angle vectors of 3 numbers, quaternions as
(w, x, y, z), rotation matrices acting on column vectors. Every function keeps
the floating dtype of its input (float32 on the hot path, float64 for checks).

The quaternion functions (normalize, product, to matrix) are the one home of that math for NumPy and torch
alike: indexing and arithmetic, with the stack and the norm chosen by the input's type, so they take NumPy
arrays (or anything `np.asarray` takes) and torch tensors on any device (differentiable), and return the same
kind. The others take NumPy arrays.
"""

from __future__ import annotations

from typing import Any

import numpy as np


def axis_angle_to_matrix(rotvec: np.ndarray) -> np.ndarray:
    """Rodrigues' formula.

    rotvec: (..., 3) axis-angle vectors.
    Returns (..., 3, 3) rotation matrices; a zero vector gives the identity.
    """
    rotvec = np.asarray(rotvec)
    dtype = rotvec.dtype if rotvec.dtype.kind == "f" else np.float64
    rotvec = rotvec.astype(dtype, copy=False)
    angle = np.linalg.norm(rotvec, axis=-1, keepdims=True)
    axis = rotvec / np.maximum(angle, np.finfo(dtype).tiny)
    x, y, z = axis[..., 0], axis[..., 1], axis[..., 2]
    zero = np.zeros_like(x)
    skew = np.stack([zero, -z, y, z, zero, -x, -y, x, zero], axis=-1).reshape(rotvec.shape[:-1] + (3, 3))
    sin = np.sin(angle)[..., None]
    cos = np.cos(angle)[..., None]
    eye = np.eye(3, dtype=dtype)
    return (eye + sin * skew + (1.0 - cos) * (skew @ skew)).astype(dtype, copy=False)


def matrix_to_quaternion(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices to unit quaternions with a non-negative w.

    matrix: (..., 3, 3). Returns (..., 4) as (w, x, y, z).
    Uses the branch on the largest diagonal term, so it is stable for every
    rotation, including 180-degree ones.
    """
    m = np.asarray(matrix)
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    candidates = np.stack(
        [
            np.stack([1 + trace, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
            np.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
            np.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
            np.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
        ],
        axis=-2,
    )
    pick = np.argmax(np.stack([trace, m00, m11, m22], -1), axis=-1)
    q = np.take_along_axis(candidates, pick[..., None, None], axis=-2)[..., 0, :]
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    return np.where(q[..., :1] < 0, -q, q)


def quaternion_to_matrix(quat: Any) -> Any:
    """Quaternions (..., 4) as (w, x, y, z), any norm, to (..., 3, 3) rotation matrices (NumPy or torch)."""
    q = quaternion_normalize(quat)
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    rows = [
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ]
    return _stack_last(rows, q).reshape(tuple(q.shape[:-1]) + (3, 3))


def quaternion_normalize(quat: Any) -> Any:
    """(..., 4) quaternions scaled to unit length (NumPy, or torch by `torch.nn.functional.normalize`)."""
    if _is_tensor(quat):
        import torch

        return torch.nn.functional.normalize(quat, dim=-1)
    quat = np.asarray(quat)
    return quat / np.linalg.norm(quat, axis=-1, keepdims=True)


def quaternion_multiply(a: Any, b: Any) -> Any:
    """Hamilton product a ⊗ b of (..., 4) quaternions (w, x, y, z): rotate by b, then by a (NumPy or torch)."""
    a, b = _as_array(a), _as_array(b)
    aw, ax, ay, az = a[..., 0], a[..., 1], a[..., 2], a[..., 3]
    bw, bx, by, bz = b[..., 0], b[..., 1], b[..., 2], b[..., 3]
    return _stack_last(
        [
            aw * bw - ax * bx - ay * by - az * bz,
            aw * bx + ax * bw + ay * bz - az * by,
            aw * by - ax * bz + ay * bw + az * bx,
            aw * bz + ax * by - ay * bx + az * bw,
        ],
        a,
    )


def matrix_to_axis_angle(matrix: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) to axis-angle vectors (..., 3) with angles in [0, pi] (inverse of Rodrigues)."""
    q = matrix_to_quaternion(matrix)
    w, xyz = q[..., :1], q[..., 1:]
    n = np.linalg.norm(xyz, axis=-1, keepdims=True)
    small = n < 1e-8
    factor = np.where(small, 2.0 / np.maximum(w, 1e-12), 2.0 * np.arctan2(n, w) / np.where(small, 1.0, n))
    return xyz * factor


def _is_tensor(value: Any) -> bool:
    """Whether `value` is a torch tensor, told from its type so that NumPy callers never import torch."""
    return type(value).__module__.split(".")[0] == "torch"


def _as_array(value: Any) -> Any:
    """A torch tensor as it is; anything else as a NumPy array."""
    return value if _is_tensor(value) else np.asarray(value)


def _stack_last(parts: list[Any], like: Any) -> Any:
    """`parts` (arrays of one shape) stacked on a new last axis, by torch when `like` is a tensor, else NumPy."""
    if _is_tensor(like):
        import torch

        return torch.stack(parts, dim=-1)
    return np.stack(parts, axis=-1)
