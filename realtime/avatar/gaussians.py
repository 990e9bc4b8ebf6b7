"""The mesh-bound Gaussian avatar: a rig, an identity, and Gaussians bound to the rig's triangles."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.camera import Camera
from realtime.rig.model import Rig


class AvatarError(ValueError):
    """An avatar (or an avatar file) that does not hold together."""


def sh_coeff_count(degree: int) -> int:
    """Spherical-harmonic coefficients per colour channel for a degree (0..3)."""
    return (degree + 1) ** 2


@dataclass(frozen=True, eq=False)
class Avatar:
    """A precomputed mesh-bound Gaussian avatar.

    rig:            the head model the Gaussians are bound to
    shape:          (S,) identity coefficients
    static_offset:  (V, 3) per-vertex identity offsets (zeros when the avatar has none)
    binding:        (N,) int32 parent face of each Gaussian
    local_means:    (N, 3) position in its triangle's frame
    local_quats:    (N, 4) rotation in its triangle's frame, (w, x, y, z), any norm
    log_scales:     (N, 3) log of the scale in units of the triangle's size
    opacity_logits: (N,) opacity before the sigmoid
    sh:             (N, K, 3) spherical-harmonic colour, K = (degree + 1)^2, coefficient 0 is DC
    camera:         the default view
    name:           free text
    """

    rig: Rig
    shape: np.ndarray
    static_offset: np.ndarray
    binding: np.ndarray
    local_means: np.ndarray
    local_quats: np.ndarray
    log_scales: np.ndarray
    opacity_logits: np.ndarray
    sh: np.ndarray
    camera: Camera
    name: str = "avatar"

    def __post_init__(self) -> None:
        validate_avatar(self)

    @property
    def n_gaussians(self) -> int:
        return self.binding.shape[0]

    @property
    def sh_degree(self) -> int:
        return int(round(np.sqrt(self.sh.shape[1]))) - 1

    @property
    def opacities(self) -> np.ndarray:
        """(N,) opacities in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-self.opacity_logits))


def validate_avatar(avatar: Avatar) -> None:
    """Raise AvatarError naming the first inconsistency (sizes, index ranges, NaN)."""
    n = avatar.binding.shape[0]
    if avatar.binding.ndim != 1 or n < 1:
        raise AvatarError(f"binding must be (N,) with N >= 1, got {avatar.binding.shape}")
    if avatar.binding.dtype.kind not in "iu":
        raise AvatarError(f"binding must hold integers, got {avatar.binding.dtype}")
    if avatar.binding.min() < 0 or avatar.binding.max() >= avatar.rig.n_faces:
        raise AvatarError(f"binding index out of range: faces are 0..{avatar.rig.n_faces - 1}, "
                          f"binding spans {avatar.binding.min()}..{avatar.binding.max()}")
    expected = {"local_means": (n, 3), "local_quats": (n, 4), "log_scales": (n, 3), "opacity_logits": (n,),
                "shape": (avatar.rig.n_shape,), "static_offset": (avatar.rig.n_vertices, 3)}
    for name, shape in expected.items():
        value = getattr(avatar, name)
        if value.shape != shape:
            raise AvatarError(f"{name} must have shape {shape}, got {value.shape}")
    if avatar.sh.ndim != 3 or avatar.sh.shape[0] != n or avatar.sh.shape[2] != 3 or \
            avatar.sh.shape[1] not in [sh_coeff_count(d) for d in range(4)]:
        raise AvatarError(f"sh must be ({n}, K, 3) with K in 1, 4, 9, 16, got {avatar.sh.shape}")
    for name in ("shape", "static_offset", "local_means", "local_quats", "log_scales", "opacity_logits", "sh"):
        if not np.all(np.isfinite(getattr(avatar, name))):
            raise AvatarError(f"{name} holds NaN or infinite values")
    if np.any(np.linalg.norm(avatar.local_quats, axis=-1) == 0):
        raise AvatarError("local_quats holds a zero quaternion")
