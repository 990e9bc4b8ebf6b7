"""The built-in rig's skeleton: FLAME's five joints, a joint regressor and skinning weights.

Joints (rig space, metres), after FLAME (root, neck, jaw, left eye, right eye):

* root (0, -0.02, -0.01) and neck (0, -0.05, -0.02): inside the head behind
  and below the face, the neck joint at the top of the spine;
* jaw (0, -0.012, 0.012): on the hinge line between the two jaw joints, in
  front of the ears a little below the eyes;
* eyes: the eyeball centres.

Skinning: the eyeballs follow only their eye joints; the lower teeth only the
jaw; the upper teeth the neck. On the skin, the bottom of the neck stays with
the root and hands over to the neck joint up the neck; the jaw's share is a
harmonic field on the head surface: 1 on the lower lip, the chin and the floor
of the mouth, 0 on the upper lip, the nose, the eyes and the skull, smooth in
between (the cheeks and the mouth corners blend).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import nnls

from realtime.face import topology as topo
from realtime.rig.builtin_head import MOUTH_RADII, HeadMesh, smoothstep
from realtime.rig.mesh_ops import smooth_fill, uniform_laplacian

ROOT = np.array([0.0, -0.02, -0.01])
NECK_JOINT = np.array([0.0, -0.05, -0.02])
JAW_JOINT = np.array([0.0, -0.012, 0.012])
NECK_BASE_Y, NECK_FREE_Y = -0.17, -0.10  # the root's share falls from 1 to 0 between these heights
JAW_BAND = 0.012  # half-width of the jaw's fade across the mandible line (m)
JAW_NECK_Y = -0.125  # the neck below this height does not follow the jaw
LIP_CORNER_JAW, LIP_EASE = 0.5, 0.5  # the lower lip's jaw share at the corners; the fraction of a half it eases over
REGRESSOR_RADIUS = 0.03  # vertices within this of a joint (or its mirror anchors) take part in regressing it


class SkinningError(RuntimeError):
    """The regressor or the weights could not be made to the rig's standards."""


def joint_locations(head: HeadMesh) -> np.ndarray:
    """(5, 3) rest joints in FLAME's order: root, neck, jaw, left eye, right eye."""
    return np.stack([ROOT, NECK_JOINT, JAW_JOINT, head.eye_centers[0], head.eye_centers[1]])


def regressor_row(vertices: np.ndarray, ids: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Non-negative weights over `ids`, summing to 1, that reproduce `target` exactly: (len(ids),).

    Among such weights, near the uniform ones: a non-negative least-squares fit
    with the constraints weighted heavily, then an exact correction on its
    support. vertices: (V, 3). Raises SkinningError when the target lies
    outside the vertices' hull.
    """
    a = np.vstack([vertices[ids].T, np.ones(len(ids))])  # (4, K)
    b = np.append(target, 1.0)
    stiff = 1e4
    w, _ = nnls(np.vstack([stiff * a, np.eye(len(ids))]), np.concatenate([stiff * b, np.full(len(ids), 1 / len(ids))]))
    support = w > 1e-9
    a_s = a[:, support]
    w[support] += a_s.T @ np.linalg.lstsq(a_s @ a_s.T, b - a_s @ w[support], rcond=None)[0]
    w[~support] = 0.0
    if w.min() < 0 or np.abs(a @ w - b).max() > 1e-9:
        raise SkinningError(f"no non-negative regressor weights reproduce the joint at {target}")
    return w


def joint_regressor(head: HeadMesh, joints: np.ndarray) -> np.ndarray:
    """(5, V) rows of non-negative weights (summing to 1) that give `joints` from the template.

    Eyes regress from their eyeball's sphere vertices, so they follow the
    eyeballs; root and neck from the skin around them at their height, the jaw
    from the skin in front of both ears, so they follow the head's shape.
    """
    v = head.vertices
    reg = np.zeros((5, len(v)))
    scalp = head.parts["scalp"]
    skin = np.concatenate([head.parts["face"], scalp])
    for j in (0, 1):
        near = skin[np.abs(v[skin, 1] - joints[j, 1]) < REGRESSOR_RADIUS / 2]
        reg[j, near] = regressor_row(v, near, joints[j])
    ears = [skin[np.linalg.norm(v[skin] - joints[2] - [s * 0.065, 0, 0], axis=1) < REGRESSOR_RADIUS]
            for s in (-1.0, 1.0)]
    near = np.concatenate(ears)
    reg[2, near] = regressor_row(v, near, joints[2])
    for j, side in ((3, "left"), (4, "right")):
        ball = np.setdiff1d(head.parts[f"eyeball_{side}"], topo.groups()[f"iris_{side}"])
        reg[j, ball] = regressor_row(v, ball, joints[j])
    return reg


def jaw_field(head: HeadMesh) -> np.ndarray:
    """The jaw's share of the head surface, (V,) in [0, 1]; 0 on eyeballs and teeth.

    Fixed at 1 on the lower lip (easing down to LIP_CORNER_JAW towards the
    corners), the chin, the floor of the mouth and the skin clearly below the
    mandible line (mouth corner to jaw joint, seen from the side); at 0 on the
    upper lip, everything above the nose base, the skin clearly above that line
    or behind the jaw joint, the lower neck and the eye sockets; harmonic in
    between.
    """
    v, parts, g = head.vertices, head.parts, topo.groups()
    corners = [61, 291, 78, 308]
    lower_lip = np.array([i for i in np.concatenate([g["lip_lower_inner"], g["lip_lower_outer"]]) if i not in corners])
    ones: list[int] = []
    zeros = [i for i in np.concatenate([g["lip_upper_inner"], g["lip_upper_outer"]]) if i not in corners]
    skin = np.concatenate([parts["face"], parts["scalp"]])
    corner = v[corners, 1:].mean(0)
    along = JAW_JOINT[1:] - corner
    normal = np.array([along[1], -along[0]]) / np.linalg.norm(along)  # points down and forward
    below = (v[skin, 1:] - corner) @ normal
    front = v[skin, 2] > JAW_JOINT[2]
    ones += skin[front & (below > JAW_BAND) & (v[skin, 1] > NECK_FREE_Y)].tolist()
    zeros += skin[(below < -JAW_BAND) | (v[skin, 2] < JAW_JOINT[2] - JAW_BAND) | (v[skin, 1] < JAW_NECK_Y)].tolist()
    face = parts["face"]
    zeros += face[v[face, 1] > v[2, 1]].tolist()  # above the subnasale (landmark 2)
    mouth = parts["mouth"]
    rel = (v[mouth, 1] - head.mouth_center[1]) / MOUTH_RADII[1]
    ones += mouth[rel < -0.4].tolist()
    zeros += mouth[rel > 0.4].tolist()
    zeros += np.concatenate([parts["socket_left"], parts["socket_right"]]).tolist()
    ones = set(ones) - set(zeros) - set(lower_lip.tolist())
    for rigid in ("eyeball_left", "eyeball_right", "teeth_upper", "teeth_lower"):
        zeros += parts[rigid].tolist()
    # the explicit zeros (upper lip, above the nose base) win over the lower lip's shares and the ones
    shares = lower_lip_shares(v, lower_lip) | dict.fromkeys(sorted(ones), 1.0) | dict.fromkeys(zeros, 0.0)
    fixed = np.array(sorted(shares))
    values = np.array([shares[i] for i in fixed])
    field = smooth_fill(uniform_laplacian(head.faces, len(v)), fixed, values, order=1)[:, 0]
    return np.clip(field, 0.0, 1.0)


def lower_lip_shares(vertices: np.ndarray, lip: np.ndarray) -> dict[int, float]:
    """The jaw's share of each lower-lip vertex id in `lip`: 1 over the middle, falling to LIP_CORNER_JAW at the
    mouth corners (MediaPipe 61 and 291) over the outer LIP_EASE of each half, as a real lower lip stretches
    between the jaw and the corners instead of dropping whole."""
    centre = vertices[[61, 291], 0].mean()
    half_width = abs(vertices[61, 0] - vertices[291, 0]) / 2
    from_corner = np.clip(1.0 - np.abs(vertices[lip, 0] - centre) / half_width, 0.0, 1.0)
    share = LIP_CORNER_JAW + (1.0 - LIP_CORNER_JAW) * smoothstep(np.minimum(from_corner / LIP_EASE, 1.0))
    return dict(zip(lip.tolist(), share.tolist()))


def skinning_weights(head: HeadMesh) -> np.ndarray:
    """(V, 5) linear-blend weights, rows summing to 1 (root, neck, jaw, left eye, right eye)."""
    v, parts = head.vertices, head.parts
    root = 1.0 - smoothstep((v[:, 1] - NECK_BASE_Y) / (NECK_FREE_Y - NECK_BASE_Y))
    jaw = jaw_field(head)
    w = np.stack([root, (1 - root) * (1 - jaw), (1 - root) * jaw, np.zeros(len(v)), np.zeros(len(v))], 1)
    for ids, row in ((parts["eyeball_left"], [0, 0, 0, 1, 0]), (parts["eyeball_right"], [0, 0, 0, 0, 1]),
                     (parts["teeth_upper"], [0, 1, 0, 0, 0]), (parts["teeth_lower"], [0, 0, 1, 0, 0])):
        w[ids] = row
    return w
