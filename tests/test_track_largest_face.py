"""The largest-face follower: FaceMesh follows one face; the face detector's look every few frames hands over to
a clearly larger face."""

import numpy as np
import pytest
from skimage import data

from realtime.face.detector import FaceBoxes
from realtime.track.largest_face import LargestFaceLandmarks, box_area, boxes_containing, only_region


@pytest.fixture(scope="module")
def head():
    return data.astronaut()[0:300, 100:400]  # the astronaut's head and shoulders, 300x300


def canvas_with(head, faces: list[tuple[int, int, int]]) -> np.ndarray:
    """A 640x400 grey canvas with the head pasted at (x, y, size) for each face."""
    import cv2

    canvas = np.full((400, 640, 3), 120, np.uint8)
    for x, y, size in faces:
        canvas[y:y + size, x:x + size] = cv2.resize(head, (size, size), interpolation=cv2.INTER_AREA)
    return canvas


SMALL = (400, 100, 240)     # on the right (the short-range detector needs faces about a tenth of the frame wide)
BIG = (0, 10, 380)          # on the left, 2.4 times the small face's detector box
SIMILAR = (0, 80, 260)      # on the left, 1.15 times


def mean_x(face) -> float:
    return float(face.points[:, 0].mean())


def test_box_helpers():
    boxes = np.array([[0, 0, 10, 20], [5, 5, 6, 6]], np.float32)
    np.testing.assert_allclose(box_area(boxes), [200, 1])
    np.testing.assert_array_equal(boxes_containing(boxes, np.array([5.5, 5.5])), [True, True])
    np.testing.assert_array_equal(boxes_containing(boxes, np.array([8.0, 15.0])), [True, False])
    image = np.full((100, 100, 3), 200, np.uint8)
    kept = only_region(image, np.array([40, 40, 50, 60], np.float32), grow=1.0)
    assert kept[35, 45].tolist() == [200] * 3 and kept[79, 59].tolist() == [200] * 3  # inside the grown box
    assert kept[10, 10].tolist() == [0] * 3 and kept[45, 65].tolist() == [0] * 3      # outside it
    assert image[10, 10].tolist() == [200] * 3                                        # the input is untouched


def test_face_boxes_find_both_faces_in_pixels(head):
    with FaceBoxes() as boxes:
        found = boxes.detect(canvas_with(head, [SMALL, BIG]))
        assert boxes.detect(np.full((120, 160, 3), 90, np.uint8)).shape == (0, 4)
    assert found.shape == (2, 4)
    left, right = found[np.argsort(found[:, 0])]
    assert left[2] < 380 < right[0]                      # one box in each pasted square
    assert box_area(left[None])[0] > 2 * box_area(right[None])[0]


def test_a_larger_face_takes_over_at_the_next_look(head):
    alone, both = canvas_with(head, [SMALL]), canvas_with(head, [SMALL, BIG])
    with LargestFaceLandmarks(check_every=10) as follower:
        firsts = [follower.detect_largest(alone) for _ in range(5)]
        assert all(mean_x(f) > 400 for f in firsts)      # the only face there is
        later = [follower.detect_largest(both) for _ in range(12)]
    # looks at frames 1, 11, 21...: frames 6-10 keep following the small face, the look at frame 11 switches
    assert all(mean_x(f) > 400 for f in later[:5])
    assert all(f is not None and mean_x(f) < 380 for f in later[5:])
    assert follower.switches == 1


def test_the_first_face_is_the_largest_and_a_similar_one_does_not_take_over(head):
    with LargestFaceLandmarks(check_every=3) as follower:
        first = follower.detect_largest(canvas_with(head, [SMALL, BIG]))
        assert mean_x(first) < 380 and follower.switches == 0
    with LargestFaceLandmarks(check_every=3) as follower:
        for _ in range(3):
            follower.detect_largest(canvas_with(head, [SMALL]))
        faces = [follower.detect_largest(canvas_with(head, [SMALL, SIMILAR])) for _ in range(9)]
    assert all(mean_x(f) > 400 for f in faces) and follower.switches == 0


def test_no_face_then_a_face(head):
    with LargestFaceLandmarks(check_every=30) as follower:
        assert follower.detect_largest(np.full((400, 640, 3), 120, np.uint8)) is None
        assert mean_x(follower.detect_largest(canvas_with(head, [SMALL]))) > 400
    with pytest.raises(ValueError, match="check_every"):
        LargestFaceLandmarks(check_every=0)


def test_the_tracker_calibrates_anew_when_a_larger_face_takes_over(head):
    from realtime.rig.builtin import builtin_rig
    from realtime.track.tracker import Tracker, TrackerSettings

    alone, both = canvas_with(head, [SMALL]), canvas_with(head, [SMALL, BIG])
    with Tracker(builtin_rig(), settings=TrackerSettings(face_check_every=8, calibration_frames=3)) as tracker:
        for _ in range(6):
            tracker.track(alone)
        assert tracker.calibrated
        calibrated = []
        for _ in range(8):
            result = tracker.track(both)
            calibrated.append(tracker.calibrated)
    # the look at frame 9 hands over to the big face: its first three frames calibrate the new identity
    assert calibrated == [True, True, False, False, True, True, True, True]
    assert result.face_found and result.landmarks[:, 0].mean() < 380
