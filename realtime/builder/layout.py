"""Dense binding of Gaussians over a mesh: flat discs that tile every triangle without holes.

Each triangle gets a share of the Gaussians in proportion to its area times an importance
weight (at least one each when there are enough Gaussians), placed by a low-discrepancy
sequence folded into the triangle. A Gaussian is a disc in its triangle's plane: in-plane
scale `coverage * sqrt(area per Gaussian)`, normal scale that divided by `flatness`.

The triangle frame of the binding (realtime.avatar.binding) has columns (a0, a1 = normal, a2),
so with the identity local rotation the local y axis is the normal: log_scales are
(in-plane, normal, in-plane) in units of the triangle's size k.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.avatar.binding import triangle_frames

_PLASTIC = 1.324717957244746  # the plastic number: the R2 low-discrepancy sequence's generator
_R2_STEP = np.array([1.0 / _PLASTIC, 1.0 / _PLASTIC ** 2])


@dataclass
class Layout:
    """binding: (N,) int32 parent faces; local_means: (N, 3), local_quats: (N, 4) (w, x, y, z),
    log_scales: (N, 3), all float32, in the binding's triangle frames."""

    binding: np.ndarray
    local_means: np.ndarray
    local_quats: np.ndarray
    log_scales: np.ndarray


def triangle_areas(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """(F,) areas. vertices: (V, 3), faces: (F, 3)."""
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    return 0.5 * np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=-1)


def allocate(weights: np.ndarray, n: int) -> np.ndarray:
    """Split `n` items over F bins in proportion to `weights` (F,) >= 0 by largest remainders.

    Every bin of positive weight gets at least one item when n allows (so no triangle is left bare);
    bins of zero weight (degenerate triangles) get none. Returns (F,) int64 summing to n.
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.ndim != 1 or np.any(weights < 0) or not np.all(np.isfinite(weights)) or weights.sum() <= 0:
        raise ValueError("weights must be a 1-D array of finite non-negative numbers with a positive sum")
    if n < 1:
        raise ValueError(f"the number of Gaussians must be >= 1, got {n}")
    positive = (weights > 0).astype(np.int64)
    floor = positive if n >= positive.sum() else np.zeros(len(weights), np.int64)
    rest = n - floor.sum()
    share = rest * weights / weights.sum()
    counts = floor + np.floor(share).astype(np.int64)
    remainder = n - counts.sum()
    order = np.argsort(-(share - np.floor(share)), kind="stable")
    counts[order[:remainder]] += 1
    return counts


def triangle_samples(counts: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Well-spread barycentric points: `counts[f]` points in triangle f.

    The R2 sequence from a random start per triangle, folded from the unit square into the triangle
    (points with u + v > 1 mirror to (1 - u, 1 - v)), which keeps the density uniform.
    Returns face ids (N,) int32 and barycentric weights (N, 3) float64.
    """
    face_ids = np.repeat(np.arange(len(counts)), counts)
    index = np.arange(len(face_ids)) - np.repeat(np.cumsum(counts) - counts, counts)
    start = rng.random((len(counts), 2))[face_ids]
    uv = (start + (index[:, None] + 1) * _R2_STEP) % 1.0
    flip = uv.sum(axis=1) > 1
    uv[flip] = 1 - uv[flip]
    bary = np.stack([1 - uv[:, 0] - uv[:, 1], uv[:, 0], uv[:, 1]], axis=1)
    return face_ids.astype(np.int32), bary


def layout_gaussians(vertices: np.ndarray, faces: np.ndarray, n_gaussians: int, importance: np.ndarray | None = None,
                     coverage: float = 0.85, flatness: float = 5.0, seed: int = 0) -> Layout:
    """Bind `n_gaussians` flat discs over the mesh.

    vertices: (V, 3) the mesh they are laid on (the avatar's rest mesh); faces: (F, 3);
    importance: (F,) optional per-face density multiplier (area is always counted);
    coverage: in-plane scale over the square root of the area each Gaussian covers (0.85 leaves no
    visible holes at full opacity); flatness: in-plane scale over normal scale.
    """
    vertices = np.asarray(vertices, dtype=np.float64)
    areas = triangle_areas(vertices, faces)
    weights = areas if importance is None else areas * np.asarray(importance, dtype=np.float64)
    counts = allocate(weights, n_gaussians)
    rng = np.random.default_rng(seed)
    binding, bary = triangle_samples(counts, rng)
    points = np.einsum("nk,nkc->nc", bary, vertices[faces[binding]])
    frames = triangle_frames(vertices, faces)
    rot, k = frames.rotations[binding], frames.scales[binding]
    local_means = np.einsum("nba,nb->na", rot, points - frames.centers[binding]) / k[:, None]
    local_means[:, 1] = 0.0  # on the triangle's plane exactly
    area_each = np.maximum(areas[binding] / counts[binding], 1e-12)
    in_plane = coverage * np.sqrt(area_each) / k
    log_scales = np.log(np.stack([in_plane, in_plane / flatness, in_plane], axis=1))
    quats = np.zeros((len(binding), 4))
    quats[:, 0] = 1.0
    return Layout(binding=binding, local_means=local_means.astype(np.float32), local_quats=quats.astype(np.float32),
                  log_scales=log_scales.astype(np.float32))
