"""WebRTC media tracks: one encoded stream fanned out to every viewer, and the sender's camera drained into
the producer.

Encode once (``encoder.py``): the server publishes each encoded frame into a
``FrameBroadcast``; every viewer's ``BroadcastTrack`` hands the same ``av.Packet``
to its aiortc sender, which only packetizes it. Encoded frames depend on the ones
before them, so a viewer gets every frame in order from where it joined; a new
viewer starts at a keyframe (it asks for one, and gets the next one encoded), and
a viewer that falls more than ``RING`` frames behind skips ahead to a fresh
keyframe instead of queueing (the frames it skipped are counted).
"""
from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from realtime.images import check_rgb

from .encoder import VIDEO_CLOCK_HZ

MAX_INPUT_SIDE = 1280
RING = 16  # encoded frames kept for viewers that are a little behind: 0.64 s at 25 fps
MIN_KEYFRAME_GAP_NS = 200_000_000  # forced keyframes (joins, requests) at most five a second


@dataclass(frozen=True)
class EncodedFrame:
    """A published frame, shared read-only by all viewers.

    packet: the encoded frame (``pts`` in 1/90000 s, the RTP timestamp each viewer's sender gives it, plus that
    sender's random offset); pts: the same number; keyframe: whether a decoder can start here;
    capture_ts_ns: monotonic time the input that drove the frame was captured; published_ns: when it was
    published; timings: milliseconds per stage, ``encode`` included.
    """

    seq: int
    packet: av.Packet
    keyframe: bool
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
    """The last ``ring`` encoded frames, in order, for any number of asyncio readers, and the stream's clock.

    Not a second ``realtime.mailbox.Latest``: that hands each value to the one thread that takes it; here
    every reader reads every frame (an encoded frame needs the ones before it) until it falls out of the ring.
    Keyframe requests from readers are collected here for the encoding loop (``take_keyframe_request``), which
    acts on them at most once every ``MIN_KEYFRAME_GAP_NS`` (a keyframe costs every viewer several frames' bits).
    """

    def __init__(self, ring: int = RING) -> None:
        if ring < 2:
            raise ValueError(f"ring must hold at least 2 frames, got {ring}")
        self._ring: deque[EncodedFrame] = deque(maxlen=ring)
        self._event = asyncio.Event()
        self._closed = False
        self._t0_ns: int | None = None
        self._last_pts = -1
        self._keyframe_wanted = False
        self._last_forced_ns: int | None = None
        self.keyframe_requests = 0

    @property
    def latest(self) -> EncodedFrame | None:
        return self._ring[-1] if self._ring else None

    def newest_latency(self) -> tuple[int, float] | None:
        """(seq, capture → published in ms) of the newest frame: the video latency the voice follows
        (``lipsync.py``); None before the first frame."""
        frame = self.latest
        return None if frame is None else (frame.seq, (frame.published_ns - frame.capture_ts_ns) / 1e6)

    def next_pts(self, now_ns: int | None = None) -> int:
        """The pts of a frame entering the encoder now: 90 kHz ticks since the first frame, increasing."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if self._t0_ns is None:
            self._t0_ns = now_ns
        self._last_pts = max(self._last_pts + 1, (now_ns - self._t0_ns) * VIDEO_CLOCK_HZ // 1_000_000_000)
        return self._last_pts

    def request_keyframe(self) -> None:
        self.keyframe_requests += 1
        self._keyframe_wanted = True

    def take_keyframe_request(self, now_ns: int | None = None) -> bool:
        """Whether to force a keyframe now: one was asked for and none was forced in the last
        ``MIN_KEYFRAME_GAP_NS`` (the request is then consumed; otherwise it waits)."""
        now_ns = time.monotonic_ns() if now_ns is None else now_ns
        if not self._keyframe_wanted or (self._last_forced_ns is not None
                                         and now_ns - self._last_forced_ns < MIN_KEYFRAME_GAP_NS):
            return False
        self._keyframe_wanted, self._last_forced_ns = False, now_ns
        return True

    def publish(self, packet: av.Packet, capture_ts_ns: int, timings: dict | None = None) -> EncodedFrame:
        """Add an encoded frame and wake the readers."""
        seq = self._ring[-1].seq + 1 if self._ring else 1
        frame = EncodedFrame(seq, packet, bool(packet.is_keyframe), int(packet.pts), int(capture_ts_ns),
                             time.monotonic_ns(), dict(timings or {}))
        self._ring.append(frame)
        self._event.set()
        self._event = asyncio.Event()
        return frame

    async def next_after(self, seq: int) -> EncodedFrame | None:
        """Frame ``seq + 1`` (waits for it); None when it has already left the ring (the reader fell behind)."""
        while True:
            if self._closed:
                raise MediaStreamError("the broadcast has ended")
            if self._ring and self._ring[-1].seq > seq:
                first = self._ring[0].seq
                return self._ring[seq + 1 - first] if seq + 1 >= first else None
            await self._event.wait()

    async def keyframe_from(self, seq: int) -> EncodedFrame:
        """The first keyframe numbered ``seq`` or later (waits for one)."""
        while True:
            if self._closed:
                raise MediaStreamError("the broadcast has ended")
            for frame in self._ring:
                if frame.seq >= seq and frame.keyframe:
                    return frame
            await self._event.wait()

    def close(self) -> None:
        self._closed = True
        self._event.set()


class BroadcastTrack(MediaStreamTrack):
    """One viewer's outbound video track: the broadcast's encoded frames, in order, from a keyframe on.

    on_sent(frame): called with each frame as it is handed to the sender (the session sends its capture time).
    """

    kind = "video"

    def __init__(self, broadcast: FrameBroadcast, on_sent: Callable[[EncodedFrame], None] | None = None) -> None:
        super().__init__()
        self._broadcast = broadcast
        self._on_sent = on_sent
        self._seq = 0
        self.sent = 0
        self.skipped = 0
        self.resyncs = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError("track ended")
        frame = await self._broadcast.next_after(self._seq) if self._seq else None
        if frame is None:
            frame = await self._start()
        self._seq = frame.seq
        self.sent += 1
        if self._on_sent is not None:
            self._on_sent(frame)
        return frame.packet

    async def _start(self) -> EncodedFrame:
        """Join (or rejoin after falling behind) at a keyframe: the newest frame when it is one, else the next,
        asked for now."""
        latest = self._broadcast.latest
        if self._seq:
            self.resyncs += 1
        if latest is None or not latest.keyframe:
            self._broadcast.request_keyframe()
        frame = await self._broadcast.keyframe_from(latest.seq if latest else 1)
        if self._seq:
            self.skipped += frame.seq - self._seq - 1
        return frame


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
