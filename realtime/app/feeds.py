"""Feeds: threads that play a driver (a camera source or a motion) into the live pipeline in real time.

* a video file plays in a loop at its own frame rate, as if it were a camera;
* a webcam delivers frames as fast as it captures them;
* a built-in motion (the expression tour) loops at its frame rate.

A browser sender needs no feed: the stream server pushes its frames.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from realtime.app.motions import Motion
from realtime.pipeline import LivePipeline
from realtime.track.sources import FrameSource, VideoFileSource, WebcamSource


class Feed:
    """Runs `play` in a daemon thread until `stop()`."""

    def __init__(self, pipeline: LivePipeline) -> None:
        self.pipeline = pipeline
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self.play, name=type(self).__name__, daemon=True)
        self.error: Exception | None = None

    def play(self) -> None:
        raise NotImplementedError

    def start(self) -> "Feed":
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _wait_until(self, deadline: float) -> bool:
        """Sleep until time.monotonic() reaches `deadline`; False if stopped meanwhile."""
        return not self._stop.wait(max(0.0, deadline - time.monotonic()))


CAMERA_FRESH_NS = 1_000_000_000


class MotionFeed(Feed):
    """Loops a motion at its frame rate. With `pause_while_camera`, it yields to camera frames:
    while the pipeline got one within the last second, the motion holds back (and resumes where it was)."""

    def __init__(self, pipeline: LivePipeline, motion: Motion, pause_while_camera: bool = False) -> None:
        super().__init__(pipeline)
        self.motion = motion
        self.pause_while_camera = pause_while_camera

    def play(self) -> None:
        start = time.monotonic()
        tick = index = 0
        while self._wait_until(start + tick / self.motion.fps):
            tick += 1
            if self.pause_while_camera and time.monotonic_ns() - self.pipeline.last_input_ns < CAMERA_FRESH_NS:
                continue
            self.pipeline.push_params(self.motion.frames[index % len(self.motion)])
            index += 1


class VideoFeed(Feed):
    """Plays a video file in a loop at its own frame rate; each frame is stamped when it is pushed."""

    def __init__(self, pipeline: LivePipeline, path: str | Path) -> None:
        VideoFileSource(path).close()  # fail now, in the caller, if the file is unreadable
        super().__init__(pipeline)
        self.path = Path(path)

    def play(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            with VideoFileSource(self.path) as source:
                for frame in source:
                    if not self._wait_until(start + frame.media_time):
                        return
                    self.pipeline.push_input(frame.image, time.monotonic_ns())


class WebcamFeed(Feed):
    """Pushes every frame an OpenCV camera captures."""

    def __init__(self, pipeline: LivePipeline, device: int = 0) -> None:
        super().__init__(pipeline)
        self._source: FrameSource = WebcamSource(device)

    def play(self) -> None:
        try:
            for frame in self._source:
                if self._stop.is_set():
                    return
                self.pipeline.push_input(frame.image, frame.timestamp_ns)
        except Exception as exc:  # a camera unplugged mid-call: keep serving, say why in stats/logs
            self.error = exc
        finally:
            self._source.close()
