"""The torch deformation backend and the make_deformer factory, on the CPU, against the NumPy reference."""

import importlib.util

import numpy as np
import pytest
import torch

from deform_checks import as_numpy, assert_float32_parity, builtin_rig_or_skip, reference_errors
from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import make_deformer
from realtime.deform.numpy_backend import NumpyDeformer
from realtime.deform.reference import deform
from realtime.deform.torch_backend import TorchDeformer, axis_angle_to_matrix, matrix_to_quaternion
from realtime.geometry import axis_angle_to_matrix as np_axis_angle_to_matrix
from realtime.geometry import matrix_to_quaternion as np_matrix_to_quaternion
from realtime.rig.model import RigError
from realtime.rig.synthetic import synthetic_rig


@pytest.fixture(scope="module")
def small_avatar():
    return random_avatar(synthetic_rig(n_rings=10, n_segments=12, n_shape=6, n_expr=9, seed=4), 3000, seed=5)


@pytest.fixture(scope="module")
def flame_sized_avatar():
    rig = synthetic_rig(n_rings=72, n_segments=70, n_shape=100, n_expr=50, seed=1)
    return random_avatar(rig, 20_000, seed=2)


def test_rotation_helpers_match_numpy():
    rng = np.random.default_rng(0)
    rotvecs = np.concatenate([rng.normal(size=(200, 3)) * 2, np.zeros((1, 3)), [[np.pi, 0, 0], [0, -np.pi, 0]]])
    mats = axis_angle_to_matrix(torch.from_numpy(rotvecs)).numpy()
    np.testing.assert_allclose(mats, np_axis_angle_to_matrix(rotvecs), atol=1e-14)
    np.testing.assert_allclose(matrix_to_quaternion(torch.from_numpy(mats)).numpy(), np_matrix_to_quaternion(mats),
                               atol=1e-14)


@pytest.mark.parametrize("seed, identity", [(0, True), (1, True), (2, False)])
def test_float64_matches_reference_to_rounding(small_avatar, seed, identity):
    params = random_params(small_avatar, seed=seed, angle=0.5, identity=identity)
    out = as_numpy(TorchDeformer(small_avatar, "cpu", torch.float64).deform(params))
    ref = deform(small_avatar, params, np.float64)
    expected = {"means": ref.gaussians.means, "quats": ref.gaussians.quats, "scales": ref.gaussians.scales,
                "vertices": ref.vertices}
    for name, value in expected.items():
        np.testing.assert_allclose(out[name], value, rtol=0, atol=1e-10, err_msg=name)


def test_float32_matches_reference_on_a_flame_sized_rig(flame_sized_avatar):
    deformer = TorchDeformer(flame_sized_avatar, "cpu", torch.float32)
    for seed in range(2):
        out = deformer.deform(random_params(flame_sized_avatar, seed=seed, identity=seed == 0))
        assert out.means.dtype == torch.float32 and out.means.shape == (20_000, 3)
        assert out.quats.shape == (20_000, 4) and out.vertices.shape == (flame_sized_avatar.rig.n_vertices, 3)
        assert_float32_parity(as_numpy(out), flame_sized_avatar,
                              random_params(flame_sized_avatar, seed=seed, identity=seed == 0))


def test_float32_matches_reference_on_the_builtin_rig():
    avatar = random_avatar(builtin_rig_or_skip(), 20_000, seed=3)
    deformer = TorchDeformer(avatar)
    for seed in range(2):
        params = random_params(avatar, seed=seed, angle=0.4, identity=seed == 0)
        assert_float32_parity(as_numpy(deformer.deform(params)), avatar, params)


def test_rig_without_pose_correctives():
    avatar = random_avatar(synthetic_rig(n_rings=8, n_segments=10, pose_correctives=False), 500, seed=3)
    params = random_params(avatar, seed=7)
    assert_float32_parity(as_numpy(TorchDeformer(avatar).deform(params)), avatar, params)


def test_the_pose_moves_the_gaussians(small_avatar):
    deformer = TorchDeformer(small_avatar)
    rest = as_numpy(deformer.deform(random_params(small_avatar, seed=0, angle=0.0)))
    posed = as_numpy(deformer.deform(random_params(small_avatar, seed=0, angle=0.5)))
    assert np.abs(posed["means"] - rest["means"]).max() > 0.01


def test_bad_parameters_are_named(small_avatar):
    params = random_params(small_avatar)
    params.expr = np.zeros(3)
    with pytest.raises(RigError, match="expr"):
        TorchDeformer(small_avatar).deform(params)


def test_numpy_backend_is_the_float32_reference(small_avatar):
    params = random_params(small_avatar, seed=3)
    deformer = make_deformer(small_avatar, "numpy")
    assert isinstance(deformer, NumpyDeformer) and deformer.backend == "numpy"
    out = deformer.deform(params)
    assert out.means.dtype == np.float32
    errors = reference_errors(as_numpy(out), small_avatar, params)
    assert errors["means"] < 1e-5 and errors["quats_over_tolerance"] <= 1.0, errors


def test_make_deformer_picks_and_checks_backends(small_avatar):
    torch_deformer = make_deformer(small_avatar, "torch", device="cpu")
    assert isinstance(torch_deformer, TorchDeformer) and torch_deformer.device.type == "cpu"
    if not torch.cuda.is_available():
        assert make_deformer(small_avatar).backend == "numba"
    with pytest.raises(ValueError, match="unknown deformation backend 'jax'"):
        make_deformer(small_avatar, "jax")
    for backend in ("numpy", "numba"):
        with pytest.raises(ValueError, match=f"the {backend} deformation backend runs on the CPU"):
            make_deformer(small_avatar, backend, device="cuda")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error raised where CUDA is missing")
def test_gpu_backends_fail_clearly_without_cuda(small_avatar):
    with pytest.raises(RuntimeError, match="no usable CUDA device"):
        TorchDeformer(small_avatar, "cuda")
    message = "CuPy" if importlib.util.find_spec("cupy") is None else "CUDA device"
    with pytest.raises(RuntimeError, match=message):
        make_deformer(small_avatar, "cupy")
