"""The FLAME loader on synthetic pickles in FLAME's format (chumpy objects, sparse J_regressor).

The real model is never used."""

import os
import pickle

import numpy as np
import pytest

from flame_files import FakeCh, dumps_py2_style, flame_arrays, write_flame_pickle
from realtime.geometry import axis_angle_to_matrix
from realtime.rig.flame import FlameFormatError, load_flame, load_landmark_embedding
from realtime.rig.lbs import forward, landmarks
from realtime.rig.model import RigParams


@pytest.fixture(scope="module")
def arrays():
    return flame_arrays()


@pytest.mark.parametrize("protocol", [0, 2])
@pytest.mark.parametrize("sparse", ["modern", "legacy", "dense"])
def test_loads_flame_pickle_without_chumpy(tmp_path, arrays, protocol, sparse):
    path = write_flame_pickle(tmp_path / "generic_model.pkl", arrays, protocol=protocol,
                              chumpy=("shapedirs", "v_template", "posedirs"), sparse=sparse)
    rig = load_flame(path, n_shape=300, n_expr=100)
    assert rig.n_vertices == arrays["v_template"].shape[0] and rig.n_faces == arrays["f"].shape[0]
    assert (rig.n_shape, rig.n_expr, rig.n_joints) == (300, 100, 5)
    np.testing.assert_array_equal(rig.v_template, arrays["v_template"])
    np.testing.assert_array_equal(rig.shape_dirs, arrays["shapedirs"][:, :, :300])
    np.testing.assert_array_equal(rig.expr_dirs, arrays["shapedirs"][:, :, 300:])
    np.testing.assert_array_equal(rig.pose_dirs, arrays["posedirs"])
    np.testing.assert_array_equal(rig.j_regressor, arrays["J_regressor"])
    np.testing.assert_array_equal(rig.weights, arrays["weights"])
    np.testing.assert_array_equal(rig.faces, arrays["f"])
    np.testing.assert_array_equal(rig.parents, [-1, 0, 1, 1, 1])
    assert rig.faces.dtype == np.int32 and rig.v_template.dtype == np.float64
    assert rig.lmk_ids.shape == (0,) and rig.name == "flame:generic_model"
    assert "chumpy" not in __import__("sys").modules


def test_component_counts_select_flame_columns(tmp_path, arrays):
    path = write_flame_pickle(tmp_path / "flame2023.pkl", arrays)
    rig = load_flame(path, n_shape=20, n_expr=7)
    np.testing.assert_array_equal(rig.shape_dirs, arrays["shapedirs"][:, :, :20])
    np.testing.assert_array_equal(rig.expr_dirs, arrays["shapedirs"][:, :, 300:307])
    assert len(rig.expr_names) == 7
    with pytest.raises(FlameFormatError, match="n_expr must be in 1..100"):
        load_flame(path, n_expr=101)
    with pytest.raises(FlameFormatError, match="n_shape must be in 1..300"):
        load_flame(path, n_shape=301)


def test_loaded_rig_runs_through_lbs(tmp_path, arrays):
    rig = load_flame(write_flame_pickle(tmp_path / "m.pkl", arrays), n_shape=10, n_expr=5)
    rng = np.random.default_rng(1)
    shape, expr = rng.normal(size=10), rng.normal(size=5)
    coeffs = np.zeros(400)
    coeffs[:10], coeffs[300:305] = shape, expr
    shaped = arrays["v_template"] + np.einsum("vck,k->vc", arrays["shapedirs"], coeffs)

    rest = forward(rig, RigParams(shape=shape, expr=expr))
    np.testing.assert_allclose(rest.vertices, shaped, atol=1e-12)

    # A root rotation has no pose correctives: every vertex turns rigidly about the root joint.
    rotation, translation = np.array([0.1, -0.3, 0.2]), np.array([0.01, 0.02, -0.03])
    posed = forward(rig, RigParams(shape=shape, expr=expr, rotation=rotation, translation=translation))
    root = arrays["J_regressor"][0] @ shaped
    expected = (shaped - root) @ axis_angle_to_matrix(rotation).T + root + translation
    np.testing.assert_allclose(posed.vertices, expected, atol=1e-12)


def test_landmark_embedding_fills_the_rig(tmp_path, arrays):
    n_faces = arrays["f"].shape[0]
    rng = np.random.default_rng(2)
    ids = np.array([1, 33, 61, 263, 291, 468])
    faces = rng.integers(0, n_faces, size=6).astype(np.int32)
    bary = rng.dirichlet(np.ones(3), size=6)
    np.savez(tmp_path / "mediapipe_landmark_embedding.npz", lmk_face_idx=faces, lmk_b_coords=bary,
             landmark_indices=ids)
    rig = load_flame(write_flame_pickle(tmp_path / "m.pkl", arrays), tmp_path / "mediapipe_landmark_embedding.npz")
    np.testing.assert_array_equal(rig.lmk_ids, ids)
    np.testing.assert_array_equal(rig.lmk_faces, faces)
    points = landmarks(rig, rig.v_template)
    v = arrays["v_template"][arrays["f"][faces].astype(int)]
    np.testing.assert_allclose(points, (bary[:, :, None] * v).sum(1), atol=1e-15)


@pytest.mark.parametrize("content, message", [
    ({"lmk_face_idx": np.array([0, 1]), "lmk_b_coords": np.full((2, 3), 1 / 3)}, "missing 'landmark_indices'"),
    ({"lmk_face_idx": np.array([0, 10**6]), "lmk_b_coords": np.full((2, 3), 1 / 3),
      "landmark_indices": np.array([1, 2])}, "lmk_face_idx spans"),
    ({"lmk_face_idx": np.array([0, 1]), "lmk_b_coords": np.full((3, 3), 1 / 3),
      "landmark_indices": np.array([1, 2])}, r"lmk_b_coords \(L, 3\)"),
    ({"lmk_face_idx": np.array([0, 1]), "lmk_b_coords": np.full((2, 3), 1 / 3),
      "landmark_indices": np.array([1, 478])}, "MediaPipe ids"),
])
def test_bad_landmark_embedding_is_refused(tmp_path, content, message):
    np.savez(tmp_path / "emb.npz", **content)
    with pytest.raises(FlameFormatError, match=message):
        load_landmark_embedding(tmp_path / "emb.npz", n_faces=100)


def test_unreadable_landmark_embedding_is_refused(tmp_path):
    (tmp_path / "truncated.npz").write_bytes(b"PK\x03\x04" + bytes(40))
    with pytest.raises(FlameFormatError, match="not a landmark embedding"):
        load_landmark_embedding(tmp_path / "truncated.npz", n_faces=100)


@pytest.mark.parametrize("change, message", [
    (lambda a: a.pop("weights"), "missing key 'weights'"),
    (lambda a: a.update(shapedirs=a["shapedirs"][:, :, :300]), r"'shapedirs' must be \(42, 3, 300 \+ expressions\)"),
    (lambda a: a.update(posedirs=a["posedirs"][:, :, :27]), r"'posedirs' must be \(42, 3, 36\)"),
    (lambda a: a.update(J_regressor=a["J_regressor"][:4]), r"'J_regressor' must be \(5, 42\)"),
    (lambda a: a.update(v_template=a["v_template"][:-1]), r"'shapedirs' must be \(41, 3"),
    (lambda a: a.update(kintree_table=np.zeros((2, 5), np.int64)), "'kintree_table' must be"),
    (lambda a: a.update(f=a["f"].astype(np.float64)), "'f' must be"),
    (lambda a: a.update(weights=np.full_like(a["weights"], np.nan)), "weights holds NaN"),
])
def test_model_with_wrong_content_names_the_problem(tmp_path, arrays, change, message):
    broken = dict(arrays)
    change(broken)
    with pytest.raises(FlameFormatError, match=message):
        load_flame(write_flame_pickle(tmp_path / "m.pkl", broken))


def test_chumpy_object_without_value_is_refused(tmp_path, arrays):
    ch = FakeCh(arrays["shapedirs"])
    del ch.x
    path = tmp_path / "m.pkl"
    path.write_bytes(dumps_py2_style({**arrays, "shapedirs": ch}))
    with pytest.raises(FlameFormatError, match="shapedirs: chumpy object chumpy.ch.Ch stores no plain value"):
        load_flame(path)


def test_not_a_pickle_or_not_a_dict(tmp_path, arrays):
    garbage = tmp_path / "garbage.pkl"
    garbage.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)))
    with pytest.raises(FlameFormatError, match="not a readable FLAME model pickle"):
        load_flame(garbage)
    full = write_flame_pickle(tmp_path / "m.pkl", arrays).read_bytes()
    truncated = tmp_path / "truncated.pkl"
    truncated.write_bytes(full[: len(full) // 2])
    with pytest.raises(FlameFormatError, match="not a readable FLAME model pickle"):
        load_flame(truncated)
    listed = tmp_path / "list.pkl"
    listed.write_bytes(pickle.dumps([1, 2, 3], protocol=2))
    with pytest.raises(FlameFormatError, match="holds a dict, this one holds list"):
        load_flame(listed)
    with pytest.raises(FlameFormatError, match="cannot read"):
        load_flame(tmp_path / "absent.pkl")


class _RunsCommand:
    def __init__(self, command):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


class _CallsEval:
    def __reduce__(self):
        return eval, ("__import__('pathlib').Path('MARKER').touch()",)


@pytest.mark.parametrize("payload", ["system", "eval"])
def test_pickle_with_other_globals_is_refused_before_running(tmp_path, arrays, payload, monkeypatch):
    monkeypatch.chdir(tmp_path)
    marker = tmp_path / "MARKER"
    evil = _RunsCommand(f"touch {marker}") if payload == "system" else _CallsEval()
    path = tmp_path / "evil.pkl"
    path.write_bytes(dumps_py2_style({**arrays, "J": FakeCh(evil)}))
    with pytest.raises(FlameFormatError, match="refusing global"):
        load_flame(path)
    assert not marker.exists()
