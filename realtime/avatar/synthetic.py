"""A random mesh-bound Gaussian avatar on any rig, for tests and benchmarks.

Gaussians are bound to random faces with random local positions, rotations
and sizes of the order of their triangle; colours and opacities are random.
Nothing here looks like a person: it exercises sizes and code paths.
"""

from __future__ import annotations

import numpy as np

from realtime.avatar.gaussians import Avatar, sh_coeff_count
from realtime.camera import frontal_camera
from realtime.rig.model import Rig, RigParams


def random_avatar(rig: Rig, n_gaussians: int, seed: int = 0, sh_degree: int = 0) -> Avatar:
    """An avatar of `n_gaussians` Gaussians spread over `rig`'s faces (float32 attributes, float64 rig kept).

    binding: uniform over faces; local_means: N(0, 0.3) in triangle units; local_quats: random
    directions of random norm; log_scales: log of 0.05..0.5 triangle sizes; identity: small random shape.
    """
    if n_gaussians < 1:
        raise ValueError(f"n_gaussians must be >= 1, got {n_gaussians}")
    rng = np.random.default_rng(seed)
    quats = rng.normal(size=(n_gaussians, 4)) * rng.uniform(0.5, 2.0, size=(n_gaussians, 1))
    center = rig.v_template.mean(axis=0)
    return Avatar(
        rig=rig,
        shape=rng.normal(scale=0.5, size=rig.n_shape).astype(np.float32),
        static_offset=rng.normal(scale=1e-4, size=(rig.n_vertices, 3)).astype(np.float32),
        binding=rng.integers(0, rig.n_faces, size=n_gaussians).astype(np.int32),
        local_means=rng.normal(scale=0.3, size=(n_gaussians, 3)).astype(np.float32),
        local_quats=quats.astype(np.float32),
        log_scales=np.log(rng.uniform(0.05, 0.5, size=(n_gaussians, 3))).astype(np.float32),
        opacity_logits=rng.normal(size=n_gaussians).astype(np.float32),
        sh=rng.normal(scale=0.3, size=(n_gaussians, sh_coeff_count(sh_degree), 3)).astype(np.float32),
        camera=frontal_camera(center, distance=0.6),
        name=f"random-{n_gaussians}",
    )


def random_params(avatar: Avatar, seed: int = 0, angle: float = 0.3, identity: bool = True) -> RigParams:
    """Random float32 rig parameters: expressions N(0, 1), joint rotations N(0, angle) radians per axis,
    translation N(0, 5 cm). identity=True keeps the avatar's shape; False draws a new one."""
    rng = np.random.default_rng(seed)
    rig = avatar.rig
    draw = lambda n, scale: rng.normal(scale=scale, size=n).astype(np.float32)  # noqa: E731
    return RigParams(shape=avatar.shape.copy() if identity else draw(rig.n_shape, 0.5), expr=draw(rig.n_expr, 1.0),
                     rotation=draw(3, angle), neck_pose=draw(3, angle), jaw_pose=draw(3, angle),
                     eyes_pose=draw(6, angle), translation=draw(3, 0.05))
