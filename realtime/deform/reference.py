"""Reference deformation on the CPU (NumPy): rig parameters → posed mesh → world Gaussians.

This is the ground truth the GPU kernels are checked against; run it in
float64 for checks and float32 for the CPU hot path.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.avatar.binding import WorldGaussians, bind, triangle_frames
from realtime.avatar.gaussians import Avatar
from realtime.rig.lbs import forward
from realtime.rig.model import RigParams


@dataclass
class Deformed:
    """vertices: (V, 3) posed mesh; gaussians: the avatar's Gaussians in rig/world space."""

    vertices: np.ndarray
    gaussians: WorldGaussians


def deform(avatar: Avatar, params: RigParams, dtype=np.float32) -> Deformed:
    """Pose the avatar's mesh with `params` and carry every Gaussian with its triangle.

    `params.shape` is the identity to use (normally `avatar.shape`).
    """
    rig = avatar.rig if avatar.rig.v_template.dtype == dtype else avatar.rig.astype(dtype)
    vertices = forward(rig, params, static_offset=avatar.static_offset).vertices
    frames = triangle_frames(vertices, rig.faces)
    gaussians = bind(frames, avatar.binding, avatar.local_means.astype(dtype, copy=False),
                     avatar.local_quats.astype(dtype, copy=False), avatar.log_scales.astype(dtype, copy=False))
    return Deformed(vertices=vertices, gaussians=gaussians)
