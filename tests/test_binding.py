"""The GaussianAvatars binding transform against its definition."""

import numpy as np

from realtime.avatar.binding import WorldGaussians, bind, triangle_frames, unbind
from realtime.geometry import axis_angle_to_matrix, matrix_to_quaternion, quaternion_multiply, quaternion_to_matrix


def _random_bound(n_faces=50, n=400, seed=0):
    rng = np.random.default_rng(seed)
    vertices = rng.normal(size=(3 * n_faces, 3)) * 0.05
    faces = np.arange(3 * n_faces).reshape(n_faces, 3)
    binding = rng.integers(0, n_faces, size=n)
    local = (rng.normal(size=(n, 3)) * 0.3, rng.normal(size=(n, 4)), rng.normal(size=(n, 3)) - 3)
    return vertices, faces, binding, local


def test_frame_of_a_right_triangle_matches_the_definition():
    vertices = np.array([[0.0, 0, 0], [2.0, 0, 0], [0.0, 1.0, 0]])
    frames = triangle_frames(vertices, np.array([[0, 1, 2]]))
    # a0 along v1 - v0 (+x), a1 the normal (+z), a2 = -(a1 x a0) = -y.
    np.testing.assert_allclose(frames.rotations[0], np.array([[1, 0, 0], [0, 0, 1], [0, -1, 0]]).T, atol=1e-15)
    np.testing.assert_allclose(frames.scales[0], (2.0 + 1.0) / 2)
    np.testing.assert_allclose(frames.centers[0], [2 / 3, 1 / 3, 0])


def test_frames_are_rotations():
    vertices, faces, _, _ = _random_bound()
    rot = triangle_frames(vertices, faces).rotations
    np.testing.assert_allclose(rot @ np.swapaxes(rot, 1, 2), np.broadcast_to(np.eye(3), rot.shape), atol=1e-12)
    np.testing.assert_allclose(np.linalg.det(rot), 1.0, atol=1e-12)


def test_bind_follows_the_formula():
    vertices, faces, binding, (means, quats, log_scales) = _random_bound()
    frames = triangle_frames(vertices, faces)
    world = bind(frames, binding, means, quats, log_scales)
    i = 7
    rot, k, c = frames.rotations[binding[i]], frames.scales[binding[i]], frames.centers[binding[i]]
    np.testing.assert_allclose(world.means[i], k * rot @ means[i] + c, atol=1e-14)
    np.testing.assert_allclose(world.scales[i], np.exp(log_scales[i]) * k, atol=1e-14)
    local_rot = quaternion_to_matrix(quats[i])
    np.testing.assert_allclose(quaternion_to_matrix(world.quats[i]), rot @ local_rot, atol=1e-12)


def test_rigid_motion_of_the_mesh_moves_gaussians_rigidly():
    vertices, faces, binding, local = _random_bound()
    rest = bind(triangle_frames(vertices, faces), binding, *local)
    rot = axis_angle_to_matrix(np.array([0.4, -1.1, 0.3]))
    shift = np.array([0.1, 0.2, -0.3])
    moved = bind(triangle_frames(vertices @ rot.T + shift, faces), binding, *local)
    np.testing.assert_allclose(moved.means, rest.means @ rot.T + shift, atol=1e-12)
    np.testing.assert_allclose(moved.scales, rest.scales, atol=1e-12)
    composed = quaternion_multiply(matrix_to_quaternion(rot), rest.quats)
    same = np.abs(np.sum(composed * moved.quats, axis=-1))  # q and -q are the same rotation
    np.testing.assert_allclose(same, 1.0, atol=1e-12)


def test_uniform_scaling_of_the_mesh_scales_gaussians():
    vertices, faces, binding, local = _random_bound()
    rest = bind(triangle_frames(vertices, faces), binding, *local)
    big = bind(triangle_frames(2.5 * vertices, faces), binding, *local)
    np.testing.assert_allclose(big.means, 2.5 * rest.means, atol=1e-12)
    np.testing.assert_allclose(big.scales, 2.5 * rest.scales, atol=1e-12)


def test_unbind_inverts_bind():
    vertices, faces, binding, (means, quats, log_scales) = _random_bound()
    frames = triangle_frames(vertices, faces)
    world = bind(frames, binding, means, quats, log_scales)
    back = unbind(frames, binding, WorldGaussians(world.means, world.quats, world.scales))
    np.testing.assert_allclose(back[0], means, atol=1e-10)
    unit = quats / np.linalg.norm(quats, axis=1, keepdims=True)
    np.testing.assert_allclose(np.abs(np.sum(back[1] * unit, axis=1)), 1.0, atol=1e-12)
    np.testing.assert_allclose(back[2], log_scales, atol=1e-12)
