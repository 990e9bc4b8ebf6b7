"""The rig's forward pass in NumPy, one step per function (the smplx `lbs` order).

    v = LBS(T + S·β + E·ψ + P(θ), J(β), W, θ) + translation

Every function keeps the dtype of its inputs, so the same code is the float32
hot path and the float64 ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.geometry import axis_angle_to_matrix
from realtime.rig.model import Rig, RigParams


def blend_shapes(coeffs: np.ndarray, dirs: np.ndarray) -> np.ndarray:
    """Linear blend shapes.

    coeffs: (K,), dirs: (V, 3, K). Returns (V, 3) offsets.
    """
    if dirs.shape[2] == 0:
        return np.zeros(dirs.shape[:2], dtype=dirs.dtype)
    return (dirs.reshape(-1, dirs.shape[2]) @ coeffs.astype(dirs.dtype, copy=False)).reshape(dirs.shape[:2])


def regress_joints(j_regressor: np.ndarray, vertices: np.ndarray) -> np.ndarray:
    """Joint locations. j_regressor: (J, V), vertices: (V, 3). Returns (J, 3)."""
    return j_regressor @ vertices


def pose_correctives(rot_mats: np.ndarray, pose_dirs: np.ndarray) -> np.ndarray:
    """Pose-dependent offsets from every non-root joint's (R - I).

    rot_mats: (J, 3, 3), pose_dirs: (V, 3, 9 * (J - 1)) or (V, 3, 0). Returns (V, 3).
    """
    if pose_dirs.shape[2] == 0:
        return np.zeros(pose_dirs.shape[:2], dtype=pose_dirs.dtype)
    feature = (rot_mats[1:] - np.eye(3, dtype=rot_mats.dtype)).reshape(-1)
    return blend_shapes(feature, pose_dirs)


def rigid_transforms(rot_mats: np.ndarray, joints: np.ndarray, parents: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chain local joint rotations down the kinematic tree.

    rot_mats: (J, 3, 3) local rotations, joints: (J, 3) rest joint locations,
    parents: (J,) with parents[0] == -1 and every parent listed before its child.
    Returns posed joints (J, 3) and the (J, 4, 4) transforms that carry a
    rest-pose point skinned to joint j to its posed place.
    """
    n_joints = joints.shape[0]
    rel = joints.copy()
    rel[1:] -= joints[parents[1:]]
    local = np.zeros((n_joints, 4, 4), dtype=joints.dtype)
    local[:, :3, :3] = rot_mats
    local[:, :3, 3] = rel
    local[:, 3, 3] = 1
    world = np.empty_like(local)
    world[0] = local[0]
    for j in range(1, n_joints):
        world[j] = world[parents[j]] @ local[j]
    posed_joints = world[:, :3, 3].copy()
    transforms = world.copy()
    transforms[:, :3, 3] -= np.einsum("jab,jb->ja", world[:, :3, :3], joints)
    return posed_joints, transforms


def skin(vertices: np.ndarray, weights: np.ndarray, transforms: np.ndarray) -> np.ndarray:
    """Linear blend skinning.

    vertices: (V, 3), weights: (V, J), transforms: (J, 4, 4). Returns (V, 3).
    """
    blended = (weights @ transforms.reshape(transforms.shape[0], 16)).reshape(-1, 4, 4)
    return np.einsum("vab,vb->va", blended[:, :3, :3], vertices) + blended[:, :3, 3]


def barycentric_points(vertices: np.ndarray, faces: np.ndarray, face_ids: np.ndarray, bary: np.ndarray) -> np.ndarray:
    """Points on triangles. vertices: (V, 3), faces: (F, 3), face_ids: (L,), bary: (L, 3). Returns (L, 3)."""
    return np.einsum("lk,lkc->lc", bary.astype(vertices.dtype, copy=False), vertices[faces[face_ids]])


@dataclass
class RigOutput:
    """vertices: (V, 3) posed mesh; joints: (J, 3) posed joints; transforms: (J, 4, 4) skinning transforms
    (translation included); shaped: (V, 3) the rest-pose mesh of this identity and expression."""

    vertices: np.ndarray
    joints: np.ndarray
    transforms: np.ndarray
    shaped: np.ndarray


def identity_template(rig: Rig, shape: np.ndarray, static_offset: np.ndarray | None = None) -> np.ndarray:
    """The rest mesh of one identity: the template, plus `static_offset` (V, 3) when given, plus the identity
    blend shapes of `shape` (S,). Returns (V, 3) in the dtype of `rig.v_template`."""
    dtype = rig.v_template.dtype
    template = rig.v_template if static_offset is None else rig.v_template + static_offset.astype(dtype)
    return template + blend_shapes(np.asarray(shape, dtype), rig.shape_dirs)


def forward(rig: Rig, params: RigParams, static_offset: np.ndarray | None = None,
            identity: np.ndarray | None = None) -> RigOutput:
    """Posed mesh for one parameter set.

    static_offset: optional (V, 3) per-vertex identity offsets (GaussianAvatars'
    `static_offset`), added to the template before the blend shapes.
    identity: `identity_template(rig, params.shape, static_offset)` kept by a
    caller across frames of one identity (then `static_offset` is not read).
    The computation runs in the dtype of `rig.v_template`.
    """
    params.check(rig)
    dtype = rig.v_template.dtype
    if identity is None:
        identity = identity_template(rig, params.shape, static_offset)
    v_shaped = identity + blend_shapes(np.asarray(params.expr, dtype), rig.expr_dirs)
    joints = regress_joints(rig.j_regressor, v_shaped)  # FLAME regresses from shape and expression
    rot_mats = axis_angle_to_matrix(params.full_pose().astype(dtype))
    v_posed = v_shaped + pose_correctives(rot_mats, rig.pose_dirs)
    posed_joints, transforms = rigid_transforms(rot_mats, joints, rig.parents)
    translation = np.asarray(params.translation, dtype)
    transforms[:, :3, 3] += translation
    vertices = skin(v_posed, rig.weights, transforms)
    return RigOutput(vertices=vertices, joints=posed_joints + translation, transforms=transforms, shaped=v_shaped)


def landmarks(rig: Rig, vertices: np.ndarray) -> np.ndarray:
    """The rig's embedded MediaPipe landmarks on a posed mesh. vertices: (V, 3). Returns (L, 3), ordered as rig.lmk_ids."""
    return barycentric_points(vertices, rig.faces, rig.lmk_faces, rig.lmk_bary)
