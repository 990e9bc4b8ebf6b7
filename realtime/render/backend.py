"""Which renderer draws: the gsplat CUDA backend when it can really draw here, else the CPU one; and which trains
(gsplat with autograd on CUDA, the torch splatter on the CPU)."""

from __future__ import annotations

import functools
import logging

from realtime.render import gsplat_backend
from realtime.render.base import BackendUnavailable, Renderer
from realtime.render.cpu import CpuRenderer
from realtime.render.gsplat_backend import GsplatRenderer

log = logging.getLogger(__name__)

BACKENDS = ("auto", "cpu", "cuda")


def cuda_backend_problem() -> str | None:
    """Why the CUDA backend cannot draw here, or None when it can: it needs a usable CUDA device, gsplat, gsplat's
    CUDA extension (built on first use: this is where that build happens, minutes, logged while it runs) and a
    first tiny picture that comes out right (`GsplatRenderer.warm_up`). Outcomes that cost time are kept."""
    try:
        _renderer("cuda", False).warm_up()
    except BackendUnavailable as exc:
        return str(exc)
    return None


def resolve_backend(backend: str = "auto") -> str:
    """'cpu' or 'cuda' for a requested backend. 'auto' gives 'cuda' only when the CUDA backend can draw (see
    `cuda_backend_problem`), else 'cpu', logging why (a warning when a CUDA device is there but gsplat cannot
    draw on it); 'cuda' raises BackendUnavailable saying why it cannot draw."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "cpu":
        return backend
    problem = cuda_backend_problem()
    if problem is None:
        return "cuda"
    if backend == "cuda":
        raise BackendUnavailable(problem)
    _log_fallback(problem, gsplat_backend.cuda_usable())
    return "cpu"


@functools.cache
def _log_fallback(problem: str, device_present: bool) -> None:
    """Say once per process (and reason) that 'auto' draws on the CPU."""
    log.log(logging.WARNING if device_present else logging.INFO,
            "render backend 'auto' falls back to the CPU renderer: %s", problem)


def get_renderer(backend: str = "auto", differentiable: bool = False) -> Renderer:
    """The renderer for a backend name (one shared instance per resolved backend and kind).

    differentiable: the one to train with, whose image keeps autograd's graph: gsplat on CUDA, the torch
    splatter (`realtime.render.torch_splat`, which imports torch) on the CPU.
    """
    return _renderer(resolve_backend(backend), differentiable)


@functools.cache
def _renderer(name: str, differentiable: bool) -> Renderer:
    if name == "cuda":
        return GsplatRenderer(differentiable=differentiable)
    if differentiable:
        from realtime.render.torch_splat import TorchSplatter

        return TorchSplatter()
    return CpuRenderer()
