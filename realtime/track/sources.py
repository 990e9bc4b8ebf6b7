"""Frame sources: a webcam, a video file, a still image.

Every frame carries the monotonic clock reading of its capture (`time.monotonic_ns`)
and its index; sources with a timeline of their own (video files) also carry the
frame's media time. Images are (H, W, 3) uint8 RGB.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import numpy as np

from realtime.images import check_rgb


class SourceError(ValueError):
    """A frame source that cannot be opened or read, or a frame that is not an RGB image."""


def check_frame_image(image: object) -> np.ndarray:
    """Return `image` if it is an (H, W, 3) uint8 RGB array; raise SourceError naming the problem otherwise."""
    return check_rgb(image, "a frame", SourceError)


@dataclass(frozen=True, eq=False)
class Frame:
    """image: (H, W, 3) uint8 RGB; index: 0, 1, ... in the source's order; timestamp_ns: time.monotonic_ns() at
    capture; media_time: seconds on the source's own timeline (video files), else None."""

    image: np.ndarray
    index: int
    timestamp_ns: int
    media_time: float | None = None

    def __post_init__(self) -> None:
        check_frame_image(self.image)

    @property
    def time(self) -> float:
        """Seconds to filter and pace by: the media time when the source has one, else the capture clock."""
        return self.media_time if self.media_time is not None else self.timestamp_ns * 1e-9


class FrameSource:
    """Base of the sources: iterate for frames, `close()` (or use `with`) to release the device or file."""

    def __iter__(self) -> Iterator[Frame]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the source holds; safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class WebcamSource(FrameSource):
    """Frames from an OpenCV capture device (an index such as 0). Stops when the device stops giving frames."""

    def __init__(self, device: int = 0, width: int | None = None, height: int | None = None):
        import cv2

        self._cv2 = cv2
        self._capture = cv2.VideoCapture(int(device))
        if not self._capture.isOpened():
            self._capture.release()
            raise SourceError(f"cannot open webcam device {device}")
        if width:
            self._capture.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        if height:
            self._capture.set(cv2.CAP_PROP_FRAME_HEIGHT, height)

    def __iter__(self) -> Iterator[Frame]:
        index = 0
        while self._capture is not None:
            ok, bgr = self._capture.read()
            stamp = time.monotonic_ns()
            if not ok:
                return
            yield Frame(np.ascontiguousarray(bgr[:, :, ::-1]), index, stamp)
            index += 1

    def close(self) -> None:
        if self._capture is not None:
            self._capture.release()
            self._capture = None


class VideoFileSource(FrameSource):
    """Frames of a video file decoded with PyAV, with the file's frame rate and frame count.

    fps: the stream's average frame rate; frame_count: frames the container declares (or an estimate from the
    duration when it declares none). media_time of each frame is its presentation time in seconds.
    """

    def __init__(self, path: str | Path):
        import av

        self.path = Path(path)
        if not self.path.is_file():
            raise SourceError(f"video file not found: {self.path}")
        try:
            self._container = av.open(str(self.path))
        except (av.error.FFmpegError, ValueError) as err:
            raise SourceError(f"cannot read video file {self.path}: {err}") from err
        if not self._container.streams.video:
            self._container.close()
            raise SourceError(f"{self.path} has no video stream")
        stream = self._container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate
        if not rate:
            self._container.close()
            raise SourceError(f"{self.path} declares no frame rate")
        self.fps = float(rate)
        self.width, self.height = stream.codec_context.width, stream.codec_context.height
        count = stream.frames
        if not count and stream.duration is not None and stream.time_base is not None:
            count = int(round(float(stream.duration * stream.time_base) * self.fps))
        self.frame_count = int(count)

    def __iter__(self) -> Iterator[Frame]:
        import av

        if self._container is None:
            raise SourceError(f"video file {self.path} is closed")
        stream = self._container.streams.video[0]
        start = None
        try:
            for index, frame in enumerate(self._container.decode(stream)):
                image = frame.to_ndarray(format="rgb24")
                seconds = float(frame.time) if frame.time is not None else index / self.fps
                start = seconds if start is None else start
                yield Frame(image, index, time.monotonic_ns(), media_time=seconds - start)
        except av.error.FFmpegError as err:
            raise SourceError(f"cannot decode video file {self.path}: {err}") from err

    def close(self) -> None:
        if self._container is not None:
            self._container.close()
            self._container = None


class ImageSource(FrameSource):
    """One still image (a path or an RGB array) given `repeat` times; with `fps`, frames get media times
    index / fps (a perfectly still video), else they are stamped when taken."""

    def __init__(self, image: str | Path | np.ndarray, repeat: int = 1, fps: float | None = None):
        if isinstance(image, (str, Path)):
            image = read_image(image)
        self.image = check_frame_image(image)
        if repeat < 1:
            raise SourceError(f"repeat must be at least 1, got {repeat}")
        if fps is not None and fps <= 0:
            raise SourceError(f"fps must be positive, got {fps}")
        self.repeat, self.fps = int(repeat), fps

    def __iter__(self) -> Iterator[Frame]:
        for index in range(self.repeat):
            media = index / self.fps if self.fps else None
            yield Frame(self.image, index, time.monotonic_ns(), media_time=media)


def read_image(path: str | Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB (grey and alpha are converted); SourceError if unreadable."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise SourceError(f"image file not found: {path}")
    bgr = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if bgr is None:
        raise SourceError(f"cannot read image file {path}")
    return np.ascontiguousarray(bgr[:, :, ::-1])
