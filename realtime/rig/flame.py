"""Load the real FLAME head model (2020 / 2023 pickles) into a :class:`Rig`, without chumpy.

The user downloads FLAME after accepting its license and gives us the path;
nothing of it is committed or fetched. The pickles are Python 2 pickles
(``encoding="latin1"``) of a dict with these keys (V = 5023, F = 9976 for FLAME):

    v_template    (V, 3)        neutral head, metres
    shapedirs     (V, 3, 400)   300 identity components, then 100 expression components
    posedirs      (V, 3, 36)    pose correctives from (R - I) of joints 1..4, FLAME's order
    J_regressor   (5, V)        scipy sparse (csc) matrix
    weights       (V, 5)        skinning weights
    kintree_table (2, 5)        row 0: parents (the root's entry is a placeholder), row 1: joint ids
    f             (F, 3)        triangles

Some arrays are ``chumpy.ch.Ch`` objects. chumpy pickles a ``Ch`` through its
``__getstate__``: the instance ``__dict__`` without its weak caches, the value
itself under the key ``'x'`` (chumpy's ``ch.py``). A pickle is code, so the
unpickler here resolves only the globals such a file needs (numpy's array
reconstruction, the copy-registry object constructor, ``set``), maps every
chumpy and scipy.sparse class to an inert stand-in that keeps only the pickled
state (nothing of chumpy or scipy runs while loading), and refuses every other
global. The arrays are then rebuilt from that state.

The identity/expression split of ``shapedirs`` at column 300 and the
optional MediaPipe landmark embedding (``.npz`` with ``lmk_face_idx`` (L,),
``lmk_b_coords`` (L, 3), ``landmark_indices`` (L,), as published with the
MICA / metrical-tracker FLAME trackers) follow how those projects and
GaussianAvatars read the files.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np
import scipy.sparse

from realtime.face.landmark_ids import N_LANDMARKS as MEDIAPIPE_N_LANDMARKS
from realtime.npzfile import read_npz
from realtime.rig.model import Rig, RigError

FLAME_SHAPE_SPACE = 300  # shapedirs[..., :300] are identity, shapedirs[..., 300:] expression
FLAME_N_JOINTS = 5

_SPARSE_NAMES = {"csc_matrix": "csc", "csr_matrix": "csr", "csc_array": "csc", "csr_array": "csr"}


class FlameFormatError(RigError):
    """A file that is not a FLAME model (or landmark embedding) we can read."""


class _Pickled:
    """Inert stand-in for a chumpy or scipy.sparse object: keeps the pickled state, runs nothing."""

    origin = ""
    state = None

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        self.state = state


class _ChumpyObject(_Pickled):
    pass


class _SparseMatrix(_Pickled):
    pass


def _stand_in(base: type, module: str, name: str) -> type:
    return type(name, (base,), {"origin": f"{module}.{name}"})


def _reconstructor(cls, base, state):
    """The protocol-0/1 object constructor (copy_reg._reconstructor), limited to our stand-ins."""
    if not (isinstance(cls, type) and issubclass(cls, _Pickled)) or base is not object or state is not None:
        raise pickle.UnpicklingError("object reconstruction is allowed only for chumpy/scipy stand-ins")
    return cls.__new__(cls)


def _latin1_encode(text, encoding="latin1"):
    """How Python 3 pickles bytes at protocols < 3 (``_codecs.encode``), limited to latin-1."""
    if encoding not in ("latin1", "latin-1") or not isinstance(text, str):
        raise pickle.UnpicklingError(f"unexpected _codecs.encode({type(text).__name__}, {encoding!r})")
    return codecs.encode(text, "latin1")


def _numpy_global(name: str):
    try:
        from numpy._core import multiarray  # numpy >= 2
    except ImportError:
        from numpy.core import multiarray
    return {"_reconstruct": multiarray._reconstruct, "scalar": multiarray.scalar}[name]


_ALLOWED = {
    ("numpy", "ndarray"): lambda: np.ndarray,
    ("numpy", "dtype"): lambda: np.dtype,
    ("numpy.core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"): lambda: _numpy_global("_reconstruct"),
    ("numpy.core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("numpy._core.multiarray", "scalar"): lambda: _numpy_global("scalar"),
    ("copy_reg", "_reconstructor"): lambda: _reconstructor,
    ("copyreg", "_reconstructor"): lambda: _reconstructor,
    ("__builtin__", "object"): lambda: object,
    ("builtins", "object"): lambda: object,
    ("__builtin__", "set"): lambda: set,
    ("builtins", "set"): lambda: set,
    ("__builtin__", "frozenset"): lambda: frozenset,
    ("builtins", "frozenset"): lambda: frozenset,
    ("_codecs", "encode"): lambda: _latin1_encode,
}


class _FlameUnpickler(pickle.Unpickler):
    """Resolves only the globals a FLAME pickle needs; anything else is refused before it can run."""

    def find_class(self, module: str, name: str):
        if module == "chumpy" or module.startswith("chumpy."):
            return _stand_in(_ChumpyObject, module, name)
        if module.startswith("scipy.sparse") and name in _SPARSE_NAMES:
            return _stand_in(_SparseMatrix, module, name)
        if (module, name) in _ALLOWED:
            return _ALLOWED[(module, name)]()
        raise pickle.UnpicklingError(
            f"refusing global {module}.{name}: a FLAME model pickle holds only numpy arrays, "
            "chumpy arrays and scipy sparse matrices")


def read_flame_pickle(path: str | Path) -> dict:
    """The dict stored in a FLAME pickle, chumpy and sparse values left as inert stand-ins.

    Raises FlameFormatError when the file is not such a pickle or needs anything else to load.
    """
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise FlameFormatError(f"{path}: cannot read the FLAME model: {exc}") from exc
    try:
        content = _FlameUnpickler(io.BytesIO(data), encoding="latin1").load()
    except Exception as exc:  # whatever a malformed pickle raises, it is not a FLAME model
        raise FlameFormatError(f"{path}: not a readable FLAME model pickle: {exc}") from exc
    if not isinstance(content, dict):
        raise FlameFormatError(f"{path}: a FLAME model pickle holds a dict, this one holds {type(content).__name__}")
    return content


def _sparse_to_dense(value: _SparseMatrix, key: str) -> np.ndarray:
    state = value.state
    if not isinstance(state, dict):
        raise FlameFormatError(f"{key}: sparse matrix {value.origin} has no readable state")
    shape = state.get("_shape", state.get("shape"))
    try:
        parts = tuple(np.asarray(state[k]) for k in ("data", "indices", "indptr"))
        kind = _SPARSE_NAMES[value.origin.rsplit(".", 1)[1]]
        matrix = getattr(scipy.sparse, f"{kind}_matrix")(parts, shape=tuple(int(s) for s in shape))
        matrix.check_format(full_check=True)
    except (KeyError, TypeError, ValueError) as exc:
        raise FlameFormatError(f"{key}: sparse matrix {value.origin} does not hold together: {exc}") from exc
    return matrix.toarray()


def _as_array(value, key: str) -> np.ndarray:
    """A numeric ndarray from a plain array, a chumpy stand-in (its 'x') or a sparse stand-in."""
    if isinstance(value, _SparseMatrix):
        return _sparse_to_dense(value, key)
    if isinstance(value, _ChumpyObject):
        state = value.state
        if not isinstance(state, dict) or "x" not in state:
            raise FlameFormatError(f"{key}: chumpy object {value.origin} stores no plain value (no 'x' in its state)")
        return _as_array(state["x"], key)
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise FlameFormatError(f"{key}: expected a numeric array, got {type(value).__name__} of dtype {array.dtype}")
    return array


def _get(content: dict, key: str, ndim: int) -> np.ndarray:
    if key not in content:
        raise FlameFormatError(f"missing key '{key}' (a FLAME model has v_template, shapedirs, posedirs, "
                               "J_regressor, weights, kintree_table, f)")
    array = _as_array(content[key], key)
    if array.ndim != ndim:
        raise FlameFormatError(f"'{key}' must have {ndim} dimensions, got shape {array.shape}")
    return array


def load_landmark_embedding(path: str | Path, n_faces: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """MediaPipe landmark embedding on FLAME: lmk_ids (L,) int64, lmk_faces (L,) int64, lmk_bary (L, 3) float64.

    path: an ``.npz`` with ``landmark_indices`` (MediaPipe ids), ``lmk_face_idx`` (FLAME faces) and
    ``lmk_b_coords`` (barycentric weights). n_faces: faces of the mesh the embedding refers to.
    """
    path = Path(path)
    arrays = read_npz(path, ("landmark_indices", "lmk_face_idx", "lmk_b_coords"), FlameFormatError,
                      "not a landmark embedding .npz")
    ids, faces, bary = arrays["landmark_indices"], arrays["lmk_face_idx"], arrays["lmk_b_coords"]
    n = ids.shape[0] if ids.ndim == 1 else -1
    if n < 1 or faces.shape != (n,) or bary.shape != (n, 3):
        raise FlameFormatError(f"{path}: expected landmark_indices (L,), lmk_face_idx (L,), lmk_b_coords (L, 3); "
                               f"got {ids.shape}, {faces.shape}, {bary.shape}")
    for key, values in (("landmark_indices", ids), ("lmk_face_idx", faces)):
        if values.dtype.kind not in "iuf" or not np.all(np.isfinite(values)) or np.any(values != np.round(values)):
            raise FlameFormatError(f"{path}: '{key}' must hold integers")
    ids, faces = ids.astype(np.int64), faces.astype(np.int64)
    if ids.min() < 0 or ids.max() >= MEDIAPIPE_N_LANDMARKS or len(np.unique(ids)) != n:
        raise FlameFormatError(f"{path}: landmark_indices must be distinct MediaPipe ids in "
                               f"0..{MEDIAPIPE_N_LANDMARKS - 1}")
    if faces.min() < 0 or faces.max() >= n_faces:
        raise FlameFormatError(f"{path}: lmk_face_idx spans {faces.min()}..{faces.max()}, "
                               f"the model has {n_faces} faces")
    if bary.dtype.kind != "f" or not np.all(np.isfinite(bary)):
        raise FlameFormatError(f"{path}: lmk_b_coords must be finite floats")
    return ids, faces, bary.astype(np.float64)


def load_flame(path: str | Path, landmark_embedding: str | Path | None = None, *, n_shape: int = 300,
               n_expr: int = 100) -> Rig:
    """A float64 Rig from a FLAME model pickle (FLAME 2020 ``generic_model.pkl``, FLAME 2023 ``flame2023.pkl``).

    n_shape: identity components kept (1..300); n_expr: expression components kept (1..100 for FLAME).
    landmark_embedding: optional MediaPipe embedding ``.npz``; without it the rig's embedding is empty.
    Call ``rig.astype(np.float32)`` for the hot path.
    """
    path = Path(path)
    content = read_flame_pickle(path)
    try:
        v_template = _get(content, "v_template", 2).astype(np.float64)
        n_v = v_template.shape[0]
        if v_template.shape[1] != 3:
            raise FlameFormatError(f"'v_template' must be (V, 3), got {v_template.shape}")
        shapedirs = _get(content, "shapedirs", 3).astype(np.float64)
        if shapedirs.shape[:2] != (n_v, 3) or shapedirs.shape[2] <= FLAME_SHAPE_SPACE:
            raise FlameFormatError(f"'shapedirs' must be ({n_v}, 3, {FLAME_SHAPE_SPACE} + expressions), "
                                   f"got {shapedirs.shape}")
        n_expr_available = shapedirs.shape[2] - FLAME_SHAPE_SPACE
        if not 1 <= n_shape <= FLAME_SHAPE_SPACE:
            raise FlameFormatError(f"n_shape must be in 1..{FLAME_SHAPE_SPACE}, got {n_shape}")
        if not 1 <= n_expr <= n_expr_available:
            raise FlameFormatError(f"n_expr must be in 1..{n_expr_available} for this model, got {n_expr}")
        posedirs = _get(content, "posedirs", 3).astype(np.float64)
        n_pose = 9 * (FLAME_N_JOINTS - 1)
        if posedirs.shape != (n_v, 3, n_pose):
            raise FlameFormatError(f"'posedirs' must be ({n_v}, 3, {n_pose}), got {posedirs.shape}")
        j_regressor = _get(content, "J_regressor", 2).astype(np.float64)
        if j_regressor.shape != (FLAME_N_JOINTS, n_v):
            raise FlameFormatError(f"'J_regressor' must be ({FLAME_N_JOINTS}, {n_v}), got {j_regressor.shape}")
        weights = _get(content, "weights", 2).astype(np.float64)
        if weights.shape != (n_v, FLAME_N_JOINTS):
            raise FlameFormatError(f"'weights' must be ({n_v}, {FLAME_N_JOINTS}), got {weights.shape}")
        kintree = _get(content, "kintree_table", 2)
        if kintree.shape != (2, FLAME_N_JOINTS) or np.any(kintree[1] != np.arange(FLAME_N_JOINTS)):
            raise FlameFormatError(f"'kintree_table' must be (2, {FLAME_N_JOINTS}) with joint ids 0..4 in row 1, "
                                   f"got {kintree.tolist()}")
        parents = kintree[0].astype(np.int64)
        parents[0] = -1  # FLAME stores a placeholder (2**32 - 1) for the root
        faces = _get(content, "f", 2)
        if faces.shape[1] != 3 or faces.dtype.kind not in "iu":
            raise FlameFormatError(f"'f' must be (F, 3) integers, got {faces.shape} {faces.dtype}")
        faces = faces.astype(np.int32)
        if landmark_embedding is None:
            lmk_ids, lmk_faces, lmk_bary = np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros((0, 3))
        else:
            lmk_ids, lmk_faces, lmk_bary = load_landmark_embedding(landmark_embedding, faces.shape[0])
        return Rig(v_template=v_template, shape_dirs=np.ascontiguousarray(shapedirs[:, :, :n_shape]),
                   expr_dirs=np.ascontiguousarray(shapedirs[:, :, FLAME_SHAPE_SPACE:FLAME_SHAPE_SPACE + n_expr]),
                   pose_dirs=posedirs, j_regressor=j_regressor, weights=weights, parents=parents.astype(np.int32),
                   faces=faces, lmk_ids=lmk_ids, lmk_faces=lmk_faces, lmk_bary=lmk_bary,
                   expr_names=tuple(f"flame_expr_{i:03d}" for i in range(n_expr)), name=f"flame:{path.stem}")
    except FlameFormatError as exc:
        raise FlameFormatError(f"{path}: {exc}") from exc
    except RigError as exc:
        raise FlameFormatError(f"{path}: the FLAME model does not hold together: {exc}") from exc
