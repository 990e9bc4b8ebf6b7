"""The sound of a video file, for a feed that plays the file as a camera (``feeds.VideoFeed``).

Frames come decoded (whatever the file holds: AAC, Opus, PCM...; the stream server's voice relay resamples and
encodes them) with their time on the picture's timeline: seconds from the file's first video frame, the
``media_time`` that ``realtime.track.sources.VideoFileSource`` gives the pictures, so sound and picture keep
the alignment the file has.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import av


def has_sound(path: str | Path) -> bool:
    """Whether the file has an audio stream (False for an unreadable file: the picture's reader says why)."""
    try:
        with av.open(str(path)) as container:
            return bool(container.streams.audio)
    except (av.FFmpegError, OSError):
        return False


def file_sound(path: str | Path) -> Iterator[tuple[float, av.AudioFrame]]:
    """``(media_time_s, frame)`` for each decoded frame of the file's first audio stream, in order; media time is
    counted from the first video frame (the video stream's start time), so it may start below 0."""
    with av.open(str(path)) as container:
        audio = container.streams.audio[0]
        video = container.streams.video[0] if container.streams.video else None
        origin = float(video.start_time * video.time_base) if video is not None and video.start_time is not None \
            else 0.0
        for frame in container.decode(audio):
            if frame.time is not None:
                yield frame.time - origin, frame
