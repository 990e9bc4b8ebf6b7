"""The avatar painter: rig parameters in, an RGB picture of the avatar out (deform, then render)."""

from __future__ import annotations

import time

import numpy as np

from realtime.avatar.gaussians import Avatar
from realtime.camera import Camera
from realtime.deform import make_deformer
from realtime.render import render, resolve_backend
from realtime.rig.model import RigParams


def lap(timings: dict[str, float], stage: str, start: float) -> float:
    """Record `stage` as lasting from `start` (time.perf_counter()) until now; return now."""
    now = time.perf_counter()
    timings[stage] = (now - start) * 1e3
    return now


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → (H, W, 3) uint8, rounded."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


class AvatarPainter:
    """Deform and render one avatar from one camera: rig parameters in, an RGB picture out.

    backend: 'cpu' (the numba deformation + the CPU splatter), 'cuda' (CuPy kernels + gsplat) or 'auto'.
    background: RGB in [0, 1].
    """

    def __init__(self, avatar: Avatar, camera: Camera, backend: str = "auto",
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.avatar = avatar
        self.camera = camera
        self.backend = resolve_backend(backend)
        self.background = background
        if self.backend == "cuda":
            import torch

            self._deformer = make_deformer(avatar, backend="auto")
            self._opacities = torch.as_tensor(avatar.opacities, dtype=torch.float32, device="cuda")
            self._sh = torch.as_tensor(avatar.sh, dtype=torch.float32, device="cuda")
        else:
            self._deformer = make_deformer(avatar, backend="numba")
            self._opacities = avatar.opacities.astype(np.float32)
            self._sh = avatar.sh.astype(np.float32)

    def draw(self, params: RigParams, timings: dict[str, float]) -> np.ndarray:
        """(H, W, 3) uint8 picture of the avatar posed by `params`; records 'deform' and 'render' in `timings`."""
        start = time.perf_counter()
        g = self._deformer.deform(params)
        start = lap(timings, "deform", start)
        result = render(g.means, g.quats, g.scales, self._opacities, self._sh, self.camera,
                        background=self.background, backend=self.backend)
        image = to_uint8(result.image)
        lap(timings, "render", start)
        return image
