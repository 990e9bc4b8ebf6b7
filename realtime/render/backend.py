"""Which renderer draws: the gsplat CUDA backend when it can really run, else the CPU one; and which trains
(gsplat with autograd on CUDA, the torch splatter on the CPU)."""

from __future__ import annotations

import functools

from realtime.render import gsplat_backend
from realtime.render.base import BackendUnavailable, Renderer
from realtime.render.cpu import CpuRenderer
from realtime.render.gsplat_backend import GsplatRenderer

BACKENDS = ("auto", "cpu", "cuda")


@functools.cache
def gsplat_importable() -> bool:
    """Whether gsplat imports (tried once per process)."""
    try:
        gsplat_backend.import_gsplat()
    except BackendUnavailable:
        return False
    return True


def resolve_backend(backend: str = "auto") -> str:
    """'cpu' or 'cuda' for a requested backend. 'auto' gives 'cuda' only when a CUDA device works and gsplat
    imports; 'cuda' raises BackendUnavailable (saying why) when either is missing."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if backend == "auto":
        return "cuda" if gsplat_backend.cuda_usable() and gsplat_importable() else "cpu"
    if backend == "cuda":
        gsplat_backend.require_cuda_backend()
    return backend


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
