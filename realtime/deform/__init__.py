"""Deformation: rig parameters → posed mesh → world-space Gaussians, on one of four backends.

    numpy  the reference (realtime.deform.reference), CPU
    numba  the same math with the per-Gaussian binding compiled, CPU (the CPU hot path)
    torch  plain torch ops, CPU or CUDA (the GPU baseline)
    cupy   custom CUDA kernels (kernels/*.cu), outputs as torch CUDA tensors, zero-copy

`make_deformer(avatar)` builds one per avatar; `deformer.deform(params)` runs a frame.
"""

from __future__ import annotations

import importlib.util
import logging

from realtime.avatar.gaussians import Avatar
from realtime.deform.base import DeformedGaussians, Deformer

log = logging.getLogger(__name__)

BACKENDS = ("auto", "numpy", "numba", "torch", "cupy")

__all__ = ["BACKENDS", "DeformedGaussians", "Deformer", "make_deformer"]


def make_deformer(avatar: Avatar, backend: str = "auto", device=None) -> Deformer:
    """A deformer for `avatar`.

    backend: "auto" picks cupy when CuPy and a CUDA device are present (torch on that device, with a warning
    saying why, when the CuPy kernels cannot be built or run there: no NVRTC, a compile error), torch on CUDA
    when a CUDA device is present without CuPy, else (or when `device` is the CPU) numba. device: a torch
    device ("cpu", "cuda", "cuda:1", ...) for torch and cupy (default: CUDA when present for torch, the current
    CUDA device for cupy); numpy and numba run on the CPU only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown deformation backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    import torch  # here, so that importing the reference does not import torch
    if backend == "auto":
        if not torch.cuda.is_available() or (device is not None and torch.device(device).type == "cpu"):
            backend = "numba"
        elif importlib.util.find_spec("cupy") is None:
            backend = "torch"
        else:
            return _cupy_else_torch(avatar, device)
    if backend in ("numpy", "numba"):
        if device is not None and torch.device(device).type != "cpu":
            raise ValueError(f"the {backend} deformation backend runs on the CPU, not {device}")
        if backend == "numba":
            from realtime.deform.numba_backend import NumbaDeformer
            return NumbaDeformer(avatar)
        from realtime.deform.numpy_backend import NumpyDeformer
        return NumpyDeformer(avatar)
    if backend == "torch":
        from realtime.deform.torch_backend import TorchDeformer
        return TorchDeformer(avatar, device if device is not None else ("cuda" if torch.cuda.is_available() else "cpu"))
    from realtime.deform.cupy_backend import CupyDeformer
    return CupyDeformer(avatar, device)


def _cupy_else_torch(avatar: Avatar, device) -> Deformer:
    """The CuPy kernels on `device`, or where they cannot be built or run there, the torch deformer on it."""
    from realtime.deform.cupy_backend import CupyDeformer, CupyUnavailable
    from realtime.deform.torch_backend import TorchDeformer

    try:
        return CupyDeformer(avatar, device)
    except CupyUnavailable as exc:
        log.warning("deformation backend 'auto' falls back to the torch deformer on %s: %s", device or "cuda", exc)
    return TorchDeformer(avatar, device if device is not None else "cuda")
