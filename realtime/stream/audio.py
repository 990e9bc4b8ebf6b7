"""The voice: one sender's microphone (or a feed's sound) relayed to every viewer, in step with the mouth.

Path of a voice frame::

    sender's audio track ─► drain (aiortc decodes Opus, G.722, PCMU, PCMA) ─► VoiceRelay.push(frame, capture)
    a feed's sound (a video file played as a camera) ─► VoiceRelay.push_threadsafe(frame, capture)
        ─► delay line: held until capture + the video's camera→output latency, less Opus's look-ahead
           (``lipsync.py``)
        ─► encoded once to Opus (``VoiceEncoder``: 48 kHz mono, 20 ms frames)
        ─► a ring of the newest ``RING`` packets ─► every viewer's ``VoiceTrack`` ─► aiortc packetizes it

Encode once, as for the video: a ``VoiceTrack`` hands aiortc ``av.Packet`` objects, so aiortc's sender only
packetizes them (``OpusEncoder.pack``: the RTP timestamp is the packet's pts plus the sender's random
origin) and never runs an Opus encoder per viewer. aiortc has no way to forward the received Opus payloads
themselves (its receiver always decodes), and a decoded hop is what lets the voice be held back, mixed from a
file, or come in any codec aiortc decodes.

The packets' pts follow the voice's capture times: they run on in 20 ms steps, and jump by the pause when
the capture times do (more than ``GAP_SAMPLES`` past where the steps have got to: the voice stopped and came
back), so a receiver's jitter buffer sees the timeline the voice was spoken on. Neither the delay line's
wake-up jitter nor a change of the delay moves them (a jump a receiver is not told about by a gap in arrivals
is played as concealment and buffered for ever after). aiortc's sender reports map them onto the wall clock at
the time they are sent, like the video's (``lipsync.py`` says why that is what puts them in step).

Everything is bounded: the delay line holds at most ``MAX_HELD`` frames (more than ``MAX_DELAY_MS`` of
20 ms frames; beyond that the oldest are dropped and counted), the ring ``RING`` packets, and a viewer that
falls further behind skips to the newest packet (the packets it missed are counted). A frame that cannot be
resampled or encoded is dropped, counted and logged once; the relay and the video carry on.
"""
from __future__ import annotations

import asyncio
import fractions
import logging
import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable

import av
import numpy as np
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from .lipsync import OPUS_LOOKAHEAD_NS, LipSync

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
FRAME_SAMPLES = 960  # 20 ms, what WebRTC peers send
AUDIO_TIME_BASE = fractions.Fraction(1, SAMPLE_RATE)
OPUS_BITRATE = 32_000  # a voice, mono
RING = 25  # packets kept for the viewers' senders: 0.5 s
MAX_HELD = 64  # frames in the delay line: 1.28 s of 20 ms frames
MAX_WAIT_S = 0.02  # the delay line looks again at least this often (the delay may change meanwhile)
GAP_SAMPLES = 3 * FRAME_SAMPLES  # capture times this far ahead of the timestamps are a pause: they jump
SILENT_DBFS = -90.0  # the level reported for digital silence


def level_dbfs(frame: av.AudioFrame) -> float:
    """The RMS level of a frame in dB of full scale (SILENT_DBFS for silence); any sample format."""
    samples = frame.to_ndarray().astype(np.float64)
    if frame.format.name.startswith("s16"):
        samples /= 32768.0
    elif frame.format.name.startswith("s32"):
        samples /= 2147483648.0
    rms = math.sqrt(float(np.mean(samples * samples))) if samples.size else 0.0
    return max(SILENT_DBFS, 20 * math.log10(rms)) if rms > 0 else SILENT_DBFS


class VoiceEncoder:
    """Opus, once for every viewer: any decoded audio frame in, 20 ms mono packets out, pts as given.

    The input is resampled to 48 kHz mono s16 in ``FRAME_SAMPLES`` frames; the resampler is rebuilt when the
    input's format, layout or rate changes (a new sender), so any source works one after the other.
    """

    def __init__(self, bitrate: int = OPUS_BITRATE) -> None:
        self._codec = av.CodecContext.create("libopus", "w")
        self._codec.bit_rate = bitrate
        self._codec.format = "s16"
        self._codec.layout = "mono"
        self._codec.sample_rate = SAMPLE_RATE
        self._codec.time_base = AUDIO_TIME_BASE
        self._codec.options = {"application": "voip"}
        self._resampler: av.AudioResampler | None = None
        self._input: tuple | None = None
        self._samples = 0

    def encode(self, frame: av.AudioFrame) -> list[av.Packet]:
        """Encode one frame; the packets come back in order, each 20 ms, their pts left for the caller."""
        shape = (frame.format.name, frame.layout.name, frame.sample_rate)
        if shape != self._input:
            self._resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE,
                                                frame_size=FRAME_SAMPLES)
            self._input = shape
        frame.pts = None  # the resampler counts its own samples
        packets = []
        for chunk in self._resampler.resample(frame):
            chunk.pts, self._samples = self._samples, self._samples + chunk.samples
            packets += self._codec.encode(chunk)
        return packets


@dataclass(frozen=True)
class VoicePacket:
    """A published voice packet, shared read-only by every viewer's sender: seq counts from 1; packet.pts is in
    1/48000 s."""

    seq: int
    packet: av.Packet


class VoiceRelay:
    """The server's voice: pushed frames, held for lip sync, encoded once, read by every viewer's VoiceTrack.

    The delay follows the video latency that ``newest_video()`` (given to ``start``) returns: ``(seq,
    capture → published ms)`` of the newest video frame, or None. Frames pushed before ``start`` or after
    ``stop`` are dropped (counted).
    """

    def __init__(self, ring: int = RING, max_held: int = MAX_HELD, bitrate: int = OPUS_BITRATE) -> None:
        if ring < 2 or max_held < 1:
            raise ValueError(f"ring must hold at least 2 packets and max_held at least 1, got {ring}, {max_held}")
        self.lipsync = LipSync()
        self._encoder = VoiceEncoder(bitrate)
        self._held: deque[tuple[av.AudioFrame, int]] = deque()
        self._max_held = max_held
        self._ring: deque[VoicePacket] = deque(maxlen=ring)
        self._published = asyncio.Event()
        self._pushed = asyncio.Event()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._task: asyncio.Task | None = None
        self._newest_video: Callable[[], tuple[int, float] | None] = lambda: None
        self._closed = False
        self._t0_ns: int | None = None
        self._next_pts = 0
        self.frames_in = 0
        self.packets_out = 0
        self.dropped = 0  # frames pushed while not running, or pushed out of a full delay line
        self.bad_frames = 0
        self.bad_frame_error: str | None = None
        self.level_dbfs = SILENT_DBFS  # of the newest frame pushed
        self.last_frame_ns: int | None = None

    # -- lifetime ------------------------------------------------------------------------------------------
    def start(self, newest_video: Callable[[], tuple[int, float] | None]) -> None:
        """Start releasing frames, in the running event loop."""
        self._newest_video = newest_video
        self._loop = asyncio.get_running_loop()
        self._published, self._pushed = asyncio.Event(), asyncio.Event()
        self._task = self._loop.create_task(self._run(), name="voice-relay")

    async def stop(self) -> None:
        self._closed = True
        self._published.set()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    # -- in --------------------------------------------------------------------------------------------------
    def push(self, frame: av.AudioFrame, capture_ns: int) -> None:
        """A decoded voice frame captured at ``capture_ns`` (monotonic, the camera frames' clock); from the event
        loop's thread, never blocks."""
        if self._task is None or self._closed:
            self.dropped += 1
            return
        self.frames_in += 1
        self.last_frame_ns = time.monotonic_ns()
        try:
            self.level_dbfs = level_dbfs(frame)
        except (ValueError, TypeError) as exc:  # a frame numpy cannot read: the encoder would refuse it too
            self._bad(exc)
            return
        if len(self._held) >= self._max_held:
            self._held.popleft()
            self.dropped += 1
        self._held.append((frame, int(capture_ns)))
        self._pushed.set()

    def push_threadsafe(self, frame: av.AudioFrame, capture_ns: int) -> None:
        """``push`` from another thread (a feed playing a file)."""
        if self._loop is None or self._closed:
            self.dropped += 1
            return
        try:
            self._loop.call_soon_threadsafe(self.push, frame, capture_ns)
        except RuntimeError:  # the loop has closed
            self.dropped += 1

    def _bad(self, exc: Exception) -> None:
        self.bad_frames += 1
        message = f"{type(exc).__name__}: {exc}"
        if message != self.bad_frame_error:
            log.error("dropping a voice frame that cannot be encoded: %s", message)
        self.bad_frame_error = message

    # -- the delay line ---------------------------------------------------------------------------------------
    async def _run(self) -> None:
        while True:
            if not self._held:
                self._pushed.clear()
                await self._pushed.wait()
                continue
            video = self._newest_video()
            if video is not None:
                self.lipsync.video_frame(*video)
            delay_ns = int(self.lipsync.follow() * 1e6)
            frame, capture_ns = self._held[0]
            wait_ns = capture_ns + delay_ns - OPUS_LOOKAHEAD_NS - time.monotonic_ns()  # our encoder delays it
            if wait_ns > 0:
                await asyncio.sleep(min(wait_ns / 1e9, MAX_WAIT_S))
                continue
            self._held.popleft()
            self._release(frame, capture_ns)

    def _release(self, frame: av.AudioFrame, capture_ns: int) -> None:
        try:
            packets = self._encoder.encode(frame)
        except (av.FFmpegError, ValueError) as exc:
            self._bad(exc)
            return
        if self._t0_ns is None:
            self._t0_ns = capture_ns
        clock = (capture_ns - self._t0_ns) * SAMPLE_RATE // 1_000_000_000
        pts = clock if clock - self._next_pts > GAP_SAMPLES else self._next_pts
        for packet in packets:
            packet.pts, packet.time_base = pts, AUDIO_TIME_BASE
            seq = self._ring[-1].seq + 1 if self._ring else 1
            self._ring.append(VoicePacket(seq, packet))
            pts += FRAME_SAMPLES
            self.packets_out += 1
        self._next_pts = pts
        if packets:
            self._published.set()
            self._published = asyncio.Event()

    # -- out ----------------------------------------------------------------------------------------------------
    @property
    def newest_seq(self) -> int:
        return self._ring[-1].seq if self._ring else 0

    async def next_after(self, seq: int) -> tuple[VoicePacket, int]:
        """The packet after ``seq`` (waits for it) and how many were skipped to get it: a reader that fell out of
        the ring skips to the newest packet."""
        while True:
            if self._closed:
                raise MediaStreamError("the voice relay has stopped")
            if self._ring and self._ring[-1].seq > seq:
                first = self._ring[0].seq
                if seq + 1 >= first:
                    return self._ring[seq + 1 - first], 0
                return self._ring[-1], self._ring[-1].seq - seq - 1
            await self._published.wait()

    def stats(self) -> dict:
        """JSON-ready counters: frames in, packets out, drops, the delay and what it leaves between voice and mouth
        (``av_offset_ms``: for recent video frames, the delay their voice got less their latency; positive when
        the voice leaves after the mouth), the newest frame's level."""
        idle = self.last_frame_ns is None or time.monotonic_ns() - self.last_frame_ns > 1_000_000_000
        return {
            "active": not idle,
            "frames_in": self.frames_in,
            "packets_out": self.packets_out,
            "held": len(self._held),
            "dropped": self.dropped,
            "bad_frames": self.bad_frames,
            "bad_frame_error": self.bad_frame_error,
            "level_dbfs": None if idle else round(self.level_dbfs, 1),
            "delay_ms": round(self.lipsync.delay_ms, 1),
            "delay_changes": self.lipsync.changes,
            "delay_capped": self.lipsync.capped,
            "av_offset_ms": _spread(self.lipsync.offsets_ms),
        }


def _spread(values: list[float]) -> dict:
    if not values:
        return {"count": 0, "p5": None, "p50": None, "p95": None}
    p5, p50, p95 = np.percentile(values, [5, 50, 95])
    return {"count": len(values), "p5": round(float(p5), 1), "p50": round(float(p50), 1),
            "p95": round(float(p95), 1)}


class VoiceTrack(MediaStreamTrack):
    """One viewer's outbound voice: the relay's Opus packets, from the newest one on when it joins."""

    kind = "audio"

    def __init__(self, relay: VoiceRelay) -> None:
        super().__init__()
        self._relay = relay
        self._seq: int | None = None
        self.sent = 0
        self.skipped = 0

    async def recv(self) -> av.Packet:
        if self.readyState != "live":
            raise MediaStreamError("track ended")
        if self._seq is None:
            self._seq = self._relay.newest_seq
        voice, skipped = await self._relay.next_after(self._seq)
        self._seq = voice.seq
        self.skipped += skipped
        self.sent += 1
        return voice.packet
