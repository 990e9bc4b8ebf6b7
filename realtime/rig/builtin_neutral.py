"""The built-in rig's neutral face: MediaPipe's landmarks on a real photo, in metres in rig space.

The photo is ``skimage.data.astronaut()`` (ships inside scikit-image). Its 478
landmarks (static-image mode, iris refinement on) are turned into rig space
(x to the viewer's right, y up, z towards the camera) by one similarity
transform, `MetricTransform`:

* rotation: the face's mirror plane becomes x = 0 (found from left/right
  landmark pairs) and the line from the nasion (168) to the chin (199) becomes
  vertical, so the template faces +z, upright;
* scale: the distance between the iris centres becomes 63 mm, an adult mean;
* translation: the eyeball centres (12 mm behind the iris centres) land at
  y = 0.03, z = 0.06, about where FLAME's eye joints sit, leaving the origin
  near the middle of the head.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from realtime.face.landmark_ids import LEFT_IRIS_CENTER, N_FACE, N_LANDMARKS, RIGHT_IRIS_CENTER

INTERPUPIL_DISTANCE = 0.063
EYEBALL_RADIUS = 0.012
EYE_CENTER_Y = 0.03
EYE_CENTER_Z = 0.06
NASION, CHIN = 168, 199
OUTER_EYE_CORNERS = (33, 263)  # subject's right, left
IMAGE_TO_RIG = np.diag([1.0, -1.0, -1.0])  # MediaPipe pixels (x right, y down, z away) to rig axes


class NeutralError(RuntimeError):
    """MediaPipe did not find the face the built-in rig is made from."""


@dataclass(frozen=True)
class MetricTransform:
    """rig = scale * rotation @ (IMAGE_TO_RIG @ pixels) + translation.

    rotation: (3, 3), scale: metres a pixel, translation: (3,) metres.
    """

    rotation: np.ndarray
    scale: float
    translation: np.ndarray

    def apply(self, points: np.ndarray) -> np.ndarray:
        """points: (N, 3) MediaPipe pixels. Returns (N, 3) float64 metres in rig space."""
        p = np.asarray(points, np.float64) @ IMAGE_TO_RIG
        return self.scale * p @ self.rotation.T + self.translation


def photo_landmarks() -> np.ndarray:
    """MediaPipe's 478 landmarks on skimage's astronaut photo: (478, 3) float64 pixels, on a 1/64 px grid.

    The rounding absorbs the last-bit differences between CPUs' inference
    kernels, so (almost surely) every machine builds the same rig.
    """
    from skimage import data

    from realtime.face.detector import LandmarkDetector

    with LandmarkDetector(static_image_mode=True) as detector:
        face = detector.detect_largest(data.astronaut())
    if face is None:
        raise NeutralError("MediaPipe found no face in skimage.data.astronaut()")
    return np.round(face.points.astype(np.float64) * 64.0) / 64.0


def mirror_map(points: np.ndarray) -> np.ndarray:
    """The mirror counterpart of every landmark: (478,) int64, an involution.

    points: (478, 3) in a frame whose x axis runs across the face. Face points
    and iris points are matched separately (an optimal assignment of each point
    to the reflection of another).
    """
    from scipy.optimize import linear_sum_assignment  # here, so reading a cached rig does not load scipy

    mirror = np.empty(N_LANDMARKS, dtype=np.int64)
    for ids in (np.arange(N_FACE), np.arange(N_FACE, N_LANDMARKS)):
        p = points[ids]
        reflected = p * np.array([-1.0, 1.0, 1.0])
        cost = ((reflected[:, None, :] - p[None, :, :]) ** 2).sum(-1)
        rows, cols = linear_sum_assignment(cost)
        mirror[ids[rows]] = ids[cols]
    return mirror


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _frame(p: np.ndarray, x_axis: np.ndarray) -> np.ndarray:
    """Rows x, y, z: x given, y along nasion -> chin reversed and made orthogonal to x."""
    y = p[NASION] - p[CHIN]
    y = _unit(y - x_axis * (x_axis @ y))
    return np.stack([x_axis, y, np.cross(x_axis, y)])


def metric_transform(pixels: np.ndarray) -> tuple[MetricTransform, np.ndarray]:
    """The similarity that puts these landmarks upright, facing +z, in metres; and their mirror map.

    pixels: (478, 3) MediaPipe pixels. Returns (transform, mirror (478,) int64).
    """
    p = np.asarray(pixels, np.float64) @ IMAGE_TO_RIG
    rough = _frame(p, _unit(p[OUTER_EYE_CORNERS[1]] - p[OUTER_EYE_CORNERS[0]]))
    mirror = mirror_map((p - p[NASION]) @ rough.T)
    pairs = mirror != np.arange(N_LANDMARKS)
    diff = (p[mirror] - p)[pairs]
    normal = np.linalg.eigh(diff.T @ diff)[1][:, -1]
    normal = normal if normal @ rough[0] > 0 else -normal
    rotation = _frame(p, normal)
    scale = INTERPUPIL_DISTANCE / np.linalg.norm(p[LEFT_IRIS_CENTER] - p[RIGHT_IRIS_CENTER])
    q = scale * p @ rotation.T
    eyes = q[[LEFT_IRIS_CENTER, RIGHT_IRIS_CENTER]] - np.array([0.0, 0.0, EYEBALL_RADIUS])
    mid_plane_x = np.mean(q[:N_FACE, 0] + q[mirror[:N_FACE], 0]) / 2  # the mirror plane's offset
    translation = np.array([-mid_plane_x, EYE_CENTER_Y - eyes[:, 1].mean(), EYE_CENTER_Z - eyes[:, 2].mean()])
    return MetricTransform(rotation=rotation, scale=float(scale), translation=translation), mirror
