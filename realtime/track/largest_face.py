"""Landmarks of the largest face in view, at the cost of following one.

MediaPipe's FaceMesh asked for N faces runs its face detector on every frame while fewer than N are in view
(1.6 ms a frame on this 2-core CPU, half again the landmark model's cost); asked for one, it runs the detector
only when it has lost the face, and then follows whichever face scored best, not the largest.

`LargestFaceLandmarks` follows one face with FaceMesh and looks over the whole frame with the face detector on
the first frame and then every `check_every` frames. When the detector sees a face clearly larger than the one
followed (`switch_ratio` in box area), FaceMesh restarts on a copy of the frame in which only that face is
visible, and follows it from the next frame on. A switch costs one restart (10-30 ms, once); a look costs one
detector run (1.6 ms) every `check_every` frames.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.face.detector import FaceBoxes, FaceLandmarks, LandmarkDetector, check_image

KEEP_AROUND = 1.0  # the visible region around a new face: its detector box grown by this much of its size per side


def box_area(boxes: np.ndarray) -> np.ndarray:
    """(F,) areas of (F, 4) boxes (x0, y0, x1, y1)."""
    return np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0.0), axis=1)


def boxes_containing(boxes: np.ndarray, point: np.ndarray) -> np.ndarray:
    """(F,) bool: which of (F, 4) boxes contain the (2,) point."""
    return np.all((boxes[:, :2] <= point) & (point <= boxes[:, 2:]), axis=1)


def only_region(image: np.ndarray, box: np.ndarray, grow: float = KEEP_AROUND) -> np.ndarray:
    """A copy of (H, W, 3) `image`, black outside `box` (4,) grown by `grow` times its width and height per side."""
    size = box[2:] - box[:2]
    lo = np.floor(np.maximum(box[:2] - grow * size, 0.0)).astype(int)
    hi = np.ceil(np.minimum(box[2:] + grow * size, image.shape[1::-1])).astype(int)
    out = np.zeros_like(image)
    out[lo[1]:hi[1], lo[0]:hi[0]] = image[lo[1]:hi[1], lo[0]:hi[0]]
    return out


class LargestFaceLandmarks:
    """Streaming landmarks of the largest face (see the module doc), with LandmarkDetector's `detect_largest`.

    check_every: frames between looks for a larger face (1: every frame)
    switch_ratio: how much larger (in detector box area) another face must be to take over
    model_path: a FaceLandmarker `.task` file instead of the bundled FaceMesh (see LandmarkDetector)
    """

    def __init__(self, check_every: int = 30, switch_ratio: float = 1.25, model_path: str | Path | None = None):
        if check_every < 1:
            raise ValueError(f"check_every must be at least 1, got {check_every}")
        self.check_every = check_every
        self.switch_ratio = switch_ratio
        self._landmarks = LandmarkDetector(static_image_mode=False, max_faces=1, model_path=model_path)
        self._boxes = FaceBoxes()
        self._followed: FaceLandmarks | None = None
        self._since_check = 0
        self.switches = 0

    def detect_largest(self, image: np.ndarray, timestamp_ms: int | None = None) -> FaceLandmarks | None:
        """The landmarks of the largest face in `image` ((H, W, 3) uint8 RGB), or None when there is none."""
        image = check_image(image)
        self._since_check += 1
        if self._followed is None or self._since_check >= self.check_every:
            self._since_check = 0
            target = self._larger_face(self._boxes.detect(image))
            if target is not None:
                if self._followed is not None:
                    self._landmarks.reset()
                    self.switches += 1
                image = only_region(image, target)
        self._followed = self._landmarks.detect_largest(image, timestamp_ms)
        return self._followed

    def _larger_face(self, boxes: np.ndarray) -> np.ndarray | None:
        """The box (4,) of the face to follow from now on, or None to go on as before: the largest box when no
        face is followed, or when the followed face is not in it and it is `switch_ratio` times the followed
        face's box (the followed face keeps its place when the detector misses it)."""
        if len(boxes) == 0:
            return None
        areas = box_area(boxes)
        largest = int(np.argmax(areas))
        if self._followed is None:
            return boxes[largest]
        centre = self._followed.points[:, :2].mean(0)
        own = boxes_containing(boxes, centre)
        if not own.any() or own[largest]:
            return None
        return boxes[largest] if areas[largest] > self.switch_ratio * areas[own].max() else None

    def close(self) -> None:
        self._landmarks.close()
        self._boxes.close()

    def __enter__(self) -> "LargestFaceLandmarks":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
