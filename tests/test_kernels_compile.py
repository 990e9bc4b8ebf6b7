"""Every CUDA source in kernels/ compiles with nvcc and agrees with the Python side that launches it.

That the installed package loads these very sources (``cupy_backend.kernel_source`` reading them from the
package, where the repository has a symlink) is checked inside a built wheel: tests/test_wheel.py.
"""

import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from realtime.deform import cupy_backend

KERNEL_DIR = Path(__file__).resolve().parents[1] / "kernels"
SOURCES = sorted(KERNEL_DIR.glob("*.cu"))
NVCC = shutil.which("nvcc")


def test_every_launched_kernel_has_a_source():
    assert {p.name for p in SOURCES} == set(cupy_backend.KERNELS.values())


@pytest.mark.skipif(NVCC is None, reason="nvcc not found on PATH: CUDA sources not compiled")
@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.name)
def test_compiles_with_nvcc(source, tmp_path):
    ptx = tmp_path / "out.ptx"
    result = subprocess.run([NVCC, "-arch=sm_90", "--std=c++17", "--ptx", "-Werror", "all-warnings", "-o", str(ptx),
                             str(source)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"nvcc failed on {source.name}:\n{result.stderr}"
    entries = set(re.findall(r"\.entry\s+(\w+)\(", ptx.read_text()))
    assert entries == {k for k, f in cupy_backend.KERNELS.items() if f == source.name}


def test_launch_constants_match_the_sources():
    defines = {}
    for source in SOURCES:
        defines.update(re.findall(r"^#define\s+(\w+)\s+(\d+)\s*$", source.read_text(), flags=re.M))
    for name in ("PARAM_HEADER", "RIG_FRAME_THREADS", "SKIN_LANES", "SKIN_SLICES", "BIND_THREADS"):
        assert int(defines[name]) == getattr(cupy_backend, name), name


def _kernel_parameters(name: str) -> list[str]:
    """Parameter declarations of an extern "C" kernel, from its source."""
    text = cupy_backend.kernel_source(cupy_backend.KERNELS[name])
    match = re.search(r"\b" + name + r"\s*\(([^)]*)\)\s*\{", text)
    assert match, f"kernel {name} not found in its source"
    return [" ".join(p.split()) for p in match.group(1).split(",")]


@pytest.mark.parametrize("shape_active", [False, True])
def test_launch_plan_matches_kernel_signatures(shape_active):
    from realtime.avatar.synthetic import random_avatar
    from realtime.rig.synthetic import synthetic_rig

    avatar = random_avatar(synthetic_rig(n_rings=6, n_segments=8, n_shape=4, n_expr=5), 50, seed=0)
    buffers = {**cupy_backend.pack_avatar(avatar),
               **{n: (s, "float32") for n, s in cupy_backend.frame_buffers(avatar).items()}}
    dtype = lambda b: str(b[1]) if isinstance(b, tuple) else str(b.dtype)  # noqa: E731
    shape = lambda b: b[0] if isinstance(b, tuple) else b.shape  # noqa: E731
    for launch in cupy_backend.launch_plan(avatar.rig, avatar.n_gaussians, shape_active):
        declared = _kernel_parameters(launch.kernel)
        assert len(declared) == len(launch.args), launch.kernel
        for decl, arg in zip(declared, launch.args):
            if decl.startswith("int "):
                assert isinstance(arg, np.int32), (launch.kernel, decl, arg)
                continue
            assert isinstance(arg, str), (launch.kernel, decl, arg)
            base = decl.replace("const ", "").split("*")[0].strip()
            expected = {"float": "float32", "float4": "float32", "int": "int32"}[base]
            assert dtype(buffers[arg]) == expected, (launch.kernel, decl, arg)
            if base == "float4":
                assert shape(buffers[arg])[-1] == 4, (launch.kernel, decl, arg)
