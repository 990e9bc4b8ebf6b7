"""The CUDA kernels, run on the CPU through tests/cuda_emu.h, against the NumPy reference.

This covers everything of the cupy backend but CuPy itself: the host packing (pack_avatar, pack_params),
the launch plan (grids, blocks, argument order) and the kernels' arithmetic, with real __syncthreads
semantics. It needs a C++20 compiler (g++); the CuPy path proper runs in test_deform_gpu_parity.py.
"""

import ctypes
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from deform_checks import as_numpy, assert_float32_parity, builtin_rig_or_skip
from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import cupy_backend
from realtime.rig.synthetic import synthetic_rig

HERE = Path(__file__).resolve().parent
KERNEL_DIR = HERE.parent / "kernels"
GXX = shutil.which("g++")

pytestmark = pytest.mark.skipif(GXX is None, reason="g++ not found: CUDA kernels not emulated on the CPU")


@pytest.fixture(scope="module")
def emulator(tmp_path_factory):
    build = tmp_path_factory.mktemp("cuda_emu")
    units = []
    for source in sorted(set(cupy_backend.KERNELS.values())):
        wrappers = "".join(
            f'extern "C" void emu_{name}(const unsigned* g, const unsigned* b, void** a) '
            f"{{ emu_launch({name}, g, b, a); }}\n"
            for name, f in cupy_backend.KERNELS.items() if f == source)
        unit = build / f"{source}.cpp"
        unit.write_text(f'#include "{HERE / "cuda_emu.h"}"\n#include "{KERNEL_DIR / source}"\n{wrappers}')
        units.append(str(unit))
    library = build / "emu.so"
    result = subprocess.run([GXX, "-std=c++20", "-O1", "-shared", "-fPIC", "-pthread", "-o", str(library), *units],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    return ctypes.CDLL(str(library))


class EmulatedDeformer:
    """The cupy backend's frame on NumPy buffers (allocated once), through the emulated kernels."""

    def __init__(self, emulator, avatar):
        self.emulator, self.avatar = emulator, avatar
        self.buffers = dict(cupy_backend.pack_avatar(avatar))
        self.buffers.update({n: np.full(s, np.nan, np.float32) for n, s in cupy_backend.frame_buffers(avatar).items()})
        self.baked = np.asarray(avatar.shape, dtype=np.float64)

    def deform(self, params) -> dict[str, np.ndarray]:
        shape_active = cupy_backend.pack_params(params, self.avatar.rig, self.baked, self.buffers["params"])
        dims = lambda d: (ctypes.c_uint * 3)(*(tuple(d) + (1,) * (3 - len(d))))  # noqa: E731
        for launch in cupy_backend.launch_plan(self.avatar.rig, self.avatar.n_gaussians, shape_active):
            values = [ctypes.c_void_p(self.buffers[a].ctypes.data) if isinstance(a, str) else ctypes.c_int32(int(a))
                      for a in launch.args]
            argv = (ctypes.c_void_p * len(values))(*[ctypes.addressof(v) for v in values])
            getattr(self.emulator, f"emu_{launch.kernel}")(dims(launch.grid), dims(launch.block), argv)
        return {name: self.buffers[name].copy() for name in ("means", "quats", "scales", "vertices")}


RIGS = {
    # V = 110 and N = 600: partial blocks in both kernels; E + S = 25 > 16 regression lanes
    "correctives": dict(n_rings=10, n_segments=12, n_shape=5, n_expr=20, seed=3),
    "no-correctives": dict(n_rings=7, n_segments=9, n_shape=3, n_expr=4, pose_correctives=False, seed=4),
}


@pytest.mark.parametrize("rig_name", [*RIGS, "builtin"])
@pytest.mark.parametrize("identity", [True, False], ids=["baked-shape", "new-shape"])
def test_emulated_kernels_match_reference(emulator, rig_name, identity):
    rig = builtin_rig_or_skip() if rig_name == "builtin" else synthetic_rig(**RIGS[rig_name])
    avatar = random_avatar(rig, 600, seed=1)
    params = random_params(avatar, seed=2, angle=0.4, identity=identity)
    out = EmulatedDeformer(emulator, avatar).deform(params)
    errors = assert_float32_parity(as_numpy(out), avatar, params)
    assert errors["vertices"] < 1e-6, errors


def test_emulated_frames_do_not_leak_into_each_other(emulator):
    """Frames on the same buffers: a new identity, then the baked one, then a pose only. Each gives its own
    result (the shape delta of the first frame, left in the scratch buffer, must not count in the second)."""
    avatar = random_avatar(synthetic_rig(**RIGS["correctives"]), 300, seed=5)
    deformer = EmulatedDeformer(emulator, avatar)
    frames = [random_params(avatar, seed=6, identity=False), random_params(avatar, seed=7),
              random_params(avatar, seed=8, angle=0.8)]
    outputs = [deformer.deform(params) for params in frames]
    assert np.abs(outputs[0]["means"] - outputs[1]["means"]).max() > 1e-3
    for params, out in zip(frames, outputs):
        assert_float32_parity(as_numpy(out), avatar, params)
