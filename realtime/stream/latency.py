"""Glass-to-glass latency: a timestamp drawn into every output frame.

Every streamed frame carries the capture time of the input frame that drove it,
drawn as a strip of black and white blocks appended *below* the picture (the
picture itself is never overwritten; the web client crops the strip away).

Strip layout (``STAMP_ROWS`` = 16 rows, full frame width ``W``)::

    rows 0..3   : guard, a copy of the picture's last row, so that neither the
                  codec's loop filter nor the browser's scaling of the video blends
                  the blocks into the picture's bottom edge
    rows 4..15  : the blocks; block i (i = 0..31) covers columns [i * bw, (i + 1) * bw),
                  bw = W // 32, white (255) for a 1 bit, black (0) for a 0 bit;
                  columns past 32 * bw are black. Readers sample rows 7..12.
    bits 0..23  : the stamp, most significant bit first
    bits 24..31 : CRC-8/ITU of the stamp's 3 bytes (polynomial 0x07, initial value 0,
                  final XOR 0x55, so all-black and all-white strips are not valid codes)

The stamp is the capture time in milliseconds of the server's monotonic clock,
modulo 2**24 (wraps every 4.66 hours; ages are computed modulo 2**24 as well).
The blocks are at least 4 px wide and 16 rows high, so they survive VP8/H.264
compression (a reader samples the centre of each block and thresholds at 128).

How the latency is measured (the client cannot read the server's clock): the
client decodes the stamp from the decoded video frame as soon as the browser
presents it (``requestVideoFrameCallback``) and echoes it over the data channel
with ``held_ms`` (the time between presentation and the echo). The server, on
arrival, computes::

    glass_to_glass = (now - stamp) - rtt / 2 - held_ms

where ``rtt`` is the data channel's round-trip time, measured by the server's
once-a-second ping/pong on the same channel. The result covers capture (or,
for a browser sender, the camera frame's arrival in the server) → processing →
encode → network → decode → presentation in the client. For a browser sender,
the uplink leg (the browser's camera encode and the network up) is not included.
"""
from __future__ import annotations

from collections import deque

import numpy as np

STAMP_ROWS = 16
STAMP_GUARD = 4
_SAMPLE_ROWS = slice(7, 13)
STAMP_BITS = 32
STAMP_MODULUS = 1 << 24
MIN_WIDTH = 4 * STAMP_BITS


def stamp_value(ts_ns: int) -> int:
    """The stamp of a monotonic timestamp: milliseconds modulo 2**24."""
    return (int(ts_ns) // 1_000_000) % STAMP_MODULUS


def stamp_age_ms(stamp: int, now_ns: int) -> int:
    """Milliseconds from ``stamp`` to ``now_ns`` (same clock), modulo 2**24."""
    return (stamp_value(now_ns) - int(stamp)) % STAMP_MODULUS


def crc8(data: bytes) -> int:
    """CRC-8/ITU: polynomial 0x07 (x^8 + x^2 + x + 1), initial value 0, no reflection, final XOR 0x55."""
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = ((crc << 1) ^ 0x07) & 0xFF if crc & 0x80 else (crc << 1) & 0xFF
    return crc ^ 0x55


def stamp_bits(stamp: int) -> np.ndarray:
    """The 32 bits of a stamp's code. Returns ``(32,) bool``, MSB first."""
    if not 0 <= int(stamp) < STAMP_MODULUS:
        raise ValueError(f"stamp {stamp} is outside [0, 2**24)")
    payload = int(stamp).to_bytes(3, "big")
    word = (int(stamp) << 8) | crc8(payload)
    return np.array([(word >> (STAMP_BITS - 1 - i)) & 1 for i in range(STAMP_BITS)], bool)


def _block_width(width: int) -> int:
    if width < MIN_WIDTH:
        raise ValueError(f"frame width {width} is too narrow for the stamp: need at least {MIN_WIDTH} px")
    return width // STAMP_BITS


def draw_stamp(stamp: int, width: int, guard_row: np.ndarray | None = None) -> np.ndarray:
    """The stamp strip for a frame ``width`` px wide.

    guard_row: (width, 3) uint8, the picture's last row (black when None).
    Returns ``(STAMP_ROWS, width, 3) uint8``.
    """
    bw = _block_width(width)
    row = np.zeros(width, np.uint8)
    row[: bw * STAMP_BITS] = np.repeat(stamp_bits(stamp), bw).astype(np.uint8) * 255
    strip = np.empty((STAMP_ROWS, width, 3), np.uint8)
    strip[:STAMP_GUARD] = 0 if guard_row is None else guard_row
    strip[STAMP_GUARD:] = row[None, :, None]
    return strip


def read_stamp(strip: np.ndarray) -> int | None:
    """Decode a stamp strip (``(STAMP_ROWS, W, 3)`` uint8 RGB or ``(STAMP_ROWS, W)`` luma).

    Returns the stamp, or None when the blocks do not form a valid code (CRC mismatch).
    """
    strip = np.asarray(strip)
    if strip.ndim == 3:
        strip = strip.mean(axis=2)
    if strip.ndim != 2 or strip.shape[0] != STAMP_ROWS:
        raise ValueError(f"stamp strip must be ({STAMP_ROWS}, W[, 3]), got {strip.shape}")
    bw = _block_width(strip.shape[1])
    lo, hi = bw // 4, max(bw // 4 + 1, (3 * bw) // 4)
    core = strip[_SAMPLE_ROWS, : bw * STAMP_BITS]
    blocks = core.reshape(core.shape[0], STAMP_BITS, bw)[:, :, lo:hi].mean(axis=(0, 2))
    word = 0
    for bit in blocks > 127.5:
        word = (word << 1) | int(bit)
    stamp, check = word >> 8, word & 0xFF
    return stamp if crc8(stamp.to_bytes(3, "big")) == check else None


def read_frame_stamp(image: np.ndarray) -> int | None:
    """Decode the stamp from a whole received frame ``(H + STAMP_ROWS, W, 3) uint8``."""
    return read_stamp(np.asarray(image)[-STAMP_ROWS:])


def glass_to_glass_ms(stamp: int, arrival_ns: int, rtt_ms: float, held_ms: float) -> float:
    """Latency from a stamp echoed by a client, see the module docstring.

    ``arrival_ns``: server monotonic time the echo arrived; ``rtt_ms``: data
    channel round trip; ``held_ms``: the client's delay between presenting the
    frame and sending the echo.
    """
    return max(0.0, stamp_age_ms(stamp, arrival_ns) - rtt_ms / 2.0 - held_ms)


class LatencyWindow:
    """The most recent ``size`` samples (milliseconds) and their percentiles."""

    def __init__(self, size: int = 300):
        self._samples: deque[float] = deque(maxlen=size)
        self.count = 0

    def add(self, ms: float) -> None:
        self._samples.append(float(ms))
        self.count += 1

    def summary(self) -> dict:
        """``{"count", "last", "p50", "p95", "p99"}`` over the window (None while empty)."""
        if not self._samples:
            return {"count": 0, "last": None, "p50": None, "p95": None, "p99": None}
        arr = np.fromiter(self._samples, float)
        p50, p95, p99 = np.percentile(arr, [50, 95, 99])
        return {
            "count": self.count,
            "last": round(self._samples[-1], 2),
            "p50": round(float(p50), 2),
            "p95": round(float(p95), 2),
            "p99": round(float(p99), 2),
        }
