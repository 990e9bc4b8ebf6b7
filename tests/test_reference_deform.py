"""Reference deformation: rig parameters to world Gaussians."""

import numpy as np

from realtime.avatar.binding import bind, triangle_frames
from realtime.avatar.synthetic import random_avatar
from realtime.deform.reference import deform
from realtime.geometry import axis_angle_to_matrix, matrix_to_quaternion, quaternion_multiply
from realtime.rig.lbs import forward
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig


def _avatar():
    return random_avatar(synthetic_rig(), 3000, seed=3)


def _params(avatar, **values):
    params = RigParams.neutral(avatar.rig, np.float64)
    params.shape = avatar.shape.astype(np.float64)
    for name, value in values.items():
        setattr(params, name, np.asarray(value, np.float64))
    return params


def test_rest_pose_places_gaussians_on_the_shaped_template():
    avatar = _avatar()
    out = deform(avatar, _params(avatar), dtype=np.float64)
    rig = avatar.rig
    template = rig.v_template + avatar.static_offset + rig.shape_dirs @ avatar.shape.astype(np.float64)
    np.testing.assert_allclose(out.vertices, template, atol=1e-12)
    expected = bind(triangle_frames(template, rig.faces), avatar.binding, avatar.local_means.astype(np.float64),
                    avatar.local_quats.astype(np.float64), avatar.log_scales.astype(np.float64))
    np.testing.assert_allclose(out.gaussians.means, expected.means, atol=1e-12)


def test_head_rotation_and_translation_move_every_gaussian_rigidly():
    avatar = _avatar()
    rest = deform(avatar, _params(avatar), dtype=np.float64).gaussians
    rotation, translation = np.array([0.2, 0.7, -0.1]), np.array([0.02, -0.01, 0.3])
    moved = deform(avatar, _params(avatar, rotation=rotation, translation=translation), dtype=np.float64).gaussians
    rest_vertices = forward(avatar.rig, _params(avatar), static_offset=avatar.static_offset).vertices
    root = avatar.rig.j_regressor[0] @ rest_vertices
    rot = axis_angle_to_matrix(rotation)
    np.testing.assert_allclose(moved.means, (rest.means - root) @ rot.T + root + translation, atol=1e-12)
    np.testing.assert_allclose(moved.scales, rest.scales, atol=1e-12)
    composed = quaternion_multiply(matrix_to_quaternion(rot), rest.quats)
    np.testing.assert_allclose(np.abs(np.sum(composed * moved.quats, axis=1)), 1.0, atol=1e-12)


def test_float32_hot_path_matches_float64_truth():
    avatar = _avatar()
    rng = np.random.default_rng(5)
    params = _params(avatar, expr=rng.normal(size=avatar.rig.n_expr), jaw_pose=[0.3, 0.05, 0.0],
                     rotation=rng.normal(size=3) * 0.3, eyes_pose=rng.normal(size=6) * 0.2)
    truth = deform(avatar, params, dtype=np.float64).gaussians
    fast = deform(avatar, params, dtype=np.float32).gaussians
    assert fast.means.dtype == np.float32
    np.testing.assert_allclose(fast.means, truth.means, atol=2e-6)
    np.testing.assert_allclose(fast.scales, truth.scales, atol=2e-6)
    np.testing.assert_allclose(np.abs(np.sum(fast.quats * truth.quats, axis=1)), 1.0, atol=1e-5)
