"""The host side of the cupy backend, which runs without CuPy or a GPU: imports, parameter packing."""

import subprocess
import sys

import numpy as np
import pytest

from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import cupy_backend
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
