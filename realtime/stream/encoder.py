"""One encoder for every viewer: each output frame is converted to I420 and encoded once, with PyAV.

Every viewer's aiortc ``RTCRtpSender`` then only packetizes the same ``av.Packet``
(aiortc's sender calls its codec's ``pack()`` for a packet a track returns, and
``encode()`` only for a raw frame), so the server's encoding cost does not grow
with the number of viewers.

Why our own encoder rather than aiortc's: aiortc runs one encoder per viewer, its
VP8 bitrate starts at 500 kbps whatever the frame size and follows each viewer's
estimate between 250 kbps and 1.5 Mbps (reopening the codec, a new keyframe, when
the estimate moves by 10 %), and its options are fixed, among them a temporal
denoiser (``noise-sensitivity`` 4, which blends a block with its past) and
static-block skipping (``static-thresh`` 1). Here the options are ours.

VP8 settings (libvpx): constant bitrate at ``bitrate`` bits/s (default
``default_bitrate``: ``BITS_PER_PIXEL`` bits per pixel per frame, bounded), realtime
deadline at a fixed speed (the same picture whatever the machine's load), no
lookahead (``lag-in-frames`` 0: a frame goes out as soon as it is
encoded), no denoiser and no static-block skipping (``noise-sensitivity`` 0,
``static-thresh`` 0), error resilient (entropy contexts are not carried across
frames, so a lost frame does not break the decoding of the next ones), keyframes
capped at ``MAX_INTRA_PCT`` of a frame's budget (so a keyframe does not stall the
link), a keyframe every ``keyframe_interval_s`` seconds of stream time and on request.
H.264 (libx264): constrained baseline (what WebRTC peers decode), ``tune
zerolatency``, the same bitrate rule, forced keyframes are IDR frames.

One encode means one bitrate for every viewer: this server sends a fixed quality
bitrate, chosen for the frame size and rate, to all of them; it does not follow
each viewer's bandwidth estimate (REMB), and a viewer whose link is slower than
the bitrate loses packets (and recovers on the next keyframe). Adapting to many
links at once is the SFU's job (simulcast layers), not this process's.

``encode`` blocks (a few milliseconds a frame): call it from one worker thread, in
frame order.
"""
from __future__ import annotations

import fractions
import time
from dataclasses import dataclass

import av
import numpy as np

from .latency import LatencyWindow

VIDEO_CLOCK_HZ = 90_000
VIDEO_TIME_BASE = fractions.Fraction(1, VIDEO_CLOCK_HZ)
CODECS = {"vp8": "libvpx", "h264": "libx264"}
BITS_PER_PIXEL = 0.2
MIN_BITRATE, MAX_BITRATE = 300_000, 8_000_000  # the default's bounds
BITRATE_RANGE = (50_000, 20_000_000)  # what may be asked for
NOMINAL_FPS = 25.0
KEYFRAME_INTERVAL_S = 3.0
MAX_INTRA_PCT = 600


def default_bitrate(width: int, height: int, fps: float = NOMINAL_FPS) -> int:
    """The bitrate (bits/s) for a ``width`` x ``height`` stream at ``fps``: BITS_PER_PIXEL per pixel a frame,
    within [MIN_BITRATE, MAX_BITRATE]."""
    return int(min(MAX_BITRATE, max(MIN_BITRATE, BITS_PER_PIXEL * width * height * fps)))


def _vp8_options(bitrate: int) -> dict[str, str]:
    rate = str(bitrate)
    return {
        # a negative cpu-used is a fixed speed (6 of 16); a positive one lets libvpx pick the speed from how long
        # frames take to encode, so the picture would change with the machine's load
        "deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0", "auto-alt-ref": "0",
        "noise-sensitivity": "0", "static-thresh": "0", "error-resilient": "1",
        "minrate": rate, "maxrate": rate, "bufsize": rate,  # equal rates: libvpx's CBR mode, a 1 s buffer
        "undershoot-pct": "100", "overshoot-pct": "15", "max-intra-rate": str(MAX_INTRA_PCT),
    }


def _h264_options(bitrate: int) -> dict[str, str]:
    return {"preset": "superfast", "tune": "zerolatency", "forced-idr": "1",
            "maxrate": str(bitrate), "bufsize": str(bitrate)}


@dataclass(frozen=True)
class EncoderStats:
    """What the encoder did: frames encoded, keyframes among them, bytes out, the configured bitrate (bits/s),
    the frame size (None before the first frame) and the per-frame time of colour conversion + encoding."""

    codec: str
    bitrate: int | None
    size: tuple[int, int] | None
    frames: int
    keyframes: int
    bytes: int
    encode_ms: dict


class StreamEncoder:
    """The one encoder of a stream.

    codec: ``vp8`` or ``h264``; bitrate: bits/s, or None for ``default_bitrate`` of the frame size at
    ``fps`` (the nominal rate, used only for that default); keyframe_interval_s: stream time between
    periodic keyframes. The codec context opens on the first frame and again when the frame size changes.
    """

    def __init__(self, codec: str = "vp8", bitrate: int | None = None, fps: float = NOMINAL_FPS,
                 keyframe_interval_s: float = KEYFRAME_INTERVAL_S) -> None:
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        if bitrate is not None and not BITRATE_RANGE[0] <= bitrate <= BITRATE_RANGE[1]:
            raise ValueError(f"bitrate must be in [{BITRATE_RANGE[0]}, {BITRATE_RANGE[1]}] bits/s, got {bitrate}")
        if not 0 < fps <= 120:
            raise ValueError(f"fps must be in (0, 120], got {fps}")
        if keyframe_interval_s <= 0:
            raise ValueError(f"keyframe_interval_s must be positive, got {keyframe_interval_s}")
        self.codec_name, self.fps = codec, float(fps)
        self._requested_bitrate = bitrate
        self._keyframe_ticks = int(keyframe_interval_s * VIDEO_CLOCK_HZ)
        self._context: av.video.codeccontext.VideoCodecContext | None = None
        self._last_keyframe_pts: int | None = None
        self.bitrate: int | None = bitrate
        self.frames = self.keyframes = self.bytes = 0
        self.timing = LatencyWindow()

    def _open(self, width: int, height: int) -> None:
        self.bitrate = self._requested_bitrate or default_bitrate(width, height, self.fps)
        ctx = av.CodecContext.create(CODECS[self.codec_name], "w")
        ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
        ctx.time_base = VIDEO_TIME_BASE
        ctx.framerate = fractions.Fraction(self.fps).limit_denominator(1000)
        ctx.bit_rate = self.bitrate
        ctx.gop_size = 100_000  # periodic keyframes are forced here, by stream time, not counted in frames
        ctx.thread_count = 1
        if self.codec_name == "vp8":
            ctx.qmin, ctx.qmax = 2, 56
            ctx.options = _vp8_options(self.bitrate)
        else:
            ctx.profile = "Baseline"
            ctx.options = _h264_options(self.bitrate)
        self._context = ctx
        self._last_keyframe_pts = None

    def encode(self, image: np.ndarray, pts: int, keyframe: bool = False) -> av.Packet | None:
        """Encode one frame. image: (H, W, 3) uint8 RGB, H and W even; pts: the frame's time in 1/90000 s,
        increasing; keyframe: force a keyframe. Returns the packet (its ``pts``, ``time_base`` and
        ``is_keyframe`` set), or None when the encoder gave none for this frame."""
        start = time.perf_counter()
        h, w = image.shape[:2]
        if self._context is None or (self._context.width, self._context.height) != (w, h):
            self._open(w, h)
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = int(pts), VIDEO_TIME_BASE
        due = self._last_keyframe_pts is None or pts - self._last_keyframe_pts >= self._keyframe_ticks
        if keyframe or due:
            frame.pict_type = av.video.frame.PictureType.I
        packets = self._context.encode(frame)
        self.timing.add((time.perf_counter() - start) * 1e3)
        if not packets:  # the encoder dropped the frame (rate control)
            return None
        (packet,) = packets  # no lookahead, no alternate reference frames: one packet a frame
        packet.time_base = VIDEO_TIME_BASE
        self.frames += 1
        self.bytes += packet.size
        if packet.is_keyframe:
            self.keyframes += 1
            self._last_keyframe_pts = pts
        return packet

    def stats(self) -> EncoderStats:
        size = None if self._context is None else (self._context.width, self._context.height)
        return EncoderStats(self.codec_name, self.bitrate, size, self.frames, self.keyframes, self.bytes,
                            self.timing.summary())
