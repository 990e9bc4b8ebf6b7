"""The photo's expression taken out of the built-in rig's template: the mouth brought to rest.

The template is MediaPipe's landmarks on a real photo, and the photo (skimage's astronaut) smiles with parted
lips. A rig's zero must be a neutral face (a neutral person then drives a neutral avatar, and a builder can
measure a portrait's own expression against it), so before the head is built around the landmarks the mouth is
relaxed:

* the inner lips meet along a level line at the height of the stomion (midway between the middles of the
  inner lips), NEUTRAL_LIP_GAP apart so that no triangle collapses; the outer lip contours follow their inner
  ones, so the lips keep their thickness;
* the mouth corners come down to that height;
* the skin next to the corners (where a smile creases it) travels with them, and the skin around follows by
  the expression shapes' biharmonic spreading, nose, eyes and brows held still.

The mouth keeps the photo's width. Narrowing it to an average relaxed mouth was tried: the corners then leave
the creases the photo's smile paints beside them, and MediaPipe (like a viewer) reads the mouth's width from
that paint: the demo avatar's neutral read hardly narrower, and its smiles, tracked from renders of it, no longer
followed the rig's smile well enough for the tracking ground-truth test.
"""

from __future__ import annotations

import numpy as np

from realtime.face import landmark_ids as mp_ids
from realtime.face import topology as topo
from realtime.rig.builtin_expressions import LID_GAP, Shape, SurfaceSolver, skin_bumps
from realtime.rig.builtin_head import HeadMesh

NEUTRAL_LIP_GAP = LID_GAP    # m between the closed inner lips
RELAX_RADIUS = 0.04          # m of skin around the lips that follows them
CORNER_CARRY = 0.02          # m round each mouth corner within which the skin moves with the corner


def rest_mouth(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(K,) landmark ids and (K, 3) their positions with the mouth at rest (see the module doc).

    points: (478, 3) landmarks in rig space (metres, x across the face); the ids are the lip contours'."""
    g = topo.groups()
    upper_in, lower_in = g["lip_upper_inner"], g["lip_lower_inner"]
    upper_out, lower_out = g["lip_upper_outer"], g["lip_lower_outer"]
    if not (len(upper_in) == len(lower_in) == len(upper_out) == len(lower_out)):
        raise ValueError("the lip contours must pair up column by column, got lengths "
                         f"{[len(c) for c in (upper_in, lower_in, upper_out, lower_out)]}")
    corners = [mp_ids.RIGHT_MOUTH_CORNER, mp_ids.LEFT_MOUTH_CORNER]
    stomion = 0.5 * (points[13, 1] + points[14, 1])
    target = {}
    for inner, outer, side in ((upper_in, upper_out, 1.0), (lower_in, lower_out, -1.0)):
        rise = stomion + side * 0.5 * NEUTRAL_LIP_GAP - points[inner, 1]        # (C,) each column's move
        rise[[0, -1]] = stomion - points[inner[[0, -1]], 1]                     # the inner corners meet
        for ids, dy in ((inner, rise), (outer, rise)):
            moved = points[ids].copy()
            moved[:, 1] += dy
            target.update(zip(ids.tolist(), moved))
    for c in corners:  # the outer corners at the lips' meeting height
        target[c] = target[c] * [1.0, 0.0, 1.0] + [0.0, stomion, 0.0]
    ids = np.array(sorted(target), dtype=np.int64)
    return ids, np.array([target[i] for i in ids])


def relax_mouth(head: HeadMesh) -> np.ndarray:
    """(478, 3) the landmark vertices of `head` (built around the photo's landmarks) with the mouth at rest:
    the lip contours placed by `rest_mouth`, the skin within RELAX_RADIUS following smoothly."""
    v = head.vertices
    g = topo.groups()
    ids, target = rest_mouth(v[:mp_ids.N_LANDMARKS])
    moves = dict(zip(ids.tolist(), target - v[ids]))
    still = np.concatenate([g["eye_left"], g["eye_right"], g["brow_left"], g["brow_right"],
                            np.asarray(mp_ids.NOSE, np.int64)])
    # the skin next to each corner (a smile's creases and dimples) travels with it
    skin = np.setdiff1d(head.parts["face"], np.concatenate([ids, still]))
    carried, carry = skin_bumps(v, skin, [(v[c], CORNER_CARRY, moves[c])
                                          for c in (mp_ids.RIGHT_MOUTH_CORNER, mp_ids.LEFT_MOUTH_CORNER)])
    moves.update(zip(carried.tolist(), carry))
    handles = np.array(sorted(moves), dtype=np.int64)
    shape = Shape(handles=handles, moves=np.array([moves[i] for i in handles]), pinned=np.setdiff1d(still, handles),
                  radius=RELAX_RADIUS)
    field = SurfaceSolver(head).field(shape)
    return v[:mp_ids.N_LANDMARKS] + field[:mp_ids.N_LANDMARKS]
