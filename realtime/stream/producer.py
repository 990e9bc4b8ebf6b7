"""What the stream server needs from the thing that makes the frames.

The server drives any object with this shape (``typing.Protocol``: no base class
to inherit; the live loop in ``realtime.pipeline`` sits below this package and
does not import it). Frames are read by attribute, so any object with
``image``, ``capture_ts_ns`` and ``timings`` works as a frame.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import AsyncIterator, Protocol

import numpy as np


@dataclass
class OutputFrame:
    """One rendered frame.

    image: (H, W, 3) uint8 RGB, H and W even, W >= 128.
    capture_ts_ns: ``time.monotonic_ns()`` when the input frame that drove this
        output was captured (or arrived in the server).
    timings: per-stage durations in milliseconds, e.g. ``{"track": 2.1, "render": 30.4}``.
    """

    image: np.ndarray
    capture_ts_ns: int
    timings: dict[str, float] = field(default_factory=dict)


class FrameProducer(Protocol):
    def frames(self) -> AsyncIterator[OutputFrame]:
        """Yield output frames as they are made; the newest wins (no queue)."""

    def push_input(self, image: np.ndarray, capture_ts_ns: int) -> None:
        """A camera frame uplinked by a browser sender: (H, W, 3) uint8 RGB. Must not block."""

    def control(self, message: dict) -> None:
        """A validated control message (see ``signaling.parse_control``).

        Raises ValueError with a clear message when the producer cannot do it.
        """

    def stats(self) -> dict:
        """JSON-serialisable live counters; must be cheap (called once a second per session)."""
