"""Feeds: threads that play a driver (a camera source or a motion) into the live pipeline in real time.

* a video file plays in a loop at its own frame rate, as if it were a camera, with its sound when it has some
  (given to ``Feed.voice``, the stream server's voice relay, stamped on the pictures' clock);
* a webcam delivers frames as fast as it captures them;
* a built-in motion (the expression tour) loops at its frame rate.

A browser sender needs no feed: the stream server pushes its frames.
"""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path

import av

from realtime.app.motions import Motion
from realtime.app.sound import file_sound, has_sound
from realtime.pipeline import LivePipeline
from realtime.track.sources import FrameSource, VideoFileSource, WebcamSource

log = logging.getLogger(__name__)


class Feed:
    """Runs `play` in a daemon thread until `stop()`. voice: where a feed with sound sends it, set before
    `start` (anything with `push_threadsafe(frame: av.AudioFrame, capture_ns)`: the stream server's VoiceRelay);
    None: the sound is not played."""

    def __init__(self, pipeline: LivePipeline) -> None:
        self.pipeline = pipeline
        self.voice = None
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
    """Plays a video file in a loop at its own frame rate, and its sound (to `voice`) beside it; each picture and
    each sound frame is stamped when it is pushed, at its media time. The picture's length rules the loop: sound
    past the last picture is cut."""

    def __init__(self, pipeline: LivePipeline, path: str | Path) -> None:
        VideoFileSource(path).close()  # fail now, in the caller, if the file is unreadable
        super().__init__(pipeline)
        self.path = Path(path)
        self.has_sound = has_sound(path)
        self.sound_error: str | None = None

    def play(self) -> None:
        while not self._stop.is_set():
            start = time.monotonic()
            sound = file_sound(self.path) if self.has_sound and self.voice is not None else None
            pending = self._next_sound(sound)
            try:
                with VideoFileSource(self.path) as source:
                    for frame in source:
                        while pending is not None and pending[0] <= frame.media_time:  # sound due before it
                            if not self._wait_until(start + pending[0]):
                                return
                            self.voice.push_threadsafe(pending[1], time.monotonic_ns())
                            pending = self._next_sound(sound)
                        if not self._wait_until(start + frame.media_time):
                            return
                        self.pipeline.push_input(frame.image, time.monotonic_ns())
            finally:
                if sound is not None:
                    sound.close()

    def _next_sound(self, sound) -> tuple | None:
        """The next (media time, frame) of the sound, or None at its end; a sound that cannot be decoded is
        given up (logged once, kept in `sound_error`): the pictures play on."""
        if sound is None or self.sound_error is not None:
            return None
        try:
            return next(sound, None)
        except (av.FFmpegError, ValueError) as exc:
            self.sound_error = f"{type(exc).__name__}: {exc}"
            log.error("the sound of %s cannot be decoded; playing the pictures only: %s", self.path, exc)
            return None


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
