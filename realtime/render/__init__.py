"""Splatting renderers for 3D Gaussians, every one behind the `Renderer` interface (`base.py`): gsplat on CUDA,
our own numba tile rasterizer on the CPU, and for training, gsplat with autograd or our differentiable torch
splatter (`torch_splat.py`).

All follow gsplat 1.5.3's 3DGS semantics (EWA projection, 0.3 px dilation, 16x16 tiles, front-to-back
compositing, SH colour + 0.5), so they draw the same picture.

    from realtime.render import render
    result = render(means, quats, scales, opacities, sh, camera, background=(1, 1, 1), with_alpha=True)
    result.image  # (H, W, 3) float32 in [0, 1]

    renderer = get_renderer("auto")  # or get_renderer("auto", differentiable=True) to train
    renderer.render(means, quats, scales, opacities, sh, camera)  # arrays of the renderer, on renderer.device
"""

from __future__ import annotations

from typing import Any

from realtime.camera import Camera
from realtime.render.backend import BACKENDS, cuda_backend_problem, get_renderer, resolve_backend
from realtime.render.base import BackendUnavailable, Renderer, RenderError, RenderResult
from realtime.render.cpu import CpuRenderer
from realtime.render.gsplat_backend import GsplatRenderer, cuda_usable

__all__ = ["BACKENDS", "BackendUnavailable", "CpuRenderer", "GsplatRenderer", "RenderError", "RenderResult",
           "Renderer", "cuda_backend_problem", "cuda_usable", "get_renderer", "render", "resolve_backend"]


def render(means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
           sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
           backend: str = "auto", with_alpha: bool = False) -> RenderResult:
    """Render N 3D Gaussians seen by `camera`.

    means: (N, 3) world positions; quats: (N, 4) rotations (w, x, y, z), any norm; scales: (N, 3) linear
    standard deviations; opacities: (N,) in [0, 1]; sh: (N, K, 3) spherical-harmonic colour, K = 1, 4, 9
    or 16 (coefficient 0 is DC); NumPy arrays or torch tensors (any device; they are copied where the
    backend needs them). sh_degree: the bands to use (None: all that K holds). background: RGB.
    antialiased: gsplat's 'antialiased' mode (opacity scaled by the dilation's area compensation).
    backend: 'auto' (CUDA when gsplat can draw there, see `cuda_backend_problem`, else CPU), 'cpu' or 'cuda'.

    Returns RenderResult(image (H, W, 3) float32 in [0, 1], alpha (H, W) float32 when with_alpha else None)
    as NumPy arrays. Raises RenderError on bad shapes, BackendUnavailable when 'cuda' cannot run.
    """
    return get_renderer(backend).render(means, quats, scales, opacities, sh, camera, sh_degree=sh_degree,
                                        background=background, antialiased=antialiased,
                                        with_alpha=with_alpha).numpy()
