"""The CUDA backend: gsplat 1.5.3's `rasterization` with the CPU renderer's semantics, for drawing frames or,
differentiable, for training.

gsplat is imported lazily (it is an optional extra and needs a CUDA device); every tensor is
moved to the CUDA device before it reaches gsplat, whose CUDA ops must never see CPU tensors.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np

from realtime.camera import Camera
from realtime.render.constants import EPS2D, FAR_PLANE, NEAR_PLANE, TILE_SIZE
from realtime.render.base import BackendUnavailable, RenderResult, check_inputs

GSPLAT_HINT = "pip install gsplat==1.5.3 (its CUDA code compiles on first use: needs nvcc and ninja)"


@functools.cache
def cuda_usable() -> bool:
    """True when torch sees a CUDA device and a tiny allocation on it works (probed once)."""
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    try:
        probe = torch.ones(1, device="cuda") + 1
        torch.cuda.synchronize()
        return bool(probe.item() == 2)
    except Exception:  # noqa: BLE001 - a broken driver or runtime shows up as any error here
        return False


def import_gsplat() -> Any:
    """The gsplat module, or BackendUnavailable saying how to install it."""
    try:
        import gsplat
    except ImportError as exc:
        raise BackendUnavailable(f"the CUDA render backend needs gsplat, which does not import ({exc}); "
                                 f"{GSPLAT_HINT}") from None
    return gsplat


def require_cuda_backend() -> Any:
    """The gsplat module when the CUDA backend can run here; BackendUnavailable saying what is missing."""
    if not cuda_usable():
        raise BackendUnavailable("the CUDA render backend needs a usable CUDA device, and torch finds none "
                                 "(use backend='cpu' or 'auto')")
    return import_gsplat()


class GsplatRenderer:
    """gsplat on one CUDA device: takes NumPy arrays or tensors anywhere, gives torch tensors on the device.

    differentiable: keep autograd's graph from the inputs to the image (for training; the image is then not
    clamped), instead of drawing under inference mode.
    """

    backend = "cuda"

    def __init__(self, device: str = "cuda", differentiable: bool = False) -> None:
        self._gsplat = require_cuda_backend()
        import torch

        self._torch = torch
        self._device = torch.device(device)
        if self._device.type != "cuda":
            raise BackendUnavailable(f"GsplatRenderer runs on a CUDA device, not {device!r}")
        self.device = str(self._device)
        self.differentiable = differentiable

    def as_input(self, value: Any) -> Any:
        """A contiguous float32 tensor on this renderer's device, from a NumPy array or a tensor anywhere (a
        float32 tensor already there is returned as it is, its autograd graph kept)."""
        torch = self._torch
        if not isinstance(value, torch.Tensor):
            value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return value.to(device=self._device, dtype=torch.float32).contiguous()

    def render(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
               sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
               with_alpha: bool = False) -> RenderResult:
        """Draw N Gaussians (see `realtime.render.render`): image (H, W, 3) and alpha (H, W) as float32 tensors
        on the device."""
        degree, bg = check_inputs(means, quats, scales, opacities, sh, sh_degree, background)
        means, quats, scales, opacities, sh = (self.as_input(a) for a in (means, quats, scales, opacities, sh))
        viewmats = self.as_input(camera.viewmat)[None]
        Ks = self.as_input(camera.K)[None]
        with contextlib.nullcontext() if self.differentiable else self._torch.inference_mode():
            colors, alphas, _ = self._gsplat.rasterization(
                means, quats, scales, opacities, sh, viewmats, Ks, camera.width, camera.height,
                near_plane=NEAR_PLANE, far_plane=FAR_PLANE, eps2d=EPS2D, sh_degree=degree, packed=False,
                tile_size=TILE_SIZE, backgrounds=self.as_input(bg)[None], render_mode="RGB",
                rasterize_mode="antialiased" if antialiased else "classic")
        image = colors[0] if self.differentiable else colors[0].clamp(0.0, 1.0)
        return RenderResult(image=image, alpha=alphas[0, ..., 0] if with_alpha else None)
