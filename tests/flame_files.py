"""Synthetic stand-ins for the files of FLAME and GaussianAvatars, written in their formats (never the real data).

* FLAME model pickles: a dict of arrays where some values are chumpy ``Ch`` objects pickled
  under the global ``chumpy.ch.Ch`` with their state (a dict holding the value under 'x',
  as chumpy's ``__getstate__`` does) and J_regressor is a scipy sparse matrix, pickled either
  as today's scipy does (``scipy.sparse._csc.csc_matrix``) or under Python 2 era names
  (``scipy.sparse.csc.csc_matrix``). chumpy itself is never needed.
* A FLAME-sized rig (5023 vertices, 9976 faces) for the teeth construction, which refers to
  specific FLAME vertex ids.
* GaussianAvatars exports (point_cloud.ply + flame_param.npz), written with NumPy directly,
  independently of realtime.avatar.ply.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from realtime.rig.model import FLAME_PARENTS, Rig
from realtime.rig.synthetic import synthetic_rig


class FakeCh:
    """Pickles like chumpy.ch.Ch: its __dict__ (value under 'x', plus chumpy's bookkeeping) is the state."""

    def __init__(self, x: np.ndarray) -> None:
        self.x = x
        self._dirty_vars = set()
        self._itr = None
        self._depends_on_deps = {}
        self._make_dense = False
        self._make_sparse = False


class LegacyCsc:
    """Pickles like a scipy csc_matrix of the Python 2 era (state: _shape, data, indices, indptr, format, maxprint)."""

    def __init__(self, dense: np.ndarray) -> None:
        m = scipy.sparse.csc_matrix(dense)
        self._shape, self.data, self.indices, self.indptr = m.shape, m.data, m.indices, m.indptr
        self.format, self.maxprint = "csc", 50


class _Py2NamesPickler(pickle._Pickler):
    """Writes the fake classes under the global names the real files use."""

    names = {FakeCh: ("chumpy.ch", "Ch"), LegacyCsc: ("scipy.sparse.csc", "csc_matrix")}

    def save_global(self, obj, name=None):
        if obj in self.names:
            module, qualname = self.names[obj]
            self.write(pickle.GLOBAL + f"{module}\n{qualname}\n".encode("ascii"))
            self.memoize(obj)
            return
        super().save_global(obj, name)


def dumps_py2_style(obj, protocol: int = 2) -> bytes:
    buffer = io.BytesIO()
    _Py2NamesPickler(buffer, protocol=protocol).dump(obj)
    return buffer.getvalue()


def flame_arrays(n_rings: int = 6, n_segments: int = 8, n_expr: int = 100, seed: int = 0) -> dict[str, np.ndarray]:
    """Raw FLAME-layout arrays of a small random model (shapedirs holds 300 identity + n_expr expression columns)."""
    rng = np.random.default_rng(seed)
    rig = synthetic_rig(n_rings, n_segments, n_shape=4, n_expr=4, n_landmarks=5, seed=seed)
    n_v = rig.n_vertices
    j_regressor = rig.j_regressor.copy()
    return {
        "v_template": rig.v_template,
        "shapedirs": rng.normal(scale=1e-3, size=(n_v, 3, 300 + n_expr)),
        "posedirs": rng.normal(scale=1e-4, size=(n_v, 3, 36)),
        "J_regressor": j_regressor,
        "weights": rig.weights,
        "kintree_table": np.array([[2**32 - 1, 0, 1, 1, 1], [0, 1, 2, 3, 4]], dtype=np.int64),
        "f": rig.faces.astype(np.uint32),
    }


def write_flame_pickle(path: Path, arrays: dict, protocol: int = 2, chumpy: tuple[str, ...] = ("shapedirs",),
                       sparse: str = "modern", extra: dict | None = None) -> Path:
    """A FLAME-format pickle: keys in `chumpy` wrapped as chumpy Ch objects, J_regressor sparse
    ('modern' scipy, 'legacy' Python 2 era names, or 'dense' to leave it an array)."""
    content = {k: FakeCh(v) if k in chumpy else v for k, v in arrays.items()}
    if "J_regressor" in arrays and sparse != "dense":
        dense = arrays["J_regressor"]
        content["J_regressor"] = scipy.sparse.csc_matrix(dense) if sparse == "modern" else LegacyCsc(dense)
    content.update({"bs_style": "lbs", "bs_type": "lrotmin"}, **(extra or {}))
    path.write_bytes(dumps_py2_style(content, protocol))
    return path


def flame_sized_rig(n_shape: int = 6, n_expr: int = 5, seed: int = 0) -> Rig:
    """A random rig with FLAME's counts: a UV sphere of 4990 vertices and 9976 faces plus 33 loose vertices."""
    base = synthetic_rig(87, 58, n_shape=n_shape, n_expr=n_expr, seed=seed)
    assert base.n_faces == 9976 and base.n_vertices == 4990
    extra = 33
    rng = np.random.default_rng(seed)

    def grow(a: np.ndarray, scale: float = 0.0) -> np.ndarray:
        rows = a[:extra] + (rng.normal(scale=scale, size=a[:extra].shape) if scale else 0)
        return np.concatenate([a, rows])

    weights = grow(base.weights)
    return Rig(v_template=grow(base.v_template, 0.01), shape_dirs=grow(base.shape_dirs, 1e-3),
               expr_dirs=grow(base.expr_dirs, 1e-3), pose_dirs=grow(base.pose_dirs),
               j_regressor=np.concatenate([base.j_regressor, np.zeros((5, extra))], axis=1), weights=weights,
               parents=FLAME_PARENTS.copy(), faces=base.faces, lmk_ids=base.lmk_ids, lmk_faces=base.lmk_faces,
               lmk_bary=base.lmk_bary, expr_names=base.expr_names, name="flame-sized")


GA_SCALARS = ("x", "y", "z", "nx", "ny", "nz")


def ga_property_names(sh_degree: int) -> list[str]:
    """GaussianAvatars' PLY property order."""
    n_rest = 3 * ((sh_degree + 1) ** 2 - 1)
    return [*GA_SCALARS, "f_dc_0", "f_dc_1", "f_dc_2", *(f"f_rest_{i}" for i in range(n_rest)), "opacity",
            "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3", "binding_0"]


def write_ga_ply(path: Path, columns: dict[str, np.ndarray], names: list[str] | None = None) -> Path:
    """A PLY as GaussianAvatars' save_ply writes it: every property a little-endian float32, in `names` order."""
    names = names if names is not None else list(columns)
    n = len(columns[names[0]])
    table = np.empty(n, dtype=[(name, "<f4") for name in names])
    for name in names:
        table[name] = columns[name]
    header = "ply\nformat binary_little_endian 1.0\nelement vertex %d\n" % n
    header += "".join(f"property float {name}\n" for name in names) + "end_header\n"
    path.write_bytes(header.encode("ascii") + table.tobytes())
    return path


def random_ga_columns(n: int, n_faces: int, sh_degree: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random GaussianAvatars PLY columns (float32), bindings spread over 0..n_faces-1."""
    rng = np.random.default_rng(seed)
    columns = {name: rng.normal(size=n).astype(np.float32) for name in ga_property_names(sh_degree)}
    for name in ("nx", "ny", "nz"):
        columns[name] = np.zeros(n, np.float32)
    columns["binding_0"] = rng.integers(0, n_faces, size=n).astype(np.float32)
    columns["binding_0"][:2] = [n_faces - 1, 0]
    return columns


def write_flame_param(path: Path, n_shape: int, n_expr: int, n_vertices: int, n_frames: int = 3,
                      seed: int = 0, **overrides) -> dict[str, np.ndarray]:
    """A flame_param.npz as GaussianAvatars saves it (float32; static_offset (1, V, 3))."""
    rng = np.random.default_rng(seed)
    arrays = {
        "shape": rng.normal(size=n_shape), "expr": rng.normal(size=(n_frames, n_expr)),
        "rotation": rng.normal(scale=0.1, size=(n_frames, 3)), "neck_pose": rng.normal(scale=0.1, size=(n_frames, 3)),
        "jaw_pose": rng.normal(scale=0.1, size=(n_frames, 3)), "eyes_pose": rng.normal(scale=0.1, size=(n_frames, 6)),
        "translation": rng.normal(scale=0.01, size=(n_frames, 3)),
        "static_offset": rng.normal(scale=1e-3, size=(1, n_vertices, 3)),
        "dynamic_offset": np.zeros((n_frames, n_vertices, 3)),
    }
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    arrays.update(overrides)
    arrays = {k: v for k, v in arrays.items() if v is not None}
    np.savez(path, **arrays)
    return arrays
