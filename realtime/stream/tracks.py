"""WebRTC media tracks: one rendered stream fanned out to every viewer, and the
sender's camera drained into the producer.

Render once: ``FrameBroadcast.publish`` stamps each producer frame and converts it
to I420 once; every viewer's ``BroadcastTrack.recv`` then waits for a frame newer
than the one it last sent and returns the newest (a slow viewer skips frames, it
never queues them). aiortc still encodes per peer (one VP8 encoder per viewer,
about 2 ms a frame at 512x512 here), which also lets each peer follow its own
bandwidth estimate.
"""
from __future__ import annotations

import asyncio
import fractions
import time
from dataclasses import dataclass
from typing import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.images import check_rgb

from .latency import draw_stamp, stamp_value

VIDEO_CLOCK_HZ = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
MAX_INPUT_SIDE = 1280


@dataclass(frozen=True)
class StampedFrame:
    """A published frame, shared read-only by all viewers.

    yuv: (3 * (H + STAMP_ROWS) / 2, W) uint8, I420 planes as PyAV lays them out.
    pts: presentation time in 1/90000 s since the broadcast started.
    """

    seq: int
    yuv: np.ndarray
    pts: int
    capture_ts_ns: int
    published_ns: int
    timings: dict


def check_image(image: np.ndarray) -> None:
    """Raise ValueError unless ``image`` is a streamable (H, W, 3) uint8 RGB frame (even sides, for I420)."""
    check_rgb(image, "a frame image")
    h, w = image.shape[:2]
    if h % 2 or w % 2:
        raise ValueError(f"frame size must be even for I420 video, got {w}x{h}")


class FrameBroadcast:
    """The newest stamped frame and a way to wait for the next one.

    Not a second ``realtime.mailbox.Latest``: that hands each value to the one
    thread that takes it and counts unread values replaced; this keeps the newest
    frame for any number of asyncio readers, each waiting for one newer than the
    one it last had (what a viewer skips is counted by its ``BroadcastTrack``).
    """

    def __init__(self) -> None:
        self._latest: StampedFrame | None = None
        self._event = asyncio.Event()
        self._closed = False
        self._t0_ns: int | None = None

    @property
    def latest(self) -> StampedFrame | None:
        return self._latest

    def publish(self, image: np.ndarray, capture_ts_ns: int, timings: dict | None = None) -> StampedFrame:
        """Stamp ``image`` ((H, W, 3) uint8 RGB) with its capture time, convert it once, wake viewers."""
        check_image(image)
        strip = draw_stamp(stamp_value(capture_ts_ns), image.shape[1], image[-1])
        rgb = np.concatenate([image, strip], axis=0)
        yuv = av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray()
        yuv.flags.writeable = False
        now = time.monotonic_ns()
        if self._t0_ns is None:
            self._t0_ns = now
        seq = self._latest.seq + 1 if self._latest else 1
        pts = (now - self._t0_ns) * VIDEO_CLOCK_HZ // 1_000_000_000
        self._latest = StampedFrame(seq, yuv, pts, int(capture_ts_ns), now, dict(timings or {}))
        self._event.set()
        self._event = asyncio.Event()
        return self._latest

    async def next_after(self, seq: int) -> StampedFrame:
        """The newest frame with a sequence number above ``seq`` (waits for one)."""
        while True:
            if self._closed:
                raise MediaStreamError("the broadcast has ended")
            if self._latest is not None and self._latest.seq > seq:
                return self._latest
            await self._event.wait()

    def close(self) -> None:
        self._closed = True
        self._event.set()


class BroadcastTrack(MediaStreamTrack):
    """One viewer's outbound video track: the broadcast's newest frame, never a queue."""

    kind = "video"

    def __init__(self, broadcast: FrameBroadcast) -> None:
        super().__init__()
        self._broadcast = broadcast
        self._seq = 0
        self.sent = 0
        self.skipped = 0

    async def recv(self) -> av.VideoFrame:
        if self.readyState != "live":
            raise MediaStreamError("track ended")
        frame = await self._broadcast.next_after(self._seq)
        if self._seq:
            self.skipped += frame.seq - self._seq - 1
        self._seq = frame.seq
        self.sent += 1
        out = av.VideoFrame.from_ndarray(frame.yuv, format="yuv420p")
        out.pts = frame.pts
        out.time_base = VIDEO_TIME_BASE
        return out


def input_image(frame: av.VideoFrame, max_side: int = MAX_INPUT_SIDE) -> np.ndarray:
    """A received camera frame as (H, W, 3) uint8 RGB with even H and W, scaled down if its
    longer side exceeds ``max_side``."""
    scale = min(1.0, max_side / max(frame.width, frame.height))
    w = max(2, int(frame.width * scale) // 2 * 2)
    h = max(2, int(frame.height * scale) // 2 * 2)
    if (w, h) == (frame.width, frame.height):
        return frame.to_ndarray(format="rgb24")
    return frame.to_ndarray(format="rgb24", width=w, height=h)


async def drain(track: MediaStreamTrack, on_frame: Callable[[av.frame.Frame, int], None]) -> None:
    """Read ``track`` until it ends, handing every frame on at once.

    aiortc's receive queue has no bound, so it is read continuously and nothing
    accumulates there; ``on_frame(frame, arrival_ns)`` gets each decoded frame
    and the server's monotonic arrival time, and must not block.
    """
    while True:
        try:
            frame = await track.recv()
        except MediaStreamError:
            return
        on_frame(frame, time.monotonic_ns())
