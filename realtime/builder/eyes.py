"""The eyes' colours: each eyeball painted as an eye from the photo's own iris and sclera, the sockets in shadow.

The photo sees an eyeball only through the lid opening, where lid margin, lashes and the socket's rim crowd into a
few pixels; sampled Gaussian by Gaussian there, the eyeball takes a smear of lid and lash colours that turns with
the eye, and the iris it should show stays painted on the still skin around it (so the eye seems not to move).
Instead the eyeball is painted as an eye is: a disc of the photo's iris colour the size of MediaPipe's iris (its
rim landmarks), a dark pupil and a darker limbal ring inside it, and the photo's sclera colour around; the eye
socket's walls, seen in the gap between the lids and the eyeball, take the sclera's tone in the lids' shadow.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.face import landmark_ids as mp_ids
from realtime.face import topology as topo

PUPIL_COLOUR = np.array([0.04, 0.03, 0.03])
PUPIL_FRACTION = 0.42        # pupil radius over iris radius (indoor light)
LIMBUS_FRACTION = 0.85       # the iris darkens towards its rim from here
LIMBUS_SHADE = 0.55          # the limbal ring's brightness relative to the iris
SOCKET_SHADE = 0.15          # the socket walls' brightness relative to the sclera (in the lids' shadow)
EDGE = 0.06                  # softness of the painted edges, as a fraction of the iris radius
DEFAULT_SCLERA = np.array([0.80, 0.75, 0.72])
MIN_PIXELS = 8               # fewer photo pixels than this for a tone: the default instead



@dataclass(frozen=True)
class EyeTones:
    """The photo's eye colours, RGB in [0, 1]: iris (3,), sclera (3,)."""

    iris: np.ndarray
    sclera: np.ndarray


def _smoothstep(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    t = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    return t * t * (3 - 2 * t)


def _opening_mask(shape: tuple[int, int], contour: np.ndarray) -> np.ndarray:
    """(H, W) bool: the pixels inside the polygon `contour` (K, 2) pixels."""
    import cv2

    mask = np.zeros(shape, np.uint8)
    cv2.fillPoly(mask, [np.round(contour).astype(np.int32)], 1)
    return mask.astype(bool)


def _ordered_loop(ids: np.ndarray, points: np.ndarray) -> np.ndarray:
    """The eye contour's ids ordered round its centre (the polygon of the opening)."""
    p = points[ids, :2]
    angle = np.arctan2(p[:, 1] - p[:, 1].mean(), p[:, 0] - p[:, 0].mean())
    return ids[np.argsort(angle)]


def photo_eye_tones(image: np.ndarray, landmarks: np.ndarray) -> EyeTones:
    """The iris and sclera colours of a portrait.

    image: (H, W, 3) float in [0, 1]; landmarks: (478, 2+) MediaPipe pixels. The iris colour is the median of the
    pixels inside either eye's opening within half the iris radius of its centre but outside the pupil; the
    sclera's, the median of the brighter half of the opening's pixels beyond 1.2 iris radii (defaults when the
    opening shows too few)."""
    g = topo.groups()
    h, w = image.shape[:2]
    yy, xx = np.mgrid[0:h, 0:w]
    iris_px, sclera_px = [], []
    for side, iris in (("left", mp_ids.LEFT_IRIS), ("right", mp_ids.RIGHT_IRIS)):
        centre = landmarks[iris[0], :2]
        radius = np.linalg.norm(landmarks[list(iris[1:]), :2] - centre, axis=1).mean()
        opening = _opening_mask((h, w), landmarks[_ordered_loop(g[f"eye_{side}"], landmarks), :2])
        r = np.hypot(xx + 0.5 - centre[0], yy + 0.5 - centre[1]) / max(radius, 1e-6)
        iris_px.append(image[opening & (r > PUPIL_FRACTION) & (r < 0.8)])
        sclera_px.append(image[opening & (r > 1.2)])
    iris_all, sclera_all = np.concatenate(iris_px), np.concatenate(sclera_px)
    iris = np.median(iris_all, axis=0) if len(iris_all) >= MIN_PIXELS else DEFAULT_SCLERA * 0.4
    if len(sclera_all) >= MIN_PIXELS:
        bright = sclera_all[sclera_all.sum(1) >= np.median(sclera_all.sum(1))]
        sclera = np.median(bright, axis=0)
    else:
        sclera = DEFAULT_SCLERA
    return EyeTones(iris=np.asarray(iris, np.float64), sclera=np.asarray(sclera, np.float64))


def eyeball_colours(points: np.ndarray, centre: np.ndarray, iris_centre: np.ndarray, iris_radius: float,
                    tones: EyeTones) -> np.ndarray:
    """(N, 3) colours of points (N, 3) on an eyeball (rest pose) centred at `centre` (3,) whose iris centre sits at
    `iris_centre` (3,) with radius `iris_radius` (metres): pupil, iris, limbal ring and sclera by the angle from
    the eye's axis, with soft edges."""
    axis = (iris_centre - centre) / np.linalg.norm(iris_centre - centre)
    d = points - centre
    angle = np.arccos(np.clip(d @ axis / np.maximum(np.linalg.norm(d, axis=1), 1e-12), -1.0, 1.0))
    iris_angle = np.arctan2(iris_radius, np.linalg.norm(iris_centre - centre))
    r = angle / iris_angle                                          # 1 at the iris rim
    ring = 1.0 - (1.0 - LIMBUS_SHADE) * _smoothstep(r, LIMBUS_FRACTION, 1.0)
    iris = tones.iris[None] * ring[:, None]
    pupil = _smoothstep(r, PUPIL_FRACTION - EDGE, PUPIL_FRACTION + EDGE)[:, None]
    sclera = _smoothstep(r, 1.0, 1.0 + 2 * EDGE)[:, None]
    inner = pupil * iris + (1 - pupil) * PUPIL_COLOUR[None]
    return sclera * tones.sclera[None] + (1 - sclera) * inner


def paint_eyes(colours: np.ndarray, rest_means: np.ndarray, eyeball: np.ndarray, socket: np.ndarray,
               rest_vertices: np.ndarray, eye_centres: np.ndarray, tones: EyeTones) -> np.ndarray:
    """`colours` (N, 3) with the eyeball Gaussians painted (`eyeball`: (N,) 0 none, 1 left, 2 right) and the socket
    Gaussians (`socket`: (N,) bool) shaded; rest_means: (N, 3) Gaussian centres at rest; rest_vertices: (V, 3) the
    rest mesh (its iris landmarks place the irises); eye_centres: (2, 3) left, right eyeball centres."""
    out = np.asarray(colours, np.float64).copy()
    for k, iris in enumerate((mp_ids.LEFT_IRIS, mp_ids.RIGHT_IRIS)):
        on = eyeball == k + 1
        centre_3d = rest_vertices[iris[0]]
        radius = float(np.linalg.norm(rest_vertices[list(iris[1:])] - centre_3d, axis=1).mean())
        out[on] = eyeball_colours(rest_means[on], eye_centres[k], centre_3d, radius, tones)
    out[socket] = tones.sclera * SOCKET_SHADE
    return out

