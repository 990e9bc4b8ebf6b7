"""The avatar painter: rig parameters in, an RGB picture of the avatar out (deform, then render)."""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
from numba import njit

from realtime.avatar.gaussians import Avatar
from realtime.camera import Camera
from realtime.deform import make_deformer
from realtime.render import Renderer, get_renderer
from realtime.rig.model import RigParams

# The deformation backend that feeds each render backend: numba's CPU hot path beside the CPU renderer; beside
# gsplat, deform's own pick on CUDA (the CuPy kernels, torch where CuPy is missing or cannot compile).
DEFORMER_FOR = {"cpu": "numba", "cuda": "auto"}


def lap(timings: dict[str, float], stage: str, start: float) -> float:
    """Record `stage` as lasting from `start` (time.perf_counter()) until now; return now."""
    now = time.perf_counter()
    timings[stage] = (now - start) * 1e3
    return now


def stage_end(device: str) -> Callable[[], None]:
    """What ends a stage on `device` before its lap is taken: on a CUDA device, waiting for the work queued on its
    current stream (a launch returns before the GPU has done the work, so a lap taken at once would time only the
    launch); on the CPU, nothing (the work is done when the call returns)."""
    if not device.startswith("cuda"):
        return lambda: None
    import torch

    return lambda: torch.cuda.current_stream(device).synchronize()


def to_uint8(image: Any) -> np.ndarray:
    """(H, W, 3) float picture in [0, 1] → (H, W, 3) uint8 NumPy array, rounded; from a NumPy array, or from a torch
    tensor converted where it lies: on a CUDA device, there, then copied once into pinned host memory and waited
    for (the array holds its block of torch's pinned-memory cache until it is dropped, so a picture handed on is
    never overwritten by the next)."""
    if not hasattr(image, "detach"):
        image = np.ascontiguousarray(image)
        if image.dtype not in (np.float32, np.float64):
            return to_uint8_reference(image)
        pixels = np.empty(image.shape, np.uint8)
        _to_uint8(image.reshape(-1), pixels.reshape(-1))
        return pixels
    import torch

    pixels = image.detach().clamp(0.0, 1.0).mul_(255.0).add_(0.5).to(torch.uint8)  # to_uint8_reference's rounding
    if not pixels.is_cuda:
        return pixels.numpy()
    host = torch.empty(pixels.shape, dtype=torch.uint8, pin_memory=True)
    host.copy_(pixels, non_blocking=True)
    torch.cuda.current_stream(pixels.device).synchronize()
    return host.numpy()


def to_uint8_reference(image: np.ndarray) -> np.ndarray:
    """The rounding of a float picture (any shape) to uint8 that `to_uint8` computes, as three NumPy passes."""
    return (np.clip(image, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


@njit(nogil=True, cache=True)
def _to_uint8(values, out):
    """`to_uint8_reference` in one compiled pass: values (M,) float32 or float64, out (M,) uint8. Arithmetic in the
    precision of `values` and without fast-math, so that the multiply and the add round as NumPy's do."""
    dtype = values.dtype.type
    zero, one, scale, half = dtype(0.0), dtype(1.0), dtype(255.0), dtype(0.5)
    for i in range(values.shape[0]):
        out[i] = np.uint8(min(one, max(zero, values[i])) * scale + half)


def drawing_backends(backend: str = "auto") -> tuple[str, Renderer]:
    """The deformation backend and the renderer that draw together for a backend name ('auto', 'cpu' or 'cuda';
    'auto' is 'cuda' only where gsplat can draw, see `realtime.render.resolve_backend`: picking it loads, and the
    first time on a machine builds, gsplat's CUDA extension and draws one tiny picture). The deformer is to run on
    `renderer.device`, so that its outputs reach the renderer without a copy."""
    renderer = get_renderer(backend)
    return DEFORMER_FOR[renderer.backend], renderer


class AvatarPainter:
    """Deform and render one avatar from one camera: rig parameters in, an RGB picture out.

    backend: 'cpu' (the numba deformation + the CPU splatter), 'cuda' (CuPy kernels + gsplat) or 'auto'
    (see `drawing_backends`; the CUDA path is warmed up here, not on the first frame). background: RGB in [0, 1].
    After building, `backend` is the render backend that draws and `deformer_backend` the deformation backend
    that feeds it ('numba', 'cupy', or 'torch' where the CuPy kernels cannot run).
    """

    def __init__(self, avatar: Avatar, camera: Camera, backend: str = "auto",
                 background: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> None:
        self.avatar = avatar
        self.camera = camera
        self.background = background
        deformer_backend, self._renderer = drawing_backends(backend)
        self.backend = self._renderer.backend
        self._deformer = make_deformer(avatar, backend=deformer_backend, device=self._renderer.device)
        self.deformer_backend = self._deformer.backend
        self._end_stage = stage_end(self._renderer.device)
        self._opacities = self._renderer.as_input(avatar.opacities)
        self._sh = self._renderer.as_input(avatar.sh)

    def draw(self, params: RigParams, timings: dict[str, float]) -> np.ndarray:
        """(H, W, 3) uint8 picture of the avatar posed by `params`; records 'deform' and 'render' in `timings`, each
        until its work is done on the device (not only launched)."""
        start = time.perf_counter()
        g = self._deformer.deform(params)
        self._end_stage()
        start = lap(timings, "deform", start)
        result = self._renderer.render(g.means, g.quats, g.scales, self._opacities, self._sh, self.camera,
                                       background=self.background)
        image = to_uint8(result.image)
        lap(timings, "render", start)
        return image
