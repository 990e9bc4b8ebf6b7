"""Glass-to-glass latency from capture times that travel beside the frames, and windows of latency samples.

Nothing is drawn into the picture: frames go out exactly as the producer made
them. Instead, for every frame a viewer's video sender hands to aiortc, the
server sends on that viewer's ``"stats"`` data channel the frame's RTP-clock
timestamp and the capture time of the input that drove it::

    {"type": "frame", "pts": <90 kHz timestamp>, "capture_ms": <server monotonic ms>}

(see ``signaling.py``). The RTP timestamp a viewer sees is ``pts`` plus a random
offset that aiortc's sender picks once per sender (RFC 3550), modulo 2**32; a
viewer finds that offset from the frames it shows (``frametimes.py``, and its twin
``client_web/frametimes.js`` for ``requestVideoFrameCallback``'s ``rtpTimestamp``),
then knows each frame's capture time on the server's clock.

The client cannot read the server's clock, so it echoes the capture time of each
frame it shows, ``{"type": "shown", "capture_ms": C, "held_ms": h}``, where ``h``
is the time between the frame reaching the glass (its expected display time in a
browser, its decoding in a Python peer) and the echo. The server, on arrival::

    glass_to_glass = (now - C) - rtt / 2 - held_ms

where ``rtt`` is the data channel's round-trip time, measured by the server's
once-a-second ping/pong on the same channel. The result covers capture (for a
browser sender, the camera frame's arrival in the server) → processing → encode →
network → jitter buffer → decode → display in the client. For a browser sender,
the uplink leg (the browser's camera encode and the network up) is not included.
"""
from __future__ import annotations

from collections import deque

import numpy as np


def glass_to_glass_ms(capture_ms: float, now_ms: float, rtt_ms: float, held_ms: float) -> float:
    """Latency from a capture time echoed by a client, see the module docstring; never negative.

    ``now_ms``: server monotonic time the echo arrived; ``rtt_ms``: data channel round trip;
    ``held_ms``: the client's delay between showing the frame and sending the echo.
    """
    return max(0.0, now_ms - capture_ms - rtt_ms / 2.0 - held_ms)


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
