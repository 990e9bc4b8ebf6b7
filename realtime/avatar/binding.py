"""The mesh binding of GaussianAvatars: per-triangle frames and the per-Gaussian transform (NumPy).

For a triangle (v0, v1, v2):
    a0 = normalize(v1 - v0), a1 = normalize(cross(a0, v2 - v0)), a2 = -normalize(cross(a1, a0))
    R = [a0 | a1 | a2] (columns), k = (|v1 - v0| + |dot(a2, v2 - v0)|) / 2, c = (v0 + v1 + v2) / 3
and for a Gaussian bound to it:
    mean = k · R · local + c,  scale = exp(log_scale) · k,  quat = quat(R) ⊗ normalize(local_quat)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.geometry import matrix_to_quaternion, quaternion_multiply, quaternion_normalize


def _normalize(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v, axis=-1, keepdims=True)


@dataclass
class TriangleFrames:
    """rotations: (F, 3, 3) columns a0, a1 (normal), a2; scales: (F,); centers: (F, 3)."""

    rotations: np.ndarray
    scales: np.ndarray
    centers: np.ndarray


def triangle_frames(vertices: np.ndarray, faces: np.ndarray) -> TriangleFrames:
    """Frames of every triangle. vertices: (V, 3), faces: (F, 3)."""
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    e1, e2 = v1 - v0, v2 - v0
    a0 = _normalize(e1)
    a1 = _normalize(np.cross(a0, e2))
    a2 = -_normalize(np.cross(a1, a0))
    rotations = np.stack([a0, a1, a2], axis=-1)
    scales = (np.linalg.norm(e1, axis=-1) + np.abs(np.sum(a2 * e2, axis=-1))) / 2
    centers = (v0 + v1 + v2) / 3
    return TriangleFrames(rotations=rotations, scales=scales, centers=centers)


@dataclass
class WorldGaussians:
    """Deformed Gaussians in rig/world space: means (N, 3), quats (N, 4) unit (w, x, y, z), scales (N, 3) linear."""

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray


def bind(frames: TriangleFrames, binding: np.ndarray, local_means: np.ndarray, local_quats: np.ndarray,
         log_scales: np.ndarray) -> WorldGaussians:
    """World attributes of bound Gaussians.

    binding: (N,) parent face per Gaussian; local_means: (N, 3); local_quats: (N, 4); log_scales: (N, 3).
    """
    rot = frames.rotations[binding]
    k = frames.scales[binding][:, None]
    means = k * np.einsum("nab,nb->na", rot, local_means) + frames.centers[binding]
    face_quats = matrix_to_quaternion(frames.rotations)  # once per face, not per Gaussian
    quats = quaternion_normalize(quaternion_multiply(face_quats[binding], quaternion_normalize(local_quats)))
    scales = np.exp(log_scales) * k
    return WorldGaussians(means=means, quats=quats, scales=scales)


def unbind(frames: TriangleFrames, binding: np.ndarray, world: WorldGaussians) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Inverse of `bind`: local means (N, 3), local quats (N, 4) and log-scales (N, 3) that give `world`."""
    rot = frames.rotations[binding]
    k = frames.scales[binding][:, None]
    local_means = np.einsum("nba,nb->na", rot, world.means - frames.centers[binding]) / k
    conj = matrix_to_quaternion(rot) * np.array([1, -1, -1, -1], dtype=rot.dtype)
    local_quats = quaternion_normalize(quaternion_multiply(conj, world.quats))
    return local_means, local_quats, np.log(world.scales / k)
