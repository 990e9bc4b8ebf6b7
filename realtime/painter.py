"""The avatar painter: rig parameters in, an RGB picture of the avatar out (deform, then render)."""

from __future__ import annotations

import time

import numpy as np

from realtime.avatar.gaussians import Avatar
from realtime.camera import Camera
from realtime.deform import make_deformer
from realtime.render import Renderer, get_renderer
from realtime.rig.model import RigParams

# The deformation backend that feeds each render backend: numba's CPU hot path beside the CPU renderer; beside
# gsplat, deform's own pick on CUDA (the CuPy kernels, torch where CuPy is missing).
DEFORMER_FOR = {"cpu": "numba", "cuda": "auto"}


def lap(timings: dict[str, float], stage: str, start: float) -> float:
    """Record `stage` as lasting from `start` (time.perf_counter()) until now; return now."""
    now = time.perf_counter()
    timings[stage] = (now - start) * 1e3
    return now


def to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → (H, W, 3) uint8, rounded."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def drawing_backends(backend: str = "auto") -> tuple[str, Renderer]:
    """The deformation backend and the renderer that draw together for a backend name ('auto', 'cpu' or 'cuda';
    'auto' is 'cuda' only where it can run, see `realtime.render.resolve_backend`). The deformer is to run on
    `renderer.device`, so that its outputs reach the renderer without a copy."""
    renderer = get_renderer(backend)
    return DEFORMER_FOR[renderer.backend], renderer


class AvatarPainter:
    """Deform and render one avatar from one camera: rig parameters in, an RGB picture out.

    backend: 'cpu' (the numba deformation + the CPU splatter), 'cuda' (CuPy kernels + gsplat) or 'auto'
    (see `drawing_backends`). background: RGB in [0, 1].
    """

    def __init__(self, avatar: Avatar, camera: Camera, backend: str = "auto",
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.avatar = avatar
        self.camera = camera
        self.background = background
        deformer_backend, self._renderer = drawing_backends(backend)
        self.backend = self._renderer.backend
        self._deformer = make_deformer(avatar, backend=deformer_backend, device=self._renderer.device)
        self._opacities = self._renderer.as_input(avatar.opacities)
        self._sh = self._renderer.as_input(avatar.sh)

    def draw(self, params: RigParams, timings: dict[str, float]) -> np.ndarray:
        """(H, W, 3) uint8 picture of the avatar posed by `params`; records 'deform' and 'render' in `timings`."""
        start = time.perf_counter()
        g = self._deformer.deform(params)
        start = lap(timings, "deform", start)
        result = self._renderer.render(g.means, g.quats, g.scales, self._opacities, self._sh, self.camera,
                                       background=self.background)
        image = to_uint8(result.numpy().image)
        lap(timings, "render", start)
        return image
