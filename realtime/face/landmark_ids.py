"""MediaPipe FaceMesh landmark ids the fitter uses (facts of MediaPipe's 478-point topology).

The contour groups are the vertex sets of MediaPipe's FACEMESH_* connection lists
(checked against mediapipe in the tests), written out here so that fitting does not
import mediapipe. "Left" and "right" are the subject's: the left eye shows on the
right of a non-mirrored image and belongs to the rig's `left_eye` joint (+x).
"""

from __future__ import annotations

import numpy as np

N_FACE = 468  # face-mesh points; 468..477 are the iris points (refine_landmarks=True)
N_LANDMARKS = 478

LIPS = (0, 13, 14, 17, 37, 39, 40, 61, 78, 80, 81, 82, 84, 87, 88, 91, 95, 146, 178, 181, 185, 191, 267, 269, 270,
        291, 308, 310, 311, 312, 314, 317, 318, 321, 324, 375, 402, 405, 409, 415)
LEFT_EYE = (249, 263, 362, 373, 374, 380, 381, 382, 384, 385, 386, 387, 388, 390, 398, 466)
RIGHT_EYE = (7, 33, 133, 144, 145, 153, 154, 155, 157, 158, 159, 160, 161, 163, 173, 246)
LEFT_EYEBROW = (276, 282, 283, 285, 293, 295, 296, 300, 334, 336)
RIGHT_EYEBROW = (46, 52, 53, 55, 63, 65, 66, 70, 105, 107)
NOSE = (1, 2, 4, 5, 6, 19, 45, 48, 64, 94, 97, 98, 115, 168, 195, 197, 220, 275, 278, 294, 326, 327, 344, 440)
FACE_OVAL = (10, 21, 54, 58, 67, 93, 103, 109, 127, 132, 136, 148, 149, 150, 152, 162, 172, 176, 234, 251, 284, 288,
             297, 323, 332, 338, 356, 361, 365, 377, 378, 379, 389, 397, 400, 454)
# Cheeks and forehead: surface points that move with squints, puffs and brow raises.
CHEEKS = (50, 280, 101, 330, 205, 425, 117, 346, 123, 352, 151, 9, 108, 337)
# The skin round the mouth corners (both sides, mirror pairs): MediaPipe places these nearly as faithfully as the
# corners themselves when the corners move (about 80 % of a rendered smile's motion, against under half for the
# cheek points), so they carry the corner shapes (smile, stretch, dimple, frown) where the lip contour alone is
# ambiguous.
PERIORAL = (43, 57, 62, 76, 77, 96, 183, 184, 212, 214, 273, 287, 292, 306, 307, 325, 407, 408, 432, 434)
LEFT_IRIS = (473, 474, 475, 476, 477)   # centre first
RIGHT_IRIS = (468, 469, 470, 471, 472)  # centre first
LEFT_IRIS_CENTER, LEFT_IRIS_RIM = LEFT_IRIS[0], LEFT_IRIS[1:]
RIGHT_IRIS_CENTER, RIGHT_IRIS_RIM = RIGHT_IRIS[0], RIGHT_IRIS[1:]

# Mouth corners (the outer lip contour's ends: cheilion), the subject's right and left.
RIGHT_MOUTH_CORNER, LEFT_MOUTH_CORNER = 61, 291

# Eye corners (outer, inner), for gaze relative to the eye opening.
LEFT_EYE_CORNERS = (263, 362)
RIGHT_EYE_CORNERS = (33, 133)


def fit_ids() -> np.ndarray:
    """(L,) int64 sorted MediaPipe ids the per-frame fit uses: contours of lips, eyes, brows, nose, face oval,
    cheek points and the skin round the mouth corners (186 ids; the iris points are left to the gaze step)."""
    groups = (LIPS, LEFT_EYE, RIGHT_EYE, LEFT_EYEBROW, RIGHT_EYEBROW, NOSE, FACE_OVAL, CHEEKS, PERIORAL)
    return np.array(sorted({i for g in groups for i in g}), dtype=np.int64)


def landmark_weights(ids: np.ndarray) -> np.ndarray:
    """(L,) float64 fitting weight of each id: the face oval slides along the jaw line in MediaPipe's output,
    so it counts half."""
    oval = np.isin(ids, FACE_OVAL)
    return np.where(oval, 0.5, 1.0)
