import numpy as np
import pytest
from skimage import data
from skimage.transform import rescale

from realtime.face.detector import N_LANDMARKS, FaceLandmarks, LandmarkDetector, LandmarkError


@pytest.fixture(scope="module")
def photo():
    return data.astronaut()


@pytest.fixture(scope="module")
def static_face(photo):
    with LandmarkDetector(static_image_mode=True) as detector:
        faces = detector.detect(photo)
    assert len(faces) == 1
    return faces[0]


def test_static_detection_finds_the_face_in_pixels(photo, static_face):
    p = static_face.points
    assert p.shape == (N_LANDMARKS, 3) and p.dtype == np.float32
    # The astronaut's face sits around (225, 120) in the 512x512 photo, about 90 px wide.
    x0, y0, x1, y1 = static_face.bbox
    assert 160 < x0 < x1 < 290 and 60 < y0 < y1 < 200
    assert 70 < x1 - x0 < 120
    assert static_face.bbox_area == pytest.approx((x1 - x0) * (y1 - y0))
    # Subject's left eye (iris centre 473) appears on the image's right; the chin (152) is below the nose (1).
    assert p[473, 0] > p[468, 0] + 30
    assert p[152, 1] > p[1, 1] > p[10, 1]
    # z is relative depth scaled like x: the nose tip is nearer the camera (smaller z) than the cheeks.
    assert p[1, 2] < p[234, 2] - 20 and p[1, 2] < p[454, 2] - 20


def test_streaming_mode_tracks_a_moving_face(photo, static_face):
    with LandmarkDetector() as detector:
        for shift in range(0, 10, 2):
            moved = np.roll(photo, shift, axis=1)
            face = detector.detect_largest(moved)
            assert face is not None
            # Landmarks follow the image shift (allowing MediaPipe's few-pixel jitter).
            np.testing.assert_allclose(face.points[:, 0] - shift, static_face.points[:, 0], atol=4.0)
            np.testing.assert_allclose(face.points[:, 1], static_face.points[:, 1], atol=4.0)


def test_no_face_gives_empty_results():
    blank = np.full((240, 320, 3), 127, np.uint8)
    with LandmarkDetector(static_image_mode=True) as detector:
        assert detector.detect(blank) == []
        assert detector.detect_largest(blank) is None


def test_largest_face_is_picked_among_several(photo):
    face = photo[30:230, 120:330]  # the astronaut's head, 200x210
    small = (rescale(face, 0.6, channel_axis=2, anti_aliasing=True) * 255).astype(np.uint8)
    canvas = np.full((240, 420, 3), 200, np.uint8)
    canvas[20:20 + face.shape[0], 5:5 + face.shape[1]] = face
    canvas[60:60 + small.shape[0], 415 - small.shape[1]:415] = small
    with LandmarkDetector(static_image_mode=True, max_faces=2) as detector:
        faces = detector.detect(canvas)
        largest = detector.detect_largest(canvas)
    assert len(faces) == 2
    areas = sorted(f.bbox_area for f in faces)
    assert areas[1] > 2 * areas[0]  # (1 / 0.6)^2 = 2.8 times the area
    assert largest.bbox_area == areas[1]
    assert largest.points[:, 0].mean() < 210  # the big face is on the left


@pytest.mark.parametrize("image, message", [
    (np.zeros((64, 64, 3), np.float32), "uint8"),
    (np.zeros((64, 64), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((64, 64, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 64, 3), np.uint8), "empty"),
    ([[0, 0, 0]], "numpy array"),
])
def test_bad_images_are_refused_with_a_clear_error(image, message):
    with LandmarkDetector(static_image_mode=True) as detector:
        with pytest.raises(LandmarkError, match=message):
            detector.detect(image)


def test_tasks_model_path_is_checked_and_never_downloaded(tmp_path):
    with pytest.raises(LandmarkError, match=r"\.task"):
        LandmarkDetector(model_path=tmp_path / "face_landmarker.tflite")
    with pytest.raises(LandmarkError, match="not found"):
        LandmarkDetector(model_path=tmp_path / "missing.task")
    with pytest.raises(LandmarkError, match="max_faces"):
        LandmarkDetector(max_faces=0)


def test_closed_detector_refuses_work(photo):
    detector = LandmarkDetector(static_image_mode=True)
    detector.close()
    with pytest.raises(LandmarkError, match="closed"):
        detector.detect(photo)
    detector.close()  # closing twice is harmless


def test_face_landmarks_bbox_from_points():
    pts = np.zeros((N_LANDMARKS, 3), np.float32)
    pts[0] = (10, 20, 0)
    pts[1] = (50, 80, 5)
    pts[2:] = (30, 50, 0)
    face = FaceLandmarks(pts)
    assert face.bbox == (10.0, 20.0, 50.0, 80.0)
    assert face.bbox_area == 40.0 * 60.0


def test_landmark_lists_read_from_their_wire_format_and_otherwise():
    from mediapipe.framework.formats.landmark_pb2 import NormalizedLandmarkList

    from realtime.face.detector import _normalised_xyz

    xyz = np.random.default_rng(0).normal(size=(478, 3)).astype(np.float32)
    plain = NormalizedLandmarkList()
    for x, y, z in xyz:
        plain.landmark.add(x=x, y=y, z=z)
    np.testing.assert_array_equal(_normalised_xyz(plain), xyz)     # the 17-bytes-a-point layout
    extra = NormalizedLandmarkList()
    extra.CopyFrom(plain)
    extra.landmark[7].visibility = 0.5                             # one point with a fourth field
    np.testing.assert_array_equal(_normalised_xyz(extra), xyz)
    assert _normalised_xyz(NormalizedLandmarkList()).shape == (0, 3)
