"""Frame sources: video files (PyAV), still images, webcams; bad input gets clear errors."""

import time

import numpy as np
import pytest

from track_helpers import write_video
from realtime.track.sources import (Frame, ImageSource, SourceError, VideoFileSource, WebcamSource, check_frame_image,
                                    read_image)

COLOURS = [(200, 30, 30), (30, 200, 30), (30, 30, 200), (220, 220, 40), (40, 220, 220), (120, 120, 120)]


def test_video_file_frames_rate_and_times(tmp_path):
    path = tmp_path / "clip.mp4"
    write_video(path, COLOURS, fps=25)
    with VideoFileSource(path) as source:
        assert source.fps == pytest.approx(25.0)
        assert source.frame_count == len(COLOURS)
        assert (source.width, source.height) == (64, 48)
        before = time.monotonic_ns()
        frames = list(source)
    assert [f.index for f in frames] == list(range(len(COLOURS)))
    np.testing.assert_allclose([f.media_time for f in frames], np.arange(len(COLOURS)) / 25.0, atol=1e-6)
    assert [f.time for f in frames] == [f.media_time for f in frames]
    stamps = [f.timestamp_ns for f in frames]
    assert stamps[0] >= before and stamps == sorted(stamps)
    for frame, colour in zip(frames, COLOURS):
        assert frame.image.shape == (48, 64, 3) and frame.image.dtype == np.uint8
        np.testing.assert_allclose(frame.image.reshape(-1, 3).mean(0), colour, atol=8)


def test_unreadable_or_missing_video_is_a_clear_error(tmp_path):
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"this is not a video" * 100)
    with pytest.raises(SourceError, match="cannot read video file"):
        VideoFileSource(junk)
    with pytest.raises(SourceError, match="not found"):
        VideoFileSource(tmp_path / "missing.mp4")


def test_still_image_source(tmp_path):
    import cv2
    from skimage.data import astronaut

    image = astronaut()
    path = tmp_path / "face.png"
    cv2.imwrite(str(path), image[:, :, ::-1])
    np.testing.assert_array_equal(read_image(path), image)
    frames = list(ImageSource(path, repeat=4, fps=10))
    assert len(frames) == 4 and all(f.image is frames[0].image for f in frames)
    assert [f.media_time for f in frames] == [0.0, 0.1, 0.2, 0.3]
    live = list(ImageSource(image, repeat=2))
    assert live[0].media_time is None and live[1].time >= live[0].time
    with pytest.raises(SourceError, match="cannot read image"):
        (tmp_path / "bad.png").write_bytes(b"nope")
        read_image(tmp_path / "bad.png")


@pytest.mark.parametrize("bad, message", [
    (np.zeros((8, 8, 3), np.float32), "uint8"),
    (np.zeros((8, 8), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((8, 8, 4), np.uint8), r"\(H, W, 3\)"),
    (np.zeros((0, 8, 3), np.uint8), "empty"),
    ([[1, 2, 3]], "numpy array"),
])
def test_wrong_frames_are_refused(bad, message):
    with pytest.raises(SourceError, match=message):
        check_frame_image(bad)
    with pytest.raises(SourceError, match=message):
        Frame(bad, 0, 0)


def test_missing_webcam_is_a_clear_error():
    with pytest.raises(SourceError, match="cannot open webcam"):
        WebcamSource(device=97)
