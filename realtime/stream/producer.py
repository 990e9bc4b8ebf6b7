"""What the stream server needs from the thing that makes the frames.

The server drives any object with this shape (``typing.Protocol``: no base class
to inherit; the live loop in ``realtime.pipeline`` sits below this package and
does not import it). What crosses the edge is typed, in leaves both sides
import: frames are ``realtime.frames.OutputFrame`` (read by attribute, so any
object with ``image``, ``capture_ts_ns`` and ``timings`` works), controls are
``realtime.controls.Control`` (parsed from the wire by ``signaling``), and stats
are ``realtime.meters.ProducerStats`` (serialised by the server for the page).
"""
from __future__ import annotations

from typing import AsyncIterator, Protocol

import numpy as np

from realtime.controls import Control
from realtime.frames import OutputFrame
from realtime.meters import ProducerStats


class FrameProducer(Protocol):
    def frames(self) -> AsyncIterator[OutputFrame]:
        """Yield output frames as they are made; the newest wins (no queue)."""

    def push_input(self, image: np.ndarray, capture_ts_ns: int) -> None:
        """A camera frame uplinked by a browser sender: (H, W, 3) uint8 RGB. Must not block."""

    def control(self, message: Control) -> None:
        """Carry out a control (dispatched on its type).

        Raises ValueError with a clear message when the producer cannot do it.
        """

    def stats(self) -> ProducerStats:
        """The live counters; must be cheap (called once a second per session)."""
