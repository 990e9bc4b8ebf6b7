"""The CuPy kernels on a real CUDA device: parity with the NumPy reference, zero-copy outputs, streams, and
`auto` building them (no fallback to torch) where CuPy is installed.

GPU-marked: skipped without CUDA (tests/conftest.py), and without CuPy.
"""

import gc
import importlib.util
import logging

import numpy as np
import pytest
import torch

from deform_checks import as_numpy, assert_float32_parity, builtin_rig_or_skip
from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import make_deformer
from realtime.deform.cupy_backend import STAGING_SLOTS
from realtime.rig.synthetic import synthetic_rig

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(importlib.util.find_spec("cupy") is None, reason="CuPy is not installed")]


RIGS = {
    "builtin-like": lambda: synthetic_rig(),
    "builtin": builtin_rig_or_skip,
    "flame-sized": lambda: synthetic_rig(n_rings=72, n_segments=70, n_shape=300, n_expr=100, seed=1),
}
AVATARS = {}


def avatar_on(rig_name: str, n_gaussians: int):
    key = (rig_name, n_gaussians)
    if key not in AVATARS:
        AVATARS[key] = random_avatar(RIGS[rig_name](), n_gaussians, seed=11)
    return AVATARS[key]


@pytest.mark.parametrize("rig_name, n_gaussians", [("builtin-like", 20_000), ("builtin", 20_000),
                                                    ("flame-sized", 100_000)])
def test_cupy_matches_reference(rig_name, n_gaussians):
    avatar = avatar_on(rig_name, n_gaussians)
    deformer = make_deformer(avatar, "cupy")
    for seed, identity in [(0, True), (1, True), (2, False), (3, True)]:
        params = random_params(avatar, seed=seed, angle=0.4, identity=identity)
        out = deformer.deform(params)
        torch.cuda.synchronize()
        assert_float32_parity(as_numpy(out), avatar, params)


def test_cupy_agrees_with_the_torch_baseline_on_cuda():
    avatar = avatar_on("flame-sized", 100_000)
    params = random_params(avatar, seed=5)
    fast = as_numpy(make_deformer(avatar, "cupy").deform(params))
    base = as_numpy(make_deformer(avatar, "torch", device="cuda").deform(params))
    np.testing.assert_allclose(fast["means"], base["means"], atol=1e-5)
    np.testing.assert_allclose(fast["vertices"], base["vertices"], atol=1e-5)


def test_outputs_are_fixed_cuda_tensors_without_per_frame_allocation():
    avatar = avatar_on("builtin-like", 20_000)
    deformer = make_deformer(avatar, "cupy")
    out = deformer.deform(random_params(avatar, seed=0))
    for name, width in (("means", 3), ("quats", 4), ("scales", 3)):
        tensor = getattr(out, name)
        assert tensor.is_cuda and tensor.dtype == torch.float32 and tensor.is_contiguous()
        assert tensor.shape == (20_000, width)
    pointers = [t.data_ptr() for t in (out.means, out.quats, out.scales, out.vertices)]
    torch.cuda.synchronize()
    allocated = torch.cuda.memory_allocated()
    for seed in range(1, 4):
        again = deformer.deform(random_params(avatar, seed=seed))
        assert [t.data_ptr() for t in (again.means, again.quats, again.scales, again.vertices)] == pointers
    torch.cuda.synchronize()
    assert torch.cuda.memory_allocated() == allocated


def test_frames_queued_on_a_side_stream_without_host_sync():
    """More frames than pinned staging slots, queued on a non-default stream, each copied out on that stream."""
    avatar = avatar_on("builtin-like", 20_000)
    deformer = make_deformer(avatar, "cupy")
    frames = [random_params(avatar, seed=20 + i, angle=0.5, identity=i % 3 != 0) for i in range(3 * STAGING_SLOTS)]
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        copies = [{name: getattr(deformer.deform(params), name).clone() for name in ("means", "quats", "scales",
                                                                                     "vertices")}
                  for params in frames]
    stream.synchronize()
    for params, out in zip(frames, copies):
        assert_float32_parity(as_numpy(out), avatar, params)


def test_cupy_backend_runs_on_cuda_only():
    with pytest.raises(ValueError, match="runs on CUDA devices"):
        make_deformer(avatar_on("builtin-like", 20_000), "cupy", device="cpu")


def test_auto_builds_the_cupy_kernels_here(caplog):
    with caplog.at_level(logging.WARNING, logger="realtime.deform"):
        deformer = make_deformer(avatar_on("builtin-like", 20_000), "auto", device="cuda")
    assert deformer.backend == "cupy", caplog.text


def test_a_freed_deformer_keeps_its_buffers_until_its_side_stream_is_done():
    """A frame queued on a side stream behind a long wait, its outputs copied there; the deformer is freed and
    tensors of its buffers' sizes are allocated and filled on the default stream before the wait ends. They must
    not get the buffers the queued frame still reads and writes (Tensor.record_stream in the deformer)."""
    avatar = avatar_on("builtin-like", 20_000)
    params = random_params(avatar, seed=7, angle=0.5)
    deformer = make_deformer(avatar, "cupy")
    sizes = [t.numel() for t in deformer.buffers.values()]
    torch.cuda.synchronize()
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        torch.cuda._sleep(500_000_000)  # GPU clock cycles: a wait long enough for the host to run ahead
        out = deformer.deform(params)
        copies = {name: getattr(out, name).clone() for name in ("means", "quats", "scales", "vertices")}
    del deformer, out
    gc.collect()
    clobber = [torch.full((n,), float("nan"), device="cuda") for n in sizes]
    stream.synchronize()
    torch.cuda.synchronize()
    assert_float32_parity(as_numpy(copies), avatar, params)
    assert all(torch.isnan(t).all() for t in clobber)
