"""The built-in rig's expression blend shapes: ARKit-named, localised, smooth, in metres at coefficient 1.

Each shape moves a few handle vertices (MediaPipe landmarks: eyelid, brow and
lip contours, mouth corners) by set amounts, pins a few others, and spreads the
motion over the head surface by biharmonic interpolation inside a geodesic
radius; beyond it nothing moves. Geodesics run over the mesh, and the eye and
mouth openings are holes in it, so an upper lid's motion does not leak into the
lower lid or an upper lip's into the lower one. "Left" is the subject's left
(+x), as in FLAME's left eye. Eyeballs and teeth move only with their joints,
except that jawForward carries the lower teeth with the jaw.

A shape at 1 is the full action, as in ARKit: a full brow raise lifts the brow
by 1 cm, a full smile the mouth corner by about 1 cm. A feature that moves far
carries the skin next to it (smooth bumps of handles), so the surface does not
fold over it: a fold hides the feature behind still skin, and the camera (and
MediaPipe) then sees a fraction of its motion.
The template's lips are closed (builtin_relax), so mouthClose, as in ARKit,
presses them together against an opening jaw.

Opening the jaw and turning the eyes are joint rotations (jaw_pose,
eyes_pose), not blend shapes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.face import topology as topo
from realtime.rig.builtin_head import HeadMesh
from realtime.rig.builtin_neutral import EYEBALL_RADIUS
from realtime.rig.mesh_ops import geodesic_distance, smooth_fill, uniform_laplacian

NOSE_RIDGE = (6, 197, 195, 5, 4, 1)  # nasal bridge to tip
LID_CLEARANCE = 0.0008  # closed or widened lids stay this far outside the eyeball (m)
LID_GAP = 0.0003  # a closed eye's lid margins stop this far apart, so no triangle collapses (m)
JAW_FORWARD = 0.005  # m
EYE_WIDE = 0.0045   # m the upper lid's middle rises at a full eyeWide
LIP_CLOSE = 0.003    # m each inner lip moves towards the other at a full mouthClose (against an open jaw)


@dataclass(frozen=True)
class Shape:
    """One expression: handle vertex ids with displacements (K, 3), pinned ids, and the reach (m)."""

    handles: np.ndarray
    moves: np.ndarray
    pinned: np.ndarray
    radius: float


class SurfaceSolver:
    """Biharmonic spreading of handle displacements over the head's skin and pockets."""

    def __init__(self, head: HeadMesh):
        self.vertices, self.faces = head.vertices, head.faces
        self.laplacian = uniform_laplacian(head.faces, len(head.vertices))

    def field(self, shape: Shape) -> np.ndarray:
        """(V, 3) displacements: handles moved, pins and everything beyond `radius` still, biharmonic between.

        The eyeballs and teeth are separate surfaces, out of every handle's reach, so they stay still.
        """
        dist = geodesic_distance(self.vertices, self.faces, shape.handles, limit=shape.radius)
        still = np.union1d(np.flatnonzero(~np.isfinite(dist)), shape.pinned)
        still = np.setdiff1d(still, shape.handles)
        fixed = np.concatenate([shape.handles, still])
        values = np.concatenate([shape.moves, np.zeros((len(still), 3))])
        return smooth_fill(self.laplacian, fixed, values, order=2)


def _ids(*arrays) -> np.ndarray:
    return np.concatenate([np.atleast_1d(np.asarray(a, dtype=np.int64)) for a in arrays])


def _shape(pairs, pinned=(), radius: float = 0.03) -> Shape:
    """Shape from (ids, displacement (3,) or (len(ids), 3)) pairs; a later pair overrides an earlier one."""
    moves = {}
    for ids, d in pairs:
        d = np.broadcast_to(np.asarray(d, float), (len(np.atleast_1d(ids)), 3))
        for i, di in zip(np.atleast_1d(ids), d):
            moves[int(i)] = di
    handles = np.array(sorted(moves), dtype=np.int64)
    pinned = np.setdiff1d(np.asarray(pinned, dtype=np.int64), handles)
    return Shape(handles, np.array([moves[i] for i in handles]), pinned, radius)


def _mirror(shape: Shape, mirror: np.ndarray) -> Shape:
    """The same shape on the other side: ids through the mirror map, x displacements negated."""
    return Shape(mirror[shape.handles], shape.moves * np.array([-1.0, 1.0, 1.0]), mirror[shape.pinned], shape.radius)


def _near(v: np.ndarray, pool: np.ndarray, point: np.ndarray, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Ids in `pool` within `radius` of `point`, and a smooth weight (1 at the point, 0 at the radius)."""
    d = np.linalg.norm(v[pool] - point, axis=1)
    keep = d < radius
    return pool[keep], (1.0 - (d[keep] / radius) ** 2) ** 2


def skin_bumps(v: np.ndarray, pool: np.ndarray, bumps) -> tuple[np.ndarray, np.ndarray]:
    """Ids in `pool` and their summed displacements (N, 3) from smooth bumps, each (centre (3,), radius, move (3,)):
    a bump moves the vertices within its radius by `move` times :func:`_near`'s weight."""
    total = {}
    for point, radius, move in bumps:
        ids, w = _near(v, pool, point, radius)
        for i, wi in zip(ids, w):
            total[int(i)] = total.get(int(i), 0.0) + wi * np.asarray(move, float)
    ids = np.array(sorted(total), dtype=np.int64)
    return ids, np.array([total[i] for i in ids]).reshape(-1, 3)


def _outside_ball(start: np.ndarray, end: np.ndarray, center: np.ndarray, radius: float) -> np.ndarray:
    """Push each end point (N, 3) out from `center`, 0.2 mm at a time, until the segment from its start
    point stays outside the ball. Returns the new end points (N, 3)."""
    end = end.copy()
    for _ in range(100):
        d = end - start
        t = np.clip(((center - start) * d).sum(1) / np.maximum((d * d).sum(1), 1e-18), 0.0, 1.0)
        short = np.linalg.norm(start + t[:, None] * d - center, axis=1) < radius
        if not short.any():
            return end
        out = end[short] - center
        end[short] += 0.0002 * out / np.linalg.norm(out, axis=1, keepdims=True)
    raise ValueError("eyelid motion cannot be kept outside the eyeball")


def _lid_profile(n: int) -> np.ndarray:
    """(n,) weights along a lid from corner to corner: 0 at the corners, 1 in the middle."""
    return np.sin(np.pi * np.arange(n) / (n - 1))


def _eye_shapes(v: np.ndarray, head: HeadMesh, side: str) -> dict[str, Shape]:
    """Blink, squint and wide for one eye ("left" or "right"); lids keep clear of that eyeball."""
    g = topo.groups()
    center = head.eye_centers[0 if side == "left" else 1]
    upper, lower = g[f"eyelid_upper_{side}"], g[f"eyelid_lower_{side}"]
    inner_u, inner_l = upper[1:-1], lower[1:-1]
    brow, face = g[f"brow_{side}"], head.parts["face"]
    clear = EYEBALL_RADIUS + LID_CLEARANCE
    up = np.array([0.0, 1.0, 0.0])
    meet = v[inner_l] + 0.25 * (v[inner_u] - v[inner_l])
    to_u = _outside_ball(v[inner_u], meet + 0.5 * LID_GAP * up, center, clear)
    to_l = _outside_ball(v[inner_l], meet - 0.5 * LID_GAP * up, center, clear)
    prof = _lid_profile(len(upper))[1:-1, None]
    wide = _outside_ball(v[inner_u], v[inner_u] + EYE_WIDE * prof * up, center, clear)
    below_eye = v[lower[len(lower) // 2]] - np.array([0.0, 0.014, 0.0])
    cheek, cw = _near(v, face, below_eye, 0.012)
    return {
        "eyeBlink": _shape([(inner_u, to_u - v[inner_u]), (inner_l, to_l - v[inner_l])], brow, 0.025),
        "eyeSquint": _shape([(cheek, 0.0015 * cw[:, None] * up), (inner_l, 0.0025 * prof * up),
                             (inner_u, -0.001 * prof * up)], brow, 0.022),
        "eyeWide": _shape([(inner_u, wide - v[inner_u]), (inner_l, np.zeros(3))], brow, 0.02),
    }


def _left_shapes(v: np.ndarray, head: HeadMesh) -> dict[str, Shape]:
    """The one-sided shapes, on the subject's left."""
    g = topo.groups()
    face = head.parts["face"]
    eye_loop = g["eye_left"]
    lips = _ids(g["lips_inner"], g["lips_outer"])
    lip_centre = [0, 13, 14, 17]
    right_corner = [61, 78]
    corner = [291, 308]
    upper_left = [267, 269, 270, 409, 312, 311, 310, 415]
    lower_left = [314, 405, 321, 375, 317, 402, 318, 324]
    under_eye = v[374] - np.array([0.0, 0.02, 0.0])
    cheek_up, cuw = _near(v, face, under_eye, 0.014)
    ala, aw = _near(v, face, v[358], 0.007)
    shapes = {
        "browDown": _shape([([300, 293, 334, 276, 283, 282], [0.0, -0.005, 0.0]),
                            ([296, 336, 295, 285], [-0.002, -0.005, 0.001])], eye_loop, 0.022),
        # brows rise as a whole, most at the raised end: 1 cm there at a full raise
        "browOuterUp": _shape([([300, 276, 293, 283], [0.0, 0.010, 0.0]), ([334, 282], [0.0, 0.0065, 0.0]),
                               ([296, 295], [0.0, 0.004, 0.0]), ([336, 285], [0.0, 0.0025, 0.0])],
                              _ids(eye_loop, g["brow_right"]), 0.035),
        "cheekSquint": _shape([(cheek_up, 0.003 * cuw[:, None] * [0.0, 1.0, 0.2])], eye_loop, 0.025),
        "noseSneer": _shape([(ala, aw[:, None] * [0.0, 0.004, 0.0]), ([1, 4, 5], np.zeros(3))], [0, 13], 0.025),
        # the corner carries the skin within 3 cm with it (a corner moved alone slides under the skin above it,
        # which then shows where the corner should), and the cheek rises: about 1 cm up and out at a full smile
        "mouthSmile": _shape([skin_bumps(v, face, [(v[291], 0.03, [0.0055, 0.0075, -0.0025]),
                                               (v[291] + np.array([0.012, 0.022, 0.0]), 0.02, [0.0015, 0.004, 0.0])])],
                             _ids(lip_centre, right_corner, eye_loop), 0.035),
        "mouthFrown": _shape([(corner, [0.001, -0.005, 0.0])], lip_centre + right_corner, 0.03),
        "mouthDimple": _shape([(corner, [0.002, 0.0, -0.004])], lip_centre + right_corner, 0.03),
        "mouthStretch": _shape([(corner, [0.005, -0.002, -0.001]), ([321, 375, 318, 324], [0.002, -0.002, 0.0])],
                               lip_centre + right_corner, 0.03),
        "mouthPress": _shape([([269, 270, 409, 311, 310, 415], [0.0, -0.0015, -0.0005]),
                              ([405, 321, 375, 402, 318, 324], [0.0, 0.0015, -0.0005])], lip_centre, 0.025),
        "mouthUpperUp": _shape([(upper_left, [0.0, 0.004, 0.0])], [1, 4] + right_corner, 0.025),
        "mouth": _shape([(lips, [0.006, 0.0, 0.0]), (corner, [0.006, 0.0, -0.002]),
                         (right_corner, [0.006, 0.0, 0.001])], NOSE_RIDGE, 0.03),
        "mouthLowerDown": _shape([(lower_left, [0.0, -0.004, 0.0])], right_corner, 0.025),
    }
    shapes.update(_eye_shapes(v, head, "left"))
    return shapes


def _both_shapes(v: np.ndarray, head: HeadMesh, mirror: np.ndarray) -> dict[str, Shape]:
    """The symmetric shapes."""
    g = topo.groups()
    face = head.parts["face"]
    lips = _ids(g["lips_inner"], g["lips_outer"])
    eyes = _ids(g["eye_left"], g["eye_right"])
    upper_in, lower_in = g["lip_upper_inner"][1:-1], g["lip_lower_inner"][1:-1]
    upper_out, lower_out = g["lip_upper_outer"][1:-1], g["lip_lower_outer"][1:-1]
    close_u = np.tile([0.0, -LIP_CLOSE, 0.0], (len(upper_in), 1))
    close_l = np.tile([0.0, LIP_CLOSE, 0.0], (len(lower_in), 1))
    # the cheek's fullest point, placed from a cheek landmark that the mouth's expressions leave where it is
    left_cheek, cw = _near(v, face, v[411] + np.array([-0.002, -0.011, -0.005]), 0.016)
    sign = np.sign(v[:, 0])[:, None]
    cheeks = _ids(left_cheek, mirror[left_cheek])
    cheek_w = np.concatenate([cw, cw])[:, None]
    corners = [61, 78, 291, 308]
    inward = lambda ids, amount: -amount * sign[ids] * np.array([1.0, 0.0, 0.0])  # noqa: E731
    centre_up, centre_down = [0, 37, 267, 13, 82, 312], [17, 84, 314, 14, 87, 317]
    return {
        "browInnerUp": _shape([([336, 296, 285, 295, 107, 66, 55, 65], [0.0, 0.010, 0.0]),
                               ([334, 282, 105, 52], [0.0, 0.0065, 0.0]), ([293, 283, 63, 53], [0.0, 0.0035, 0.0]),
                               ([300, 276, 70, 46], [0.0, 0.002, 0.0])], _ids(eyes, NOSE_RIDGE), 0.04),
        "cheekPuff": _shape([(cheeks, 0.006 * cheek_w * np.c_[sign[cheeks], np.zeros(len(cheeks)),
                                                           np.full(len(cheeks), 0.3)])], g["lips_inner"], 0.03),
        "mouthPucker": _shape([(lips, [0.0, 0.0, 0.004]), (corners, inward(corners, 0.008) + [0.0, 0.0, 0.002]),
                               (upper_in, [0.0, -0.0015, 0.004]), (lower_in, [0.0, 0.0015, 0.004])], [1, 4], 0.03),
        "mouthFunnel": _shape([(lips, [0.0, 0.0, 0.005]), (corners, inward(corners, 0.004) + [0.0, 0.0, 0.001]),
                               (centre_up, [0.0, 0.003, 0.005]), (centre_down, [0.0, -0.003, 0.005])], [1, 4], 0.03),
        "mouthRollUpper": _shape([(upper_out, [0.0, -0.0025, -0.003]), (upper_in, [0.0, 0.001, -0.003])],
                                 _ids(lower_in, lower_out), 0.02),
        "mouthRollLower": _shape([(lower_out, [0.0, 0.0025, -0.003]), (lower_in, [0.0, -0.001, -0.003])],
                                 _ids(upper_in, upper_out), 0.02),
        "mouthShrugUpper": _shape([(_ids(upper_in, upper_out), [0.0, 0.003, 0.0])], _ids(lower_in, 1, 4), 0.025),
        "mouthShrugLower": _shape([(_ids(lower_in, lower_out), [0.0, 0.003, 0.002]),
                                   ([152, 175, 199, 200], [0.0, 0.002, 0.001])], _ids(upper_in), 0.03),
        "mouthClose": _shape([(upper_in, close_u), (lower_in, close_l), (upper_out, 0.6 * close_u),
                              (lower_out, 0.6 * close_l)], [61, 291, 1, 4], 0.025),
    }


# One-sided shapes appear as <base>Left, <base>Right ("mouth" gives mouthLeft, mouthRight).
ARKIT_ORDER = ("eyeBlink", "eyeSquint", "eyeWide", "browDown", "browInnerUp", "browOuterUp", "cheekPuff",
               "cheekSquint", "noseSneer", "jawForward", "mouthClose", "mouthFunnel", "mouthPucker", "mouth",
               "mouthSmile", "mouthFrown", "mouthDimple", "mouthStretch", "mouthRollLower",
               "mouthRollUpper", "mouthShrugLower", "mouthShrugUpper", "mouthPress", "mouthLowerDown",
               "mouthUpperUp")


def expression_basis(head: HeadMesh, mirror: np.ndarray, jaw_weights: np.ndarray) -> tuple[np.ndarray, tuple]:
    """All expression shapes: expr_dirs (V, 3, E) metres at coefficient 1, and their names (E,).

    mirror: (V,) or at least (478,) mirror map of the landmark vertices;
    jaw_weights: (V,) the jaw's skinning weight (for jawForward).
    """
    v = head.vertices
    solver = SurfaceSolver(head)
    left = _left_shapes(v, head)
    right = {name: _mirror(shape, mirror) for name, shape in left.items()}
    right.update(_eye_shapes(v, head, "right"))
    both = _both_shapes(v, head, mirror)
    fields, names = [], []
    for base in ARKIT_ORDER:
        if base == "jawForward":
            fields.append(jaw_weights[:, None] * np.array([0.0, 0.0, JAW_FORWARD]))
            names.append(base)
        elif base in both:
            fields.append(solver.field(both[base]))
            names.append(base)
        else:
            fields += [solver.field(left[base]), solver.field(right[base])]
            names += [base + "Left", base + "Right"]
    return np.stack(fields, axis=2), tuple(names)
