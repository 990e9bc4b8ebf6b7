"""GaussianAvatars' teeth: 120 vertices and 168 triangles appended to the FLAME mesh.

GaussianAvatars (``flame_model/flame.py``, ``FlameHead.add_teeth``) binds
Gaussians to teeth triangles that it appends after FLAME's 9976 faces, so
binding indices past 9975 only resolve on a mesh extended exactly the same
way. The construction, restated from that file:

* Two rings of 15 FLAME vertices each, the outer lip contour of the upper and
  the lower lip, listed left to right (ids below; GaussianAvatars' custom
  vertex masks ``lip_outside_ring_upper`` / ``lip_outside_ring_lower``).
* d = mean distance between paired upper/lower ring vertices of the template;
  the middle row is the pairs' midpoints, all set to their mean height (y),
  moved back (z) by 1.5 d.
* Upper front: edge = middle + 0.1 d up, root = edge + 2 d up.
  Lower front: edge = middle - 0.1 d up and 0.4 d back, root = edge - 2 d up.
  The back rows are the front rows moved back by d (the teeth's thickness).
* Vertex order (15 each): upper root, lower root, upper edge, lower edge,
  upper root back, upper edge back, lower root back, lower edge back.
* Identity blend shapes of every teeth vertex: the mean of the paired ring
  vertices' ones; expression blend shapes, pose correctives and the joint
  regressor: zero; skinning: upper teeth fully on the neck joint, lower teeth
  fully on the jaw joint.
* Faces: upper jaw (front, back, bottom strips), then lower jaw (front, back,
  top strips), 28 triangles a strip, two per quad between neighbouring columns;
  the diagonal of each quad and the order of corners flip at the middle column
  (7), as in GaussianAvatars' face table.

The vertex positions are computed in the rig's dtype (GaussianAvatars computes
them in float32), so they agree with GaussianAvatars' to float32 rounding.
"""

from __future__ import annotations

import numpy as np

from realtime.rig.model import Rig, RigError

LIP_OUTSIDE_RING_UPPER = (1713, 1715, 1716, 1735, 1696, 1694, 1657, 3543, 2774, 2811, 2813, 2850, 2833, 2832, 2830)
LIP_OUTSIDE_RING_LOWER = (1576, 1577, 1773, 1774, 1795, 1802, 1865, 3503, 2948, 2905, 2898, 2881, 2880, 2713, 2712)
N_COLUMNS = 15
N_TEETH_VERTICES = 8 * N_COLUMNS
N_TEETH_FACES = 6 * 2 * (N_COLUMNS - 1)
NECK_JOINT, JAW_JOINT = 1, 2

# Rows of teeth vertices (each 15 columns), in their order after the FLAME vertices.
(UPPER_ROOT, LOWER_ROOT, UPPER_EDGE, LOWER_EDGE,
 UPPER_ROOT_BACK, UPPER_EDGE_BACK, LOWER_ROOT_BACK, LOWER_EDGE_BACK) = range(8)
UPPER_ROWS = (UPPER_ROOT, UPPER_EDGE, UPPER_ROOT_BACK, UPPER_EDGE_BACK)
LOWER_ROWS = (LOWER_ROOT, LOWER_EDGE, LOWER_ROOT_BACK, LOWER_EDGE_BACK)

# Quad corners: a = row A column i, b = row A column i+1, c = row B column i+1, d = row B column i.
# Each pattern lists the two triangles of the quads left of the middle column, then right of it.
_P = (("acd", "abc"), ("abd", "bcd"))
_P_FLIPPED = (("adc", "acb"), ("adb", "bdc"))
_STRIPS = (  # (row A, row B, pattern), upper jaw then lower jaw
    (UPPER_ROOT, UPPER_EDGE, _P),
    (UPPER_ROOT_BACK, UPPER_EDGE_BACK, _P_FLIPPED),
    (UPPER_EDGE_BACK, UPPER_EDGE, _P_FLIPPED[::-1]),
    (LOWER_EDGE, LOWER_ROOT, _P[::-1]),
    (LOWER_ROOT_BACK, LOWER_EDGE_BACK, _P),
    (LOWER_EDGE_BACK, LOWER_EDGE, _P[::-1]),
)


def teeth_faces() -> np.ndarray:
    """(168, 3) int32 triangles over the 120 teeth vertices (0-based within the teeth block)."""
    faces = []
    for row_a, row_b, (left, right) in _STRIPS:
        for i in range(N_COLUMNS - 1):
            corner = {"a": row_a * N_COLUMNS + i, "b": row_a * N_COLUMNS + i + 1,
                      "c": row_b * N_COLUMNS + i + 1, "d": row_b * N_COLUMNS + i}
            for triangle in left if i < N_COLUMNS // 2 else right:
                faces.append([corner[k] for k in triangle])
    return np.asarray(faces, dtype=np.int32)


def teeth_vertices(v_template: np.ndarray) -> np.ndarray:
    """(120, 3) teeth vertices built from the lip rings of a FLAME-topology template (V, 3)."""
    upper = v_template[list(LIP_OUTSIDE_RING_UPPER)]
    lower = v_template[list(LIP_OUTSIDE_RING_LOWER)]
    d = np.linalg.norm(upper - lower, axis=-1).mean()
    up, back = np.array([0, d, 0], dtype=v_template.dtype), np.array([0, 0, d], dtype=v_template.dtype)
    middle = (upper + lower) / 2
    middle[:, 1] = middle[:, 1].mean()
    middle[:, 2] -= 1.5 * d
    upper_edge = middle + 0.1 * up
    upper_root = upper_edge + 2 * up
    lower_edge = middle - 0.1 * up - 0.4 * back
    lower_root = lower_edge - 2 * up
    return np.concatenate([upper_root, lower_root, upper_edge, lower_edge, upper_root - back, upper_edge - back,
                           lower_root - back, lower_edge - back])


def add_teeth(rig: Rig) -> Rig:
    """The rig with GaussianAvatars' teeth appended: V + 120 vertices, F + 168 faces (after the originals).

    `rig` must have FLAME's topology (the lip ring ids above) and FLAME's joints (neck 1, jaw 2).
    Identity coefficients, landmark embedding and expression names carry over unchanged.
    """
    if rig.name.endswith("+teeth"):
        raise RigError(f"rig '{rig.name}' already has teeth")
    if rig.n_vertices <= max(LIP_OUTSIDE_RING_UPPER + LIP_OUTSIDE_RING_LOWER) or rig.n_joints != 5:
        raise RigError(f"teeth need a FLAME-topology rig (5023 vertices, 5 joints), got {rig.n_vertices} vertices "
                       f"and {rig.n_joints} joints")
    n_v, n_t = rig.n_vertices, N_TEETH_VERTICES
    ring_shape = (rig.shape_dirs[list(LIP_OUTSIDE_RING_UPPER)] + rig.shape_dirs[list(LIP_OUTSIDE_RING_LOWER)]) / 2
    teeth_weights = np.zeros((n_t, rig.n_joints), dtype=rig.weights.dtype)
    rows = np.arange(n_t) // N_COLUMNS
    teeth_weights[np.isin(rows, UPPER_ROWS), NECK_JOINT] = 1
    teeth_weights[np.isin(rows, LOWER_ROWS), JAW_JOINT] = 1

    def zeros_like_rows(a: np.ndarray) -> np.ndarray:
        return np.zeros((n_t,) + a.shape[1:], dtype=a.dtype)

    return Rig(
        v_template=np.concatenate([rig.v_template, teeth_vertices(rig.v_template)]),
        shape_dirs=np.concatenate([rig.shape_dirs, np.tile(ring_shape, (8, 1, 1))]),
        expr_dirs=np.concatenate([rig.expr_dirs, zeros_like_rows(rig.expr_dirs)]),
        pose_dirs=np.concatenate([rig.pose_dirs, zeros_like_rows(rig.pose_dirs)]),
        j_regressor=np.concatenate([rig.j_regressor, np.zeros((rig.n_joints, n_t), rig.j_regressor.dtype)], axis=1),
        weights=np.concatenate([rig.weights, teeth_weights]),
        parents=rig.parents, faces=np.concatenate([rig.faces, (teeth_faces() + n_v).astype(rig.faces.dtype)]),
        lmk_ids=rig.lmk_ids, lmk_faces=rig.lmk_faces, lmk_bary=rig.lmk_bary, expr_names=rig.expr_names,
        name=f"{rig.name}+teeth")
