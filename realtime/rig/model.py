"""The head rig: a FLAME-structured linear head model, and its parameters.

A rig is data only; its forward pass lives in :mod:`realtime.rig.lbs`.
Layouts follow FLAME's own (and the smplx code that reads it), so a reader
who knows FLAME knows these arrays.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

import numpy as np

JOINT_NAMES = ("root", "neck", "jaw", "left_eye", "right_eye")
FLAME_PARENTS = np.array([-1, 0, 1, 1, 1], dtype=np.int32)


class RigError(ValueError):
    """A rig or a rig parameter set that does not hold together."""


ARRAY_NAMES = ("v_template", "shape_dirs", "expr_dirs", "pose_dirs", "j_regressor", "weights", "parents", "faces",
               "lmk_ids", "lmk_faces", "lmk_bary")  # the Rig fields that are arrays, in field order


@dataclass(frozen=True, eq=False)
class Rig:
    """A linear blend-skinned head model with FLAME's structure.

    v_template:  (V, 3)      neutral vertices, metres, rig space (y up, z to the camera)
    shape_dirs:  (V, 3, S)   identity blend shapes
    expr_dirs:   (V, 3, E)   expression blend shapes
    pose_dirs:   (V, 3, P)   pose correctives, P = 9 * (J - 1) or 0 when the rig has none
    j_regressor: (J, V)      joints from the shaped vertices
    weights:     (V, J)      skinning weights, rows sum to 1
    parents:     (J,)        kinematic parent of each joint, -1 for the root
    faces:       (F, 3)      triangles, counter-clockwise seen from outside
    lmk_ids:     (L,)        MediaPipe landmark ids the embedding covers
    lmk_faces:   (L,)        face index of each embedded landmark
    lmk_bary:    (L, 3)      barycentric weights of each embedded landmark
    expr_names:  E names, one per expression blend shape
    name:        what the rig is ("builtin-mediapipe", "flame2023", ...)

    Arrays are kept C-contiguous (copied once here when they are not), so that the per-frame reshapes of the
    blend shapes are views: a transposed (V, 3, K) array cost a copy of it every frame.
    """

    v_template: np.ndarray
    shape_dirs: np.ndarray
    expr_dirs: np.ndarray
    pose_dirs: np.ndarray
    j_regressor: np.ndarray
    weights: np.ndarray
    parents: np.ndarray
    faces: np.ndarray
    lmk_ids: np.ndarray
    lmk_faces: np.ndarray
    lmk_bary: np.ndarray
    expr_names: tuple[str, ...]
    name: str = "rig"

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and not value.flags.c_contiguous:
                object.__setattr__(self, f.name, np.ascontiguousarray(value))
        validate_rig(self)

    @property
    def n_vertices(self) -> int:
        return self.v_template.shape[0]

    @property
    def n_faces(self) -> int:
        return self.faces.shape[0]

    @property
    def n_shape(self) -> int:
        return self.shape_dirs.shape[2]

    @property
    def n_expr(self) -> int:
        return self.expr_dirs.shape[2]

    @property
    def n_joints(self) -> int:
        return self.parents.shape[0]

    def astype(self, dtype) -> "Rig":
        """The same rig with its floating arrays in `dtype` (float32 for the hot path)."""
        values = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, np.ndarray) and value.dtype.kind == "f":
                value = value.astype(dtype)
            values[f.name] = value
        return Rig(**values)


def validate_rig(rig: Rig) -> None:
    """Check shapes, index ranges and finiteness; raise RigError naming the first problem."""
    v = rig.v_template
    if v.ndim != 2 or v.shape[1] != 3 or v.shape[0] < 3:
        raise RigError(f"v_template must be (V, 3) with V >= 3, got {v.shape}")
    n_v = v.shape[0]
    for name in ("shape_dirs", "expr_dirs", "pose_dirs"):
        a = getattr(rig, name)
        if a.ndim != 3 or a.shape[:2] != (n_v, 3):
            raise RigError(f"{name} must be ({n_v}, 3, K), got {a.shape}")
    n_j = rig.parents.shape[0]
    if rig.parents.ndim != 1 or n_j < 1 or rig.parents[0] != -1:
        raise RigError(f"parents must be (J,) with parents[0] == -1, got {rig.parents!r}")
    if np.any(rig.parents[1:] < 0) or np.any(rig.parents[1:] >= np.arange(1, n_j)):
        raise RigError("parents must list every joint after its parent")
    if rig.pose_dirs.shape[2] not in (0, 9 * (n_j - 1)):
        raise RigError(f"pose_dirs must have 0 or {9 * (n_j - 1)} correctives, got {rig.pose_dirs.shape[2]}")
    if rig.j_regressor.shape != (n_j, n_v):
        raise RigError(f"j_regressor must be ({n_j}, {n_v}), got {rig.j_regressor.shape}")
    if rig.weights.shape != (n_v, n_j):
        raise RigError(f"weights must be ({n_v}, {n_j}), got {rig.weights.shape}")
    if rig.faces.ndim != 2 or rig.faces.shape[1] != 3 or rig.faces.shape[0] < 1:
        raise RigError(f"faces must be (F, 3), got {rig.faces.shape}")
    if rig.faces.min() < 0 or rig.faces.max() >= n_v:
        raise RigError(f"faces index vertices outside 0..{n_v - 1}")
    n_l = rig.lmk_ids.shape[0]
    if rig.lmk_faces.shape != (n_l,) or rig.lmk_bary.shape != (n_l, 3):
        raise RigError(f"landmark embedding must be lmk_faces ({n_l},) and lmk_bary ({n_l}, 3)")
    if n_l and (rig.lmk_faces.min() < 0 or rig.lmk_faces.max() >= rig.faces.shape[0]):
        raise RigError("lmk_faces index faces outside the mesh")
    if len(rig.expr_names) != rig.expr_dirs.shape[2]:
        raise RigError(f"expr_names has {len(rig.expr_names)} names for {rig.expr_dirs.shape[2]} expressions")
    for name in ("v_template", "shape_dirs", "expr_dirs", "pose_dirs", "j_regressor", "weights", "lmk_bary"):
        if not np.all(np.isfinite(getattr(rig, name))):
            raise RigError(f"{name} holds NaN or infinite values")


@dataclass(eq=False)
class RigParams:
    """One frame's rig parameters, named as GaussianAvatars' flame_param.npz.

    shape:       (S,)  identity coefficients (held for a person)
    expr:        (E,)  expression coefficients
    rotation:    (3,)  root (global head) rotation, axis-angle
    neck_pose:   (3,)  neck joint, axis-angle
    jaw_pose:    (3,)  jaw joint, axis-angle
    eyes_pose:   (6,)  left eye then right eye, axis-angle
    translation: (3,)  metres, added after skinning
    """

    shape: np.ndarray
    expr: np.ndarray
    rotation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    neck_pose: np.ndarray = field(default_factory=lambda: np.zeros(3))
    jaw_pose: np.ndarray = field(default_factory=lambda: np.zeros(3))
    eyes_pose: np.ndarray = field(default_factory=lambda: np.zeros(6))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))

    @classmethod
    def neutral(cls, rig: Rig, dtype=np.float32) -> "RigParams":
        """Rest pose: every coefficient and angle zero."""
        return cls(shape=np.zeros(rig.n_shape, dtype), expr=np.zeros(rig.n_expr, dtype),
                   rotation=np.zeros(3, dtype), neck_pose=np.zeros(3, dtype), jaw_pose=np.zeros(3, dtype),
                   eyes_pose=np.zeros(6, dtype), translation=np.zeros(3, dtype))

    def full_pose(self) -> np.ndarray:
        """(5, 3) axis-angle per joint in FLAME's order: root, neck, jaw, left eye, right eye."""
        return np.concatenate([self.rotation, self.neck_pose, self.jaw_pose, self.eyes_pose]).reshape(5, 3)

    def check(self, rig: Rig) -> None:
        """Raise RigError unless the sizes fit `rig` and every value is finite."""
        sizes = {"shape": rig.n_shape, "expr": rig.n_expr, "rotation": 3, "neck_pose": 3, "jaw_pose": 3,
                 "eyes_pose": 6, "translation": 3}
        for name, size in sizes.items():
            value = np.asarray(getattr(self, name))
            if value.shape != (size,):
                raise RigError(f"parameter {name} must have shape ({size},), got {value.shape}")
            if not np.all(np.isfinite(value)):
                raise RigError(f"parameter {name} holds NaN or infinite values")
        if rig.n_joints != 5:
            raise RigError(f"RigParams drives FLAME's 5 joints; this rig has {rig.n_joints}")
