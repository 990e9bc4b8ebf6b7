"""The rig's forward pass against independent math."""

import numpy as np
import pytest

from realtime.geometry import axis_angle_to_matrix, matrix_to_quaternion, quaternion_multiply, quaternion_to_matrix
from realtime.rig.lbs import barycentric_points, forward, landmarks
from realtime.rig.model import RigError, RigParams
from realtime.rig.synthetic import synthetic_rig


@pytest.fixture(scope="module")
def rig():
    return synthetic_rig()


def test_rest_pose_gives_template(rig):
    out = forward(rig, RigParams.neutral(rig, np.float64))
    np.testing.assert_allclose(out.vertices, rig.v_template, atol=1e-15)


def test_float32_matches_float64(rig):
    rng = np.random.default_rng(1)
    params = RigParams.neutral(rig, np.float64)
    params.expr = rng.normal(size=rig.n_expr)
    params.jaw_pose = np.array([0.2, 0.0, 0.0])
    params.rotation = rng.normal(size=3) * 0.3
    v64 = forward(rig, params).vertices
    v32 = forward(rig.astype(np.float32), params).vertices
    assert v32.dtype == np.float32
    np.testing.assert_allclose(v32, v64, atol=1e-6)


def test_global_rotation_and_translation_are_rigid(rig):
    params = RigParams.neutral(rig, np.float64)
    params.rotation = np.array([0.3, -0.5, 0.2])
    params.translation = np.array([0.01, -0.02, 0.5])
    out = forward(rig, params)
    root = rig.j_regressor[0] @ rig.v_template
    rot = axis_angle_to_matrix(params.rotation)
    expected = (rig.v_template - root) @ rot.T + root + params.translation
    np.testing.assert_allclose(out.vertices, expected, atol=1e-12)


def test_blend_shapes_are_linear_at_rest(rig):
    params = RigParams.neutral(rig, np.float64)
    params.expr = np.linspace(-1, 1, rig.n_expr)
    params.shape = np.linspace(1, -1, rig.n_shape)
    out = forward(rig, params)
    expected = rig.v_template + rig.expr_dirs @ params.expr + rig.shape_dirs @ params.shape
    np.testing.assert_allclose(out.vertices, expected, atol=1e-12)


def test_pose_correctives_are_skinned_with_the_mesh(rig):
    params = RigParams.neutral(rig, np.float64)
    params.jaw_pose = np.array([0.3, 0.0, 0.0])
    with_correctives = forward(rig, params).vertices
    without = forward(synthetic_rig(pose_correctives=False), params).vertices
    rot = axis_angle_to_matrix(params.full_pose())
    offsets = rig.pose_dirs @ (rot[1:] - np.eye(3)).reshape(-1)
    # Only the jaw turns: each vertex's blended rotation is (1 - w) I + w R_jaw.
    w = rig.weights[:, 2, None, None]
    blended = (1 - w) * np.eye(3) + w * rot[2]
    np.testing.assert_allclose(with_correctives - without, np.einsum("vab,vb->va", blended, offsets), atol=1e-12)
    assert np.abs(offsets).max() > 1e-5


def test_jaw_moves_vertices_by_their_jaw_weight():
    rig = synthetic_rig(pose_correctives=False)
    params = RigParams.neutral(rig, np.float64)
    params.jaw_pose = np.array([0.4, 0.0, 0.0])
    moved = forward(rig, params).vertices - rig.v_template
    jaw = rig.j_regressor[2] @ rig.v_template
    rigid = (rig.v_template - jaw) @ (axis_angle_to_matrix(params.jaw_pose) - np.eye(3)).T
    np.testing.assert_allclose(moved, rig.weights[:, 2:3] * rigid, atol=1e-12)


def test_eye_joints_chain_under_the_neck(rig):
    params = RigParams.neutral(rig, np.float64)
    params.neck_pose = np.array([0.0, 0.5, 0.0])
    out = forward(rig, params)
    rest_joints = rig.j_regressor @ rig.v_template
    rot = axis_angle_to_matrix(params.neck_pose)
    expected_eye = rot @ (rest_joints[3] - rest_joints[1]) + rest_joints[1]
    np.testing.assert_allclose(out.joints[3], expected_eye, atol=1e-12)


def test_landmarks_are_barycentric_points(rig):
    out = forward(rig, RigParams.neutral(rig, np.float64))
    pts = landmarks(rig, out.vertices)
    tri = rig.v_template[rig.faces[rig.lmk_faces]]
    expected = np.array([b @ t for b, t in zip(rig.lmk_bary, tri)])
    np.testing.assert_allclose(pts, expected, atol=1e-15)
    one_vertex = barycentric_points(rig.v_template, rig.faces, np.array([5]), np.array([[0.0, 1.0, 0.0]]))
    np.testing.assert_array_equal(one_vertex[0], rig.v_template[rig.faces[5, 1]])


def test_params_of_the_wrong_size_are_refused(rig):
    params = RigParams.neutral(rig, np.float64)
    params.expr = np.zeros(rig.n_expr + 1)
    with pytest.raises(RigError, match="expr must have shape"):
        forward(rig, params)
    params = RigParams.neutral(rig, np.float64)
    params.jaw_pose = np.array([np.nan, 0, 0])
    with pytest.raises(RigError, match="jaw_pose holds NaN"):
        forward(rig, params)


def test_inconsistent_rig_is_refused(rig):
    from dataclasses import replace

    with pytest.raises(RigError, match="faces index vertices"):
        replace(rig, faces=rig.faces + rig.n_vertices)
    with pytest.raises(RigError, match="weights must be"):
        replace(rig, weights=rig.weights[:-1])
    bad = rig.v_template.copy()
    bad[3, 1] = np.inf
    with pytest.raises(RigError, match="v_template holds NaN"):
        replace(rig, v_template=bad)


def test_quaternion_helpers_agree_with_matrices():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(2, 200, 3)) * 1.5
    ra, rb = axis_angle_to_matrix(a), axis_angle_to_matrix(b)
    qa, qb = matrix_to_quaternion(ra), matrix_to_quaternion(rb)
    np.testing.assert_allclose(quaternion_to_matrix(qa), ra, atol=1e-12)
    np.testing.assert_allclose(quaternion_to_matrix(quaternion_multiply(qa, qb)), ra @ rb, atol=1e-12)
    half_turn = axis_angle_to_matrix(np.array([0.0, np.pi, 0.0]))
    np.testing.assert_allclose(quaternion_to_matrix(matrix_to_quaternion(half_turn)), half_turn, atol=1e-12)


def test_a_kept_identity_gives_the_same_mesh(rig):
    from realtime.rig.lbs import identity_template

    rng = np.random.default_rng(5)
    params = RigParams.neutral(rig, np.float64)
    params.shape, params.expr = rng.normal(size=rig.n_shape), rng.normal(size=rig.n_expr)
    params.jaw_pose = np.array([0.15, 0.0, 0.0])
    offset = rng.normal(size=rig.v_template.shape) * 1e-3
    kept = identity_template(rig, params.shape, offset)
    np.testing.assert_allclose(forward(rig, params, identity=kept).vertices,
                               forward(rig, params, static_offset=offset).vertices, atol=1e-15)


def test_rig_arrays_are_stored_contiguous():
    """A transposed blend-shape array would be copied by every frame's reshape: the rig keeps its own copy."""
    from dataclasses import replace

    rig = synthetic_rig(n_rings=6, n_segments=8, n_shape=4, n_expr=3)
    shuffled = np.asfortranarray(rig.shape_dirs)
    assert not shuffled.flags.c_contiguous
    again = replace(rig, shape_dirs=shuffled)
    assert again.shape_dirs.flags.c_contiguous and np.array_equal(again.shape_dirs, rig.shape_dirs)
    assert all(a.flags.c_contiguous for a in (again.expr_dirs, again.pose_dirs, again.astype(np.float32).shape_dirs))
