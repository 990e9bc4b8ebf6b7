"""What the stream server needs from the thing that makes the frames.

The server drives any object with this shape (``typing.Protocol``: no base class
to inherit; the live loop in ``realtime.pipeline`` sits below this package and
does not import it). Frames are read by attribute, so any object with
``image``, ``capture_ts_ns`` and ``timings`` works as a frame
(``realtime.frames.OutputFrame`` is the one both sides make).
"""
from __future__ import annotations

from typing import AsyncIterator, Protocol

import numpy as np

from realtime.frames import OutputFrame


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
