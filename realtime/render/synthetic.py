"""A head-like cloud of mesh-bound Gaussians, for render tests and benchmarks.

Flat, mostly opaque Gaussians tile the surface of a head-sized ellipsoid, as a trained avatar's do:
placed uniformly over the surface, bound to their triangles with the GaussianAvatars binding,
oriented in the surface with a thin extent along the normal, sized from the spacing of N Gaussians.
Colour: skin tone on the face, dark hair on the top and back, per-Gaussian noise, small random
higher SH bands. Nothing here is a person; it has a head's size, coverage and depth complexity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.avatar.binding import bind, triangle_frames
from realtime.render.sh import rgb_to_sh_dc
from realtime.rig.synthetic import uv_sphere

HEAD_RADII = np.array([0.078, 0.105, 0.095])  # metres: half-width, half-height, half-depth
_SKIN = np.array([0.85, 0.64, 0.52])
_HAIR = np.array([0.22, 0.14, 0.09])


@dataclass
class SplatScene:
    """means (N, 3), quats (N, 4) (w, x, y, z), scales (N, 3), opacities (N,), sh (N, K, 3): float32
    world Gaussians; vertices (V, 3) float64 and faces (F, 3) of the mesh they are bound to."""

    means: np.ndarray
    quats: np.ndarray
    scales: np.ndarray
    opacities: np.ndarray
    sh: np.ndarray
    vertices: np.ndarray
    faces: np.ndarray


def head_scene(n_gaussians: int = 40_000, sh_degree: int = 3, seed: int = 0, n_rings: int = 72,
               n_segments: int = 70) -> SplatScene:
    """A head-sized ellipsoid covered by `n_gaussians` Gaussians with SH colour of degree `sh_degree` (0..3)."""
    if n_gaussians < 1 or not 0 <= sh_degree <= 3:
        raise ValueError(f"need n_gaussians >= 1 and sh_degree in 0..3, got {n_gaussians}, {sh_degree}")
    rng = np.random.default_rng(seed)
    unit, faces = uv_sphere(n_rings, n_segments, radius=1.0)
    vertices = unit * HEAD_RADII
    v0, v1, v2 = (vertices[faces[:, i]] for i in range(3))
    areas = 0.5 * np.linalg.norm(np.cross(v1 - v0, v2 - v0), axis=1)
    binding = rng.choice(len(faces), size=n_gaussians, p=areas / areas.sum())

    # uniform points on each chosen triangle, nudged along the normal, expressed in the triangle frame
    frames = triangle_frames(vertices, faces)
    r1, r2 = np.sqrt(rng.uniform(size=(n_gaussians, 1))), rng.uniform(size=(n_gaussians, 1))
    points = (1 - r1) * v0[binding] + r1 * (1 - r2) * v1[binding] + r1 * r2 * v2[binding]
    rot, k = frames.rotations[binding], frames.scales[binding][:, None]
    local_means = np.einsum("nba,nb->na", rot, points - frames.centers[binding]) / k
    local_means[:, 1] += rng.normal(scale=0.002, size=n_gaussians) / k[:, 0]

    # flat discs in the surface: spin about the local normal (axis 1), thin along it
    spin = rng.uniform(0, np.pi, size=n_gaussians)
    local_quats = np.stack([np.cos(spin / 2), np.zeros_like(spin), np.sin(spin / 2), np.zeros_like(spin)], -1)
    spacing = np.sqrt(areas.sum() / n_gaussians)
    in_plane = 0.7 * spacing * rng.uniform(0.6, 1.4, size=(n_gaussians, 2))
    sizes = np.stack([in_plane[:, 0], 0.15 * in_plane.min(axis=1), in_plane[:, 1]], -1)
    world = bind(frames, binding, local_means, local_quats, np.log(sizes / k))

    direction = world.means / HEAD_RADII
    hair = np.clip((direction[:, 1] - 0.35) * 4 + (-direction[:, 2] - 0.1) * 3, 0, 1)[:, None]
    rgb = (1 - hair) * _SKIN + hair * _HAIR + rng.normal(scale=0.04, size=(n_gaussians, 3))
    sh = rng.normal(scale=0.04, size=(n_gaussians, (sh_degree + 1) ** 2, 3))
    sh[:, 0] = rgb_to_sh_dc(rgb)
    opacities = 1 / (1 + np.exp(-rng.normal(2.5, 1.5, size=n_gaussians)))
    f32 = lambda a: np.ascontiguousarray(a, dtype=np.float32)  # noqa: E731
    return SplatScene(means=f32(world.means), quats=f32(world.quats), scales=f32(world.scales),
                      opacities=f32(opacities), sh=f32(sh), vertices=vertices, faces=faces)
