"""The numba deformation backend (the CPU hot path) against the float64 NumPy reference."""

import numpy as np
import pytest

from deform_checks import as_numpy, assert_float32_parity, builtin_rig_or_skip
from realtime.avatar.binding import triangle_frames
from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import make_deformer
from realtime.deform.numba_backend import NumbaDeformer, face_frames
from realtime.geometry import axis_angle_to_matrix, matrix_to_quaternion
from realtime.rig.synthetic import synthetic_rig


@pytest.mark.parametrize("rig_name", ["synthetic", "builtin"])
def test_numba_backend_matches_the_reference(rig_name):
    rig = synthetic_rig(n_rings=24, n_segments=30, n_shape=20, n_expr=12, seed=6) if rig_name == "synthetic" \
        else builtin_rig_or_skip()
    avatar = random_avatar(rig, 20_000, seed=7)
    deformer = make_deformer(avatar, "numba")
    assert isinstance(deformer, NumbaDeformer) and deformer.backend == "numba"
    for seed in range(3):
        params = random_params(avatar, seed=seed)
        out = deformer.deform(params)
        assert out.means.dtype == np.float32 and out.means.shape == (20_000, 3) and out.quats.shape == (20_000, 4)
        assert_float32_parity(as_numpy(out), avatar, params)


def test_each_frame_is_new_arrays():
    """The renderer or the stream may still hold the last frame while the next one is deformed."""
    avatar = random_avatar(synthetic_rig(n_rings=8, n_segments=10, n_shape=4, n_expr=5, seed=1), 500, seed=2)
    deformer = NumbaDeformer(avatar)
    first = deformer.deform(random_params(avatar, seed=1))
    kept = first.means.copy()
    second = deformer.deform(random_params(avatar, seed=2))
    assert second.means is not first.means and np.array_equal(first.means, kept)
    assert not np.allclose(second.means, kept)


def test_face_frames_take_every_quaternion_branch():
    """Triangles turned so that each of trace, m00, m11, m22 is the largest: the branch of
    realtime.geometry.matrix_to_quaternion for each, sign included (w >= 0)."""
    base = np.array([[0.0, 0.0, 0.0], [1.0, 0.0, 0.0], [0.3, 0.8, 0.0]])
    rest = triangle_frames(base, np.array([[0, 1, 2]])).rotations[0]
    targets = axis_angle_to_matrix(np.array([[0.1, 0.2, 0.3], [np.pi - 0.1, 0.05, 0.0], [0.0, np.pi - 0.1, 0.05],
                                             [0.05, 0.0, np.pi - 0.1], [np.pi, 0.0, 0.0], [0.0, 0.0, -np.pi]]))
    vertices = np.concatenate([base @ (target @ rest.T).T + 2.0 * k for k, target in enumerate(targets)])
    faces = np.arange(len(vertices)).reshape(-1, 3)
    outputs = (np.empty((len(faces), 3, 3), np.float32), np.empty((len(faces), 4), np.float32),
               np.empty(len(faces), np.float32), np.empty((len(faces), 3), np.float32))
    face_frames(vertices.astype(np.float32), faces, *outputs)
    expected = triangle_frames(vertices, faces)
    r = expected.rotations
    branches = np.argmax(np.stack([np.trace(r, axis1=1, axis2=2), r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]], 1), axis=1)
    assert set(branches) == {0, 1, 2, 3}
    np.testing.assert_allclose(outputs[0], expected.rotations, atol=1e-6)
    np.testing.assert_allclose(outputs[1], matrix_to_quaternion(expected.rotations), atol=1e-6)
    np.testing.assert_allclose(outputs[2], expected.scales, atol=1e-6)
    np.testing.assert_allclose(outputs[3], expected.centers, atol=1e-6)


def test_the_identity_kept_across_frames_follows_a_new_identity():
    from dataclasses import replace

    avatar = random_avatar(synthetic_rig(n_rings=12, n_segments=14, n_shape=10, n_expr=6, seed=3), 2000, seed=4)
    deformer = NumbaDeformer(avatar)
    first = random_params(avatar, seed=1)
    for params in (first, replace(random_params(avatar, seed=2), shape=first.shape), random_params(avatar, seed=3)):
        assert_float32_parity(as_numpy(deformer.deform(params)), avatar, params)
