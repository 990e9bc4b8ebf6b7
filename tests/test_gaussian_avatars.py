"""GaussianAvatars' teeth and its point_cloud.ply + flame_param.npz import/export, on synthetic FLAME-sized data."""

import dataclasses

import numpy as np
import pytest

from flame_files import flame_sized_rig, ga_property_names, random_ga_columns, write_flame_param, write_ga_ply
from realtime.avatar.gaussian_avatars import (export_gaussian_avatars, import_gaussian_avatars,
                                              read_flame_param)
from realtime.avatar.gaussians import AvatarError
from realtime.avatar.ply import read_ply
from realtime.deform.reference import deform
from realtime.rig.lbs import forward
from realtime.rig.model import RigError, RigParams
from realtime.rig.synthetic import synthetic_rig
from realtime.rig.teeth import LIP_OUTSIDE_RING_LOWER, LIP_OUTSIDE_RING_UPPER, add_teeth, teeth_faces

N_FLAME_V, N_FLAME_F = 5023, 9976


@pytest.fixture(scope="module")
def flame():
    return flame_sized_rig()


@pytest.fixture(scope="module")
def teeth_rig(flame):
    return add_teeth(flame)


# ---------------------------------------------------------------- teeth


def test_teeth_are_appended_after_flame(flame, teeth_rig):
    assert teeth_rig.n_vertices == N_FLAME_V + 120 and teeth_rig.n_faces == N_FLAME_F + 168
    for name in ("v_template", "shape_dirs", "expr_dirs", "pose_dirs", "weights"):
        np.testing.assert_array_equal(getattr(teeth_rig, name)[:N_FLAME_V], getattr(flame, name))
    np.testing.assert_array_equal(teeth_rig.j_regressor[:, :N_FLAME_V], flame.j_regressor)
    np.testing.assert_array_equal(teeth_rig.faces[:N_FLAME_F], flame.faces)
    np.testing.assert_array_equal(teeth_rig.lmk_faces, flame.lmk_faces)
    assert teeth_rig.faces[N_FLAME_F:].min() == N_FLAME_V and teeth_rig.faces[N_FLAME_F:].max() == N_FLAME_V + 119


def test_teeth_faces_match_gaussian_avatars_table():
    faces = teeth_faces()
    # Entries of GaussianAvatars' f_teeth_upper / f_teeth_lower tables (upper listed first).
    known = {0: [0, 31, 30], 1: [0, 1, 31], 14: [7, 8, 37], 15: [8, 38, 37], 27: [14, 44, 43], 28: [60, 75, 76],
             42: [67, 82, 68], 56: [75, 30, 76], 70: [82, 37, 38], 83: [88, 44, 89], 84: [45, 46, 15],
             98: [52, 23, 22], 112: [90, 106, 105], 126: [97, 98, 112], 140: [105, 106, 45], 154: [112, 53, 52],
             166: [118, 59, 58], 167: [118, 119, 59]}
    for index, face in known.items():
        assert faces[index].tolist() == face, index
    # Each jaw is one consistently oriented strip surface: no directed edge twice, 109 shared edges.
    rows = faces // 15
    upper, lower = faces[:84], faces[84:]
    assert np.isin(rows[:84], [0, 2, 4, 5]).all() and np.isin(rows[84:], [1, 3, 6, 7]).all()
    for jaw in (upper, lower):
        directed = {(int(f[k]), int(f[(k + 1) % 3])) for f in jaw for k in range(3)}
        assert len(directed) == 3 * len(jaw)
        assert sum((b, a) in directed for a, b in directed) == 2 * 109
    assert len(np.unique(faces)) == 120


def test_teeth_vertices_follow_the_lip_rings(flame, teeth_rig):
    upper = flame.v_template[list(LIP_OUTSIDE_RING_UPPER)]
    lower = flame.v_template[list(LIP_OUTSIDE_RING_LOWER)]
    d = np.mean(np.sqrt(((upper - lower) ** 2).sum(-1)))
    rows = teeth_rig.v_template[N_FLAME_V:].reshape(8, 15, 3)
    upper_root, lower_root, upper_edge, lower_edge, upper_root_b, upper_edge_b, lower_root_b, lower_edge_b = rows
    mid_x = (upper[:, 0] + lower[:, 0]) / 2
    mid_y = np.mean((upper[:, 1] + lower[:, 1]) / 2)
    mid_z = (upper[:, 2] + lower[:, 2]) / 2 - 1.5 * d
    for row in rows:
        np.testing.assert_allclose(row[:, 0], mid_x, atol=1e-12)
    np.testing.assert_allclose(upper_edge[:, 1], mid_y + 0.1 * d, atol=1e-12)
    np.testing.assert_allclose(upper_root[:, 1], mid_y + 2.1 * d, atol=1e-12)
    np.testing.assert_allclose(lower_edge[:, 1], mid_y - 0.1 * d, atol=1e-12)
    np.testing.assert_allclose(lower_root[:, 1], mid_y - 2.1 * d, atol=1e-12)
    np.testing.assert_allclose(upper_edge[:, 2], mid_z, atol=1e-12)
    np.testing.assert_allclose(upper_root[:, 2], mid_z, atol=1e-12)
    np.testing.assert_allclose(lower_edge[:, 2], mid_z - 0.4 * d, atol=1e-12)
    np.testing.assert_allclose(lower_root[:, 2], mid_z - 0.4 * d, atol=1e-12)
    for back, front in ((upper_root_b, upper_root), (upper_edge_b, upper_edge), (lower_root_b, lower_root),
                        (lower_edge_b, lower_edge)):
        np.testing.assert_allclose(back, front - [0, 0, d], atol=1e-12)


def test_teeth_blend_shapes_and_skinning(flame, teeth_rig):
    ring_mean = (flame.shape_dirs[list(LIP_OUTSIDE_RING_UPPER)] + flame.shape_dirs[list(LIP_OUTSIDE_RING_LOWER)]) / 2
    for row in range(8):
        np.testing.assert_array_equal(teeth_rig.shape_dirs[N_FLAME_V + 15 * row:N_FLAME_V + 15 * (row + 1)], ring_mean)
    assert not teeth_rig.expr_dirs[N_FLAME_V:].any() and not teeth_rig.pose_dirs[N_FLAME_V:].any()
    assert not teeth_rig.j_regressor[:, N_FLAME_V:].any()
    rows = np.arange(120) // 15
    expected = np.zeros((120, 5))
    expected[np.isin(rows, [0, 2, 4, 5]), 1] = 1
    expected[np.isin(rows, [1, 3, 6, 7]), 2] = 1
    np.testing.assert_array_equal(teeth_rig.weights[N_FLAME_V:], expected)


def test_lower_teeth_follow_the_jaw_rigidly(teeth_rig):
    shape = np.linspace(-1, 1, teeth_rig.n_shape)
    rest = forward(teeth_rig, RigParams(shape=shape, expr=np.zeros(teeth_rig.n_expr)))
    posed = forward(teeth_rig, RigParams(shape=shape, expr=np.zeros(teeth_rig.n_expr), jaw_pose=np.array([0.3, 0, 0]),
                                         neck_pose=np.array([0, 0.2, 0])))
    for joint, rows in ((2, [1, 3, 6, 7]), (1, [0, 2, 4, 5])):
        ids = N_FLAME_V + (np.array(rows)[:, None] * 15 + np.arange(15)).ravel()
        transform = posed.transforms[joint]
        expected = rest.vertices[ids] @ transform[:3, :3].T + transform[:3, 3]
        np.testing.assert_allclose(posed.vertices[ids], expected, atol=1e-12)


def test_teeth_need_flame_topology(teeth_rig):
    with pytest.raises(RigError, match="FLAME-topology"):
        add_teeth(synthetic_rig())
    with pytest.raises(RigError, match="already has teeth"):
        add_teeth(teeth_rig)


# ---------------------------------------------------------------- import / export


@pytest.fixture()
def ga_folder(tmp_path, flame, teeth_rig):
    folder = tmp_path / "306"
    folder.mkdir()
    columns = random_ga_columns(500, teeth_rig.n_faces, sh_degree=3)
    write_ga_ply(folder / "point_cloud.ply", columns)
    params = write_flame_param(folder / "flame_param.npz", flame.n_shape, flame.n_expr, N_FLAME_V)
    return folder, columns, params


def test_import_reads_gaussian_avatars_layout(ga_folder, flame):
    folder, columns, params = ga_folder
    avatar = import_gaussian_avatars(folder, flame)
    assert avatar.rig.n_faces == N_FLAME_F + 168 and avatar.binding.max() == N_FLAME_F + 167
    assert avatar.binding.dtype == np.int32 and avatar.name == "306"
    np.testing.assert_array_equal(avatar.binding, columns["binding_0"].astype(np.int32))
    np.testing.assert_array_equal(avatar.local_means, np.stack([columns[c] for c in "xyz"], 1))
    np.testing.assert_array_equal(avatar.local_quats, np.stack([columns[f"rot_{i}"] for i in range(4)], 1))
    np.testing.assert_array_equal(avatar.log_scales, np.stack([columns[f"scale_{i}"] for i in range(3)], 1))
    np.testing.assert_array_equal(avatar.opacity_logits, columns["opacity"])
    assert avatar.sh.shape == (500, 16, 3)
    for c in range(3):
        np.testing.assert_array_equal(avatar.sh[:, 0, c], columns[f"f_dc_{c}"])
        for k in range(15):  # channel-major: all of R's 15 coefficients, then G's, then B's
            np.testing.assert_array_equal(avatar.sh[:, 1 + k, c], columns[f"f_rest_{c * 15 + k}"])
    np.testing.assert_array_equal(avatar.shape, params["shape"])
    np.testing.assert_array_equal(avatar.static_offset[:N_FLAME_V], params["static_offset"][0])
    assert not avatar.static_offset[N_FLAME_V:].any()  # padded over the teeth, as GaussianAvatars does


def test_imported_positions_are_local_to_their_triangle(ga_folder, flame):
    folder, columns, params = ga_folder
    avatar = import_gaussian_avatars(folder, flame)
    centered = dataclasses.replace(avatar, local_means=np.zeros_like(avatar.local_means))
    frame = read_flame_param(folder / "flame_param.npz", avatar.rig).frame(1)
    result = deform(centered, frame, dtype=np.float64)
    triangles = result.vertices[avatar.rig.faces[avatar.binding]]
    np.testing.assert_allclose(result.gaussians.means, triangles.mean(1), atol=1e-12)


def test_flame_param_frames(ga_folder, teeth_rig):
    folder, _, params = ga_folder
    fp = read_flame_param(folder / "flame_param.npz", teeth_rig)
    assert fp.n_frames == 3
    frame = fp.frame(2)
    for key in ("expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation"):
        np.testing.assert_array_equal(getattr(frame, key), params[key][2])
    np.testing.assert_array_equal(frame.shape, params["shape"])
    with pytest.raises(AvatarError, match="timestep 3 out of range"):
        fp.frame(3)


def test_round_trip_is_bit_exact(ga_folder, flame, tmp_path):
    folder, _, _ = ga_folder
    first = import_gaussian_avatars(folder, flame)
    export_gaussian_avatars(first, tmp_path / "out")
    second = import_gaussian_avatars(tmp_path / "out", flame)
    for name in ("shape", "static_offset", "binding", "local_means", "local_quats", "log_scales", "opacity_logits",
                 "sh"):
        a, b = getattr(first, name), getattr(second, name)
        assert a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes(), name
    props = read_ply(tmp_path / "out" / "point_cloud.ply")
    assert list(props) == ga_property_names(3)
    assert all(v.dtype == np.float32 for v in props.values())
    assert not props["nx"].any()
    with np.load(tmp_path / "out" / "flame_param.npz") as npz:
        assert sorted(npz.files) == sorted(["shape", "expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose",
                                            "translation", "static_offset", "dynamic_offset"])
        assert npz["static_offset"].shape == (1, N_FLAME_V + 120, 3) and npz["expr"].shape == (1, flame.n_expr)
        assert not npz["jaw_pose"].any()


def test_export_stores_a_given_timestep(ga_folder, flame, tmp_path):
    folder, _, params = ga_folder
    avatar = import_gaussian_avatars(folder, flame)
    frame = read_flame_param(folder / "flame_param.npz", avatar.rig).frame(1)
    export_gaussian_avatars(avatar, tmp_path / "out", frame)
    again = read_flame_param(tmp_path / "out" / "flame_param.npz", avatar.rig).frame(0)
    for key in ("expr", "rotation", "neck_pose", "jaw_pose", "eyes_pose", "translation"):
        np.testing.assert_array_equal(getattr(again, key), params[key][1])


def test_teeth_bindings_need_teeth(ga_folder, flame):
    folder, _, _ = ga_folder
    with pytest.raises(AvatarError, match="binding_0 reaches face 10143, the rig has 9976 faces.*teeth=True"):
        import_gaussian_avatars(folder / "point_cloud.ply", flame, teeth=False)


@pytest.mark.parametrize("change, message", [
    (lambda c: c.pop("binding_0"), "missing property 'binding_0'"),
    (lambda c: c.pop("opacity"), "missing property 'opacity'"),
    (lambda c: [c.pop(f"f_rest_{i}") for i in range(40, 45)], "f_rest_0..f_rest_"),
    (lambda c: c.pop("f_rest_3"), "f_rest_0..f_rest_"),
    (lambda c: c["binding_0"].__setitem__(5, 2.5), "whole face indices"),
    (lambda c: c["binding_0"].__setitem__(5, -1), "binding_0 spans -1"),
    (lambda c: c["scale_0"].__setitem__(5, np.nan), "log_scales holds NaN"),
])
def test_bad_point_cloud_names_the_problem(tmp_path, flame, teeth_rig, change, message):
    columns = random_ga_columns(50, teeth_rig.n_faces, sh_degree=3)
    change(columns)
    write_ga_ply(tmp_path / "point_cloud.ply", columns)
    write_flame_param(tmp_path / "flame_param.npz", flame.n_shape, flame.n_expr, N_FLAME_V)
    with pytest.raises(AvatarError, match=message):
        import_gaussian_avatars(tmp_path, flame)


@pytest.mark.parametrize("overrides, message", [
    ({"jaw_pose": None}, "missing 'jaw_pose'"),
    ({"expr": np.zeros((3, 100), np.float32)}, "'expr' has 100 coefficients, the rig only 5"),
    ({"eyes_pose": np.zeros((2, 6), np.float32)}, r"'eyes_pose' must be \(3, 6\)"),
    ({"static_offset": np.zeros((1, 6000, 3), np.float32)}, "'static_offset' must be"),
    ({"translation": np.full((3, 3), np.nan, np.float32)}, "'translation' holds NaN"),
    ({"shape": np.zeros(6, np.int64)}, "'shape' must hold floats"),
])
def test_bad_flame_param_names_the_problem(tmp_path, flame, teeth_rig, overrides, message):
    write_ga_ply(tmp_path / "point_cloud.ply", random_ga_columns(50, teeth_rig.n_faces, sh_degree=0))
    write_flame_param(tmp_path / "flame_param.npz", flame.n_shape, flame.n_expr, N_FLAME_V, **overrides)
    with pytest.raises(AvatarError, match=message):
        import_gaussian_avatars(tmp_path, flame)


def test_missing_flame_param_is_an_error(tmp_path, flame, teeth_rig):
    write_ga_ply(tmp_path / "point_cloud.ply", random_ga_columns(50, teeth_rig.n_faces, sh_degree=1))
    with pytest.raises(AvatarError, match="not a readable flame_param.npz"):
        import_gaussian_avatars(tmp_path, flame)
    write_flame_param(tmp_path / "flame_param.npz", flame.n_shape, flame.n_expr, N_FLAME_V)
    data = (tmp_path / "flame_param.npz").read_bytes()
    (tmp_path / "flame_param.npz").write_bytes(data[: len(data) // 2])
    with pytest.raises(AvatarError, match="not a readable flame_param.npz"):
        import_gaussian_avatars(tmp_path, flame)
