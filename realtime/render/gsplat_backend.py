"""The CUDA backend: gsplat 1.5.3's `rasterization` with the CPU renderer's semantics.

gsplat is imported lazily (it is an optional extra and needs a CUDA device); every tensor is
moved to the CUDA device before it reaches gsplat, whose CUDA ops must never see CPU tensors.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from realtime.camera import Camera
from realtime.render.constants import EPS2D, FAR_PLANE, NEAR_PLANE, TILE_SIZE
from realtime.render.types import BackendUnavailable, RenderResult, check_inputs

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
    """gsplat on one CUDA device. Holds the imported module and the device."""

    name = "cuda"

    def __init__(self, device: str = "cuda") -> None:
        self._gsplat = require_cuda_backend()
        import torch

        self._torch = torch
        self.device = torch.device(device)
        if self.device.type != "cuda":
            raise BackendUnavailable(f"GsplatRenderer runs on a CUDA device, not {device!r}")

    def render_tensors(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
                       sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
                       with_alpha: bool = False) -> RenderResult:
        """Like `render`, but the image (H, W, 3) and alpha (H, W) stay torch float32 tensors on the device."""
        degree, bg = check_inputs(means, quats, scales, opacities, sh, sh_degree, background)
        means, quats, scales, opacities, sh = (self._on_device(a) for a in (means, quats, scales, opacities, sh))
        viewmats = self._on_device(camera.viewmat)[None]
        Ks = self._on_device(camera.K)[None]
        with self._torch.inference_mode():
            colors, alphas, _ = self._gsplat.rasterization(
                means, quats, scales, opacities, sh, viewmats, Ks, camera.width, camera.height,
                near_plane=NEAR_PLANE, far_plane=FAR_PLANE, eps2d=EPS2D, sh_degree=degree, packed=False,
                tile_size=TILE_SIZE, backgrounds=self._on_device(bg)[None], render_mode="RGB",
                rasterize_mode="antialiased" if antialiased else "classic")
        return RenderResult(image=colors[0].clamp(0.0, 1.0), alpha=alphas[0, ..., 0] if with_alpha else None)

    def render(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
               sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
               with_alpha: bool = False) -> RenderResult:
        """Draw N Gaussians (see `realtime.render.render`); the result comes back as NumPy arrays."""
        result = self.render_tensors(means, quats, scales, opacities, sh, camera, sh_degree=sh_degree,
                                     background=background, antialiased=antialiased, with_alpha=with_alpha)
        alpha = None if result.alpha is None else result.alpha.cpu().numpy()
        return RenderResult(image=result.image.cpu().numpy(), alpha=alpha)

    def _on_device(self, value: Any) -> Any:
        """A contiguous float32 tensor on this renderer's device, from a NumPy array or a tensor anywhere."""
        torch = self._torch
        if not isinstance(value, torch.Tensor):
            value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return value.to(device=self.device, dtype=torch.float32).contiguous()
