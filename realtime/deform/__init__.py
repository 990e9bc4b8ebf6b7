"""Deformation: rig parameters → posed mesh → world-space Gaussians, on one of four backends.

    numpy  the reference (realtime.deform.reference), CPU
    numba  the same math with the per-Gaussian binding compiled, CPU (the CPU hot path)
    torch  plain torch ops, CPU or CUDA (the GPU baseline)
    cupy   custom CUDA kernels (kernels/*.cu), outputs as torch CUDA tensors, zero-copy

`make_deformer(avatar)` builds one per avatar; `deformer.deform(params)` runs a frame.
"""

from __future__ import annotations

import importlib.util

from realtime.avatar.gaussians import Avatar
from realtime.deform.base import DeformedGaussians, Deformer

BACKENDS = ("auto", "numpy", "numba", "torch", "cupy")

__all__ = ["BACKENDS", "DeformedGaussians", "Deformer", "make_deformer"]


def make_deformer(avatar: Avatar, backend: str = "auto", device=None) -> Deformer:
    """A deformer for `avatar`.

    backend: "auto" picks cupy when CuPy and a CUDA device are present, else torch on CUDA when a CUDA
    device is present, else numba. device: a torch device ("cpu", "cuda", "cuda:1", ...) for torch and
    cupy (default: CUDA when present for torch, the current CUDA device for cupy); numpy and numba run on the
    CPU only.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown deformation backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    import torch  # here, so that importing the reference does not import torch
    if backend == "auto":
        if not torch.cuda.is_available():
            backend = "numba"
        else:
            backend = "cupy" if importlib.util.find_spec("cupy") is not None else "torch"
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
