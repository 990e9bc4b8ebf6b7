"""The host side of the cupy backend, which runs without CuPy or a GPU: imports, parameter packing, compile
options, and `auto` falling back to the torch deformer when the kernels cannot be compiled (a fake CuPy)."""

import contextlib
import importlib.machinery
import logging
import subprocess
import sys
import types

import numpy as np
import pytest
import torch

from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import cupy_backend, make_deformer, torch_backend
from realtime.rig.model import RigError
from realtime.rig.synthetic import synthetic_rig


@pytest.fixture(scope="module")
def avatar():
    return random_avatar(synthetic_rig(n_rings=6, n_segments=8, n_shape=4, n_expr=5), 20, seed=0)


def test_module_imports_without_cupy():
    code = ("import sys; sys.modules['cupy'] = None\n"
            "import realtime.deform.cupy_backend, realtime.deform\n"
            "print('cupy' in sys.modules and sys.modules['cupy'] is None)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "True"


def test_pack_params_layout(avatar):
    params = random_params(avatar, seed=1)
    out = np.full(cupy_backend.frame_buffers(avatar)["params"], np.nan, np.float32)
    assert cupy_backend.pack_params(params, avatar.rig, avatar.shape.astype(np.float64), out) is False
    np.testing.assert_array_equal(out[:15], params.full_pose().reshape(-1))
    np.testing.assert_array_equal(out[15:18], params.translation)
    np.testing.assert_array_equal(out[18:23], params.expr)
    params.shape = params.shape + np.float32(0.25)
    assert cupy_backend.pack_params(params, avatar.rig, avatar.shape.astype(np.float64), out) is True
    np.testing.assert_allclose(out[23:], 0.25, rtol=1e-6)


@pytest.mark.parametrize("field, value, message", [
    ("expr", np.zeros(3), "parameter expr must have shape"),
    ("eyes_pose", np.zeros(3), "parameter eyes_pose must have shape"),
    ("shape", np.zeros(7), "parameter shape must have shape"),
    ("jaw_pose", np.array([0.0, np.nan, 0.0]), "parameter jaw_pose holds NaN"),
    ("shape", np.array([0.0, np.inf, 0.0, 0.0]), "parameter shape holds NaN"),
])
def test_pack_params_names_bad_input(avatar, field, value, message):
    params = random_params(avatar, seed=1)
    setattr(params, field, value)
    out = np.zeros(cupy_backend.frame_buffers(avatar)["params"], np.float32)
    with pytest.raises(RigError, match=message):
        cupy_backend.pack_params(params, avatar.rig, avatar.shape.astype(np.float64), out)


class CompileException(Exception):
    """Stands in for cupy.cuda.compiler.CompileException."""


def fake_cupy(error: Exception) -> types.ModuleType:
    """A CuPy whose NVRTC compile raises `error` (what a machine without a working NVRTC gives)."""
    cupy = types.ModuleType("cupy")
    cupy.__spec__ = importlib.machinery.ModuleSpec("cupy", None)
    cupy.__version__ = "13.6.0"

    class RawModule:
        def __init__(self, code, options):
            self.code, self.options = code, options

        def get_function(self, name):
            raise error

    cupy.RawModule = RawModule
    cupy.cuda = types.SimpleNamespace(Device=lambda index: contextlib.nullcontext())
    return cupy


@pytest.fixture
def cuda_present_without_nvrtc(monkeypatch):
    """torch says a CUDA device is present; CuPy imports but cannot compile; the torch deformer is recorded."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)
    monkeypatch.setitem(sys.modules, "cupy", fake_cupy(RuntimeError("CuPy failed to load libnvrtc.so.13")))
    built = []

    class TorchDeformer:  # the real one would allocate on the (absent) device
        backend = "torch"

        def __init__(self, avatar, device):
            built.append(device)

    monkeypatch.setattr(torch_backend, "TorchDeformer", TorchDeformer)
    return built


def test_auto_falls_back_to_torch_on_the_device_when_cupy_cannot_compile(avatar, cuda_present_without_nvrtc,
                                                                          caplog):
    with caplog.at_level(logging.WARNING, logger="realtime.deform"):
        deformer = make_deformer(avatar, "auto", device="cuda:0")
    assert deformer.backend == "torch" and cuda_present_without_nvrtc == ["cuda:0"]
    [warning] = caplog.records
    assert "falls back to the torch deformer on cuda:0" in warning.getMessage()
    assert "did not compile with CuPy 13.6.0: RuntimeError: CuPy failed to load libnvrtc.so.13" in warning.getMessage()


def test_the_cupy_backend_asked_by_name_says_why_it_cannot_compile(avatar, cuda_present_without_nvrtc):
    sys.modules["cupy"] = fake_cupy(CompileException("kernel.cu(12): error: identifier \"x\" is undefined"))
    with pytest.raises(cupy_backend.CupyUnavailable, match=r"did not compile .* CompileException: kernel.cu\(12\)"):
        make_deformer(avatar, "cupy", device="cuda:0")
    assert cuda_present_without_nvrtc == []


def test_the_kernels_are_compiled_without_fast_math():
    compiled = []

    class Recording:
        def __init__(self, code, options):
            compiled.append(options)

        def get_function(self, name):
            return name

    kernels = cupy_backend.compile_kernels(types.SimpleNamespace(RawModule=Recording, __version__="13.6.0"))
    assert set(kernels) == set(cupy_backend.KERNELS)
    assert compiled and all(not any("fast_math" in o or "fast-math" in o for o in options) for options in compiled)
