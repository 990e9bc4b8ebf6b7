"""The output frame that travels from the loop to its sinks (a leaf: the pipeline and the stream server share it)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class OutputFrame:
    """image: (H, W, 3) uint8 RGB; capture_ts_ns: time.monotonic_ns() when the input that drove it was captured
    (or arrived in the server); timings: milliseconds per stage, in stage order; index: output frames counted
    from 0 by their producer."""

    image: np.ndarray
    capture_ts_ns: int
    timings: dict[str, float] = field(default_factory=dict)
    index: int = 0
