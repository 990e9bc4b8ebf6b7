"""What every deformation backend returns, and the interface they share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from realtime.rig.model import RigParams


@dataclass
class DeformedGaussians:
    """One frame's deformed avatar, as arrays of the backend (NumPy arrays, or torch tensors on its device).

    means:    (N, 3) float32 world positions
    quats:    (N, 4) float32 unit rotations (w, x, y, z)
    scales:   (N, 3) float32 linear scales
    vertices: (V, 3) float32 posed rig mesh
    GPU backends write every frame into the same buffers: a result is valid until the next `deform` call
    (work queued on the same CUDA stream in between sees the right values).
    """

    means: Any
    quats: Any
    scales: Any
    vertices: Any


class Deformer(Protocol):
    """Built once per avatar (uploads the rig and the Gaussians); `deform` once per frame."""

    backend: str

    def deform(self, params: RigParams) -> DeformedGaussians: ...
