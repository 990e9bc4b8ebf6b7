"""The per-frame fitter against landmarks rendered from known parameters by the independent LBS forward pass."""

import numpy as np
import pytest
from dataclasses import replace

from realtime.rig.model import Rig, RigError, RigParams
from realtime.face import landmark_ids as mp_ids
from realtime.track.fit import (DEFAULT_IRIS_OFFSET, FitSettings, expression_bounds, fit_frame, fit_gaze, fold_identity, initial_pose,
                                iris_points, landmark_basis, landmark_points, project)
from track_helpers import camera, observe, random_params, rotation_error_deg, sphere_rig


def test_contour_ids_are_mediapipes():
    from mediapipe.python.solutions import face_mesh_connections as fmc

    def ids(edges):
        return tuple(sorted({i for e in edges for i in e}))

    assert mp_ids.LIPS == ids(fmc.FACEMESH_LIPS)
    assert mp_ids.LEFT_EYE == ids(fmc.FACEMESH_LEFT_EYE) and mp_ids.RIGHT_EYE == ids(fmc.FACEMESH_RIGHT_EYE)
    assert mp_ids.LEFT_EYEBROW == ids(fmc.FACEMESH_LEFT_EYEBROW)
    assert mp_ids.RIGHT_EYEBROW == ids(fmc.FACEMESH_RIGHT_EYEBROW)
    assert mp_ids.NOSE == ids(fmc.FACEMESH_NOSE) and mp_ids.FACE_OVAL == ids(fmc.FACEMESH_FACE_OVAL)
    assert set(mp_ids.LEFT_IRIS[1:]) == set(ids(fmc.FACEMESH_LEFT_IRIS))
    assert set(mp_ids.RIGHT_IRIS[1:]) == set(ids(fmc.FACEMESH_RIGHT_IRIS))
    assert set(mp_ids.LEFT_EYE_CORNERS) <= set(mp_ids.LEFT_EYE)
    contours = set(mp_ids.LIPS + mp_ids.NOSE + mp_ids.FACE_OVAL + mp_ids.CHEEKS)
    assert len(set(mp_ids.PERIORAL)) == 20 and not set(mp_ids.PERIORAL) & contours  # skin, not contour points
    assert set(mp_ids.PERIORAL) <= set(mp_ids.fit_ids())
    assert 100 <= len(mp_ids.fit_ids()) <= 200


def test_matrix_to_axis_angle_inverts_rodrigues():
    from realtime.geometry import axis_angle_to_matrix, matrix_to_axis_angle

    vectors = np.random.default_rng(0).normal(size=(200, 3))
    vectors *= np.random.default_rng(1).uniform(0, 3.1, size=(200, 1)) / np.linalg.norm(vectors, axis=1, keepdims=True)
    vectors[0] = 0.0
    vectors[1] = [1e-10, 0, 0]
    np.testing.assert_allclose(matrix_to_axis_angle(axis_angle_to_matrix(vectors)), vectors, atol=1e-9)


def test_basis_reproduces_the_forward_pass():
    rig = sphere_rig()
    rng = np.random.default_rng(1)
    cam = camera()
    shape = rng.normal(size=rig.n_shape)
    params = random_params(rig, rng, shape=shape)
    params.eyes_pose = np.array([0.1, -0.2, 0.0, 0.05, 0.1, 0.0])
    free = landmark_basis(rig, n_shape=rig.n_shape)
    held = fold_identity(free, shape)
    expected = observe(rig, params, cam)[free.ids]
    for basis in (free, held):
        got = project(cam, landmark_points(basis, params)).T
        np.testing.assert_allclose(got, expected, atol=1e-9)
    # folding a neutral expression: the same face reads with the neutral subtracted
    neutral = 0.5 * params.expr
    folded = fold_identity(free, shape, neutral)
    got = project(cam, landmark_points(folded, replace(params, expr=params.expr - neutral))).T
    np.testing.assert_allclose(got, expected, atol=1e-9)


def test_depth_scale_flattens_the_model_about_the_root_joint():
    rig = sphere_rig()
    rng = np.random.default_rng(7)
    cam = camera()
    params = random_params(rig, rng, shape=rng.normal(size=rig.n_shape))
    # the same rig with every vertex's depth (template and bases) scaled by 0.8 about the root joint's
    root_z = rig.j_regressor[0] @ rig.v_template[:, 2]
    v = rig.v_template.copy()
    v[:, 2] = root_z + 0.8 * (v[:, 2] - root_z)
    flat = {name: getattr(rig, name).copy() for name in ("shape_dirs", "expr_dirs", "pose_dirs")}
    for dirs in flat.values():
        dirs[:, 2] *= 0.8
    flattened = Rig(**{**rig.__dict__, "v_template": v, **flat})
    basis = landmark_basis(rig, n_shape=rig.n_shape, depth_scale=0.8)
    got = project(cam, landmark_points(basis, params)).T
    np.testing.assert_allclose(got, observe(flattened, params, cam)[basis.ids], atol=1e-9)
    # the eyeball keeps its radius: gaze turns the iris as far as on the rig itself
    np.testing.assert_allclose(basis.iris_offsets, landmark_basis(rig).iris_offsets)
    # folding identity with more coefficients than the basis holds keeps the flattening
    held = fold_identity(landmark_basis(rig, depth_scale=0.8), params.shape, rig=rig)
    np.testing.assert_allclose(project(cam, landmark_points(held, params)).T, got, atol=1e-9)


def test_fit_recovers_known_parameters_over_a_sequence():
    rig = sphere_rig()
    cam = camera()
    rng = np.random.default_rng(2)
    basis = fold_identity(landmark_basis(rig), np.zeros(rig.n_shape))
    truths, fits = [], []
    state = None
    for _ in range(24):
        truth = random_params(rig, rng)
        obs = observe(rig, truth, cam, noise=0.3, rng=rng)[basis.ids]
        # warm start from the previous frame, as the tracker does (frames here jump far apart: take more steps)
        init = initial_pose(basis, obs, cam) if state is None else state
        # the sphere's shapes move landmarks by millimetres (a face's by centimetres): a lighter prior suits them
        fit = fit_frame(basis, obs, cam, init, FitSettings(iterations=8, expr_prior=1e-3), cold=state is None)
        state = fit.params
        truths.append(truth)
        fits.append(fit.params)
        assert rotation_error_deg(fit.params.rotation, truth.rotation) < 1.0
        np.testing.assert_allclose(fit.params.translation, truth.translation, atol=3e-3)
        assert abs(fit.params.jaw_pose[0] - truth.jaw_pose[0]) < 0.05
        assert np.mean(np.linalg.norm(fit.residual, axis=1)) < 0.6  # about the noise
    expr_true = np.array([t.expr for t in truths])
    expr_fit = np.array([f.expr for f in fits])
    for k in range(rig.n_expr):
        assert np.corrcoef(expr_true[:, k], expr_fit[:, k])[0, 1] > 0.9, k


def test_fit_keeps_coefficients_in_their_box():
    rig = sphere_rig(arkit=True)
    lower, upper = expression_bounds(rig)
    assert np.all(lower == 0) and np.all(upper == 1)
    cam = camera()
    basis = fold_identity(landmark_basis(rig), np.zeros(rig.n_shape))
    truth = random_params(rig, np.random.default_rng(4))
    truth.expr = np.where(np.arange(rig.n_expr) % 2 == 0, 0.0, 0.9)
    obs = observe(rig, truth, cam)[basis.ids]
    exact = FitSettings(expr_prior=1e-7)  # no pull towards zero: the box alone shapes the answer
    fit = fit_frame(basis, obs, cam, initial_pose(basis, obs, cam), exact, cold=True)
    assert np.all(fit.params.expr >= 0) and np.all(fit.params.expr <= 1)
    np.testing.assert_allclose(fit.params.expr, truth.expr, atol=0.03)
    # a face beyond the box (a negative activation) is fitted at the bound, not past it
    beyond = replace(truth, expr=np.where(np.arange(rig.n_expr) == 0, -0.5, truth.expr))
    obs = observe(rig, beyond, cam)[basis.ids]
    fit = fit_frame(basis, obs, cam, initial_pose(basis, obs, cam), exact, cold=True)
    assert fit.params.expr[0] == 0.0 and np.all(fit.params.expr <= 1)


def test_l1_prior_keeps_unsupported_activations_at_zero():
    rig = sphere_rig(arkit=True)
    cam = camera()
    basis = fold_identity(landmark_basis(rig), np.zeros(rig.n_shape))
    active = np.arange(rig.n_expr) % 3 == 0
    zeros = {}
    for l1 in (0.0, 1e-3):
        settings = FitSettings(expr_prior=1e-4, expr_l1=l1, iterations=10)
        rng = np.random.default_rng(5)  # the same faces and noise for both
        zeros[l1], errors = 0, []
        for _ in range(6):
            truth = replace(random_params(rig, rng), expr=np.where(active, 0.6, 0.0))
            obs = observe(rig, truth, cam, noise=0.3, rng=rng)[basis.ids]
            fit = fit_frame(basis, obs, cam, initial_pose(basis, obs, cam), settings, cold=True)
            zeros[l1] += int(np.sum(fit.params.expr[~active] == 0.0))
            errors.append(np.abs(fit.params.expr[active] - 0.6).max())
        assert max(errors) < 0.15  # the supported activations still read
    # noise scatters small activations over the inactive shapes; the L1 pull holds most of them at zero
    inactive = 6 * np.sum(~active)
    assert zeros[0.0] < 0.5 * inactive and zeros[1e-3] > 0.9 * inactive


def test_turn_from_the_reference_weakens_the_landmarks():
    from realtime.track.fit import _turn_weight

    reference = np.radians([0.0, -10.0, 0.0])
    assert _turn_weight(reference, reference, 15.0) == pytest.approx(1.0)
    assert _turn_weight(np.radians([0.0, 5.0, 0.0]), reference, 15.0) == pytest.approx(1 / np.sqrt(2))
    assert _turn_weight(np.radians([40.0, 0.0, 0.0]), None, 15.0) == 1.0
    # fitted at a turn from the reference, the same noisy face reads its activations closer to zero
    rig = sphere_rig(arkit=True)
    cam = camera()
    basis = fold_identity(landmark_basis(rig), np.zeros(rig.n_shape))
    truth = replace(random_params(rig, np.random.default_rng(6)), expr=np.full(rig.n_expr, 0.5))
    obs = observe(rig, truth, cam)[basis.ids]
    settings = FitSettings(expr_prior=3e-3, iterations=10)
    plain = fit_frame(basis, obs, cam, truth, settings, reference=truth.rotation)
    turned = fit_frame(basis, obs, cam, truth, settings, reference=truth.rotation + np.radians([0.0, 30.0, 0.0]))
    np.testing.assert_allclose(plain.params.expr, fit_frame(basis, obs, cam, truth, settings).params.expr)
    assert np.all(turned.params.expr < plain.params.expr)


def test_identity_is_recovered_from_frames():
    rig = sphere_rig()
    cam = camera()
    rng = np.random.default_rng(5)
    shape = rng.normal(size=rig.n_shape)
    basis = landmark_basis(rig, n_shape=rig.n_shape)
    estimates = []
    for _ in range(4):
        truth = random_params(rig, rng, expr_scale=0.3, shape=shape)
        obs = observe(rig, truth, cam, noise=0.1, rng=rng)[basis.ids]
        fit = fit_frame(basis, obs, cam, initial_pose(basis, obs, cam), cold=True)
        estimates.append(fit.params.shape)
    assert np.corrcoef(np.mean(estimates, axis=0), shape)[0, 1] > 0.95


def test_gaze_from_the_iris_centres():
    rig = sphere_rig(eyes_skinned=False, pose_correctives=False)  # landmarks that do not move with the eyes
    cam = camera()
    rng = np.random.default_rng(6)
    basis = fold_identity(landmark_basis(rig), np.zeros(rig.n_shape))
    # the sphere's embedded iris points lie anywhere: give the eyes a real iris, 11.5 mm ahead of each eye joint
    basis = replace(basis, iris_offsets=np.tile(DEFAULT_IRIS_OFFSET, (2, 1)))
    truth = random_params(rig, rng)
    truth.eyes_pose = np.array([0.15, -0.25, 0.0, -0.1, 0.2, 0.0])
    points = observe(rig, truth, cam)
    # the iris centres move with the eyeballs: place them by the model's eye (the rig's own iris may be skinned
    # to the head on this synthetic sphere)
    points[[mp_ids.LEFT_IRIS[0], mp_ids.RIGHT_IRIS[0]]] = project(cam, iris_points(basis, truth)).T
    exact = FitSettings(expr_prior=1e-8, jaw_prior=(1e-8,) * 3, gaze_prior=1e-8)  # no priors: an exact answer
    fit = fit_frame(basis, points[basis.ids], cam, initial_pose(basis, points[basis.ids], cam), exact, cold=True)
    assert np.allclose(fit.params.eyes_pose, 0)  # the main fit leaves gaze alone
    gazed = fit_gaze(basis, fit, points, cam, exact, iterations=5)
    np.testing.assert_allclose(gazed.eyes_pose, truth.eyes_pose, atol=np.radians(0.5))


def test_rig_without_enough_landmarks_is_refused():
    from realtime.rig.synthetic import synthetic_rig

    with pytest.raises(RigError, match="embeds only"):
        landmark_basis(synthetic_rig(n_landmarks=5))


def test_observation_shape_is_checked():
    rig = sphere_rig()
    basis = landmark_basis(rig)
    with pytest.raises(ValueError, match="observed landmarks"):
        fit_frame(basis, np.zeros((10, 2)), camera(), RigParams.neutral(rig))


def test_compiled_fit_reports_the_numpy_models_residual():
    rig = sphere_rig()  # eyes skinned and pose correctives on: every term of the kernel is exercised
    cam = camera()
    rng = np.random.default_rng(8)
    basis = fold_identity(landmark_basis(rig), np.zeros(rig.n_shape))
    truth = random_params(rig, rng)
    truth.eyes_pose = np.array([0.1, -0.1, 0.0, 0.05, 0.1, 0.0])
    obs = observe(rig, truth, cam, noise=0.5, rng=rng)[basis.ids]
    init = replace(initial_pose(basis, obs, cam), eyes_pose=truth.eyes_pose)
    fit = fit_frame(basis, obs, cam, init, cold=True)
    reference = obs - project(cam, landmark_points(basis, fit.params)).T
    np.testing.assert_allclose(fit.residual, reference, atol=1e-6)


def test_landmarks_turning_away_from_the_camera_lose_their_weight():
    from realtime.rig.builtin import builtin_rig
    from realtime.track.fit import facing_weights

    rig = builtin_rig()
    basis, cam = landmark_basis(rig), camera()
    left, right = np.isin(basis.ids, mp_ids.LEFT_EYEBROW), np.isin(basis.ids, mp_ids.RIGHT_EYEBROW)

    def weights(yaw_deg, reference=None):
        params = RigParams.neutral(rig, np.float64)
        params.rotation = np.radians([0.0, yaw_deg, 0.0])
        return facing_weights(basis, params, cam, reference, drop=0.5)

    np.testing.assert_allclose(weights(0.0), 1.0)                                 # at rest: all count fully
    np.testing.assert_allclose(weights(30.0, np.radians([0.0, 30.0, 0.0])), 1.0)  # at the reference pose too
    turned = weights(30.0)                                                        # the subject's left side turns away
    assert turned[left].mean() < 0.4 and turned[right].mean() > 0.9
    assert np.all((turned >= 0.0) & (turned <= 1.0))
    back = weights(-30.0)
    assert back[right].mean() < 0.4 and back[left].mean() > 0.9
