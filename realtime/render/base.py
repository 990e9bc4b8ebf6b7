"""What every renderer returns, the interface they share, their errors, and the input checks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from realtime.camera import Camera
from realtime.render.sh import MAX_SH_DEGREE, sh_degree_for


class RenderError(ValueError):
    """Inputs the renderer cannot draw (wrong shapes, bad degree or background)."""


class BackendUnavailable(RuntimeError):
    """The requested render backend cannot run on this machine."""


@dataclass
class RenderResult:
    """One picture, as arrays of the renderer that drew it (NumPy arrays, or torch tensors on its device).

    image: (H, W, 3) float32 RGB, in [0, 1] except from differentiable renderers (not clamped there, so that
    gradients pass at both ends); alpha: (H, W) float32 coverage (1 - transmittance), or None when not asked.
    """

    image: Any
    alpha: Any | None

    def numpy(self) -> RenderResult:
        """The same picture as NumPy arrays (copied off the device, and detached, where they are tensors)."""
        return RenderResult(image=_numpy(self.image), alpha=None if self.alpha is None else _numpy(self.alpha))


class Renderer(Protocol):
    """Draws N 3D Gaussians seen by a camera; built once, `render` once per frame (or training step).

    backend: the render backend it serves, 'cpu' or 'cuda'. device: where it computes, a torch device name
    ('cpu', 'cuda', 'cuda:1', ...); the deformer that feeds it runs there too. differentiable: whether `render`
    keeps torch's autograd graph from the inputs to the image.
    """

    backend: str
    device: str
    differentiable: bool

    def as_input(self, value: Any) -> Any:
        """`value` (a NumPy array or a tensor anywhere) as the float32 array that `render` takes as it is: a NumPy
        array for the CPU renderer, a torch tensor on `device` for the others (convert per-avatar constants
        once, not every frame)."""
        ...

    def render(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
               sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
               with_alpha: bool = False) -> RenderResult:
        """Draw N Gaussians (the arguments as `realtime.render.render` takes them); RenderError for inputs it
        cannot draw."""
        ...


def check_inputs(means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, sh_degree: int | None,
                 background: Any) -> tuple[int, np.ndarray]:
    """Check the shapes of a Gaussian set (NumPy arrays or torch tensors) and return
    (the SH degree to use, background as a (3,) float32 array).

    means: (N, 3), quats: (N, 4), scales: (N, 3), opacities: (N,), sh: (N, K, 3) with K in 1, 4, 9, 16;
    sh_degree: None for the degree K holds, or a smaller one to use only the first bands.
    """
    means_shape = _shape(means, "means")
    if len(means_shape) != 2 or means_shape[1] != 3:
        raise RenderError(f"means must have shape (N, 3), got {means_shape}")
    n = means_shape[0]
    expected = {"quats": (n, 4), "scales": (n, 3), "opacities": (n,)}
    for name, value in (("quats", quats), ("scales", scales), ("opacities", opacities)):
        if _shape(value, name) != expected[name]:
            raise RenderError(f"{name} must have shape {expected[name]} for {n} Gaussians, "
                              f"got {_shape(value, name)}")
    sh_shape = _shape(sh, "sh")
    if len(sh_shape) != 3 or sh_shape[0] != n or sh_shape[2] != 3:
        raise RenderError(f"sh must have shape ({n}, K, 3), got {sh_shape}")
    try:
        full_degree = sh_degree_for(sh_shape[1])
    except ValueError as exc:
        raise RenderError(str(exc)) from None
    degree = full_degree if sh_degree is None else int(sh_degree)
    if not 0 <= degree <= full_degree:
        raise RenderError(f"sh_degree must be in 0..{full_degree} for {sh_shape[1]} coefficients "
                          f"(at most {MAX_SH_DEGREE}), got {sh_degree}")
    bg = np.asarray(background, dtype=np.float32)
    if bg.shape != (3,) or not np.all(np.isfinite(bg)):
        raise RenderError(f"background must be 3 finite numbers (RGB in [0, 1]), got {background!r}")
    return degree, bg


def _numpy(value: Any) -> np.ndarray:
    """A NumPy array, or a torch tensor anywhere copied to one."""
    return value.detach().cpu().numpy() if hasattr(value, "detach") else np.asarray(value)


def _shape(value: Any, name: str) -> tuple[int, ...]:
    shape = getattr(value, "shape", None)
    if shape is None:
        raise RenderError(f"{name} must be a NumPy array or a torch tensor, got {type(value).__name__}")
    return tuple(shape)
