"""What a frame producer measures and reports: a frame-rate meter and the stats record.

A leaf shared by the producers (``realtime.pipeline.LivePipeline``, the test
pattern) and the stream server: the server counts its own published frames with
the same `FpsMeter`, and serialises each producer's `ProducerStats` (with
``dataclasses.asdict``) into the ``"producer"`` field of its stats message, which
the web client reads by these field names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field


class FpsMeter:
    """Frames per second: call `tick()` once a frame; `fps` is the rate over the last window of at least
    `window_s` seconds that has ended (0 until the first one ends). Ticks come from one thread."""

    def __init__(self, window_s: float = 1.0) -> None:
        if window_s <= 0:
            raise ValueError(f"window_s must be positive, got {window_s}")
        self.window_s = window_s
        self.fps = 0.0
        self._count = 0
        self._t0 = time.monotonic()

    def tick(self) -> None:
        self._count += 1
        now = time.monotonic()
        if now - self._t0 >= self.window_s:
            self.fps = self._count / (now - self._t0)
            self._count, self._t0 = 0, now


@dataclass(frozen=True)
class ProducerStats:
    """A frame producer's live counters, the union of what the producers report.

    frames: output frames made; fps: their rate (see `FpsMeter`); size: output (width, height);
    inputs: camera frames pushed in; input_drops: those replaced by a newer one before they were used;
    input_size: (width, height) of the newest camera frame, None before the first; background: (r, g, b) in
    [0, 255]; recalibrations: recalibrate controls carried out; driver: what moves the picture (``"testpattern"``,
    or the ``realtime serve --driver``), None when not told; stage_ms_p50: the median milliseconds of each stage
    over recent frames (empty when the producer does not time stages).
    Avatar producers only (None or empty for others): dropped_params: rig parameter sets replaced before they
    were drawn; faces_lost: tracked camera frames without a face; avatar: the avatar drawn; avatars: the names a
    viewer may switch to; backend: the renderer (``"cpu"`` or ``"cuda"``); render_error: the last error drawing a
    frame raised (``"<type>: <message>"``; a GPU renderer that failed is replaced by the CPU one, and ``backend``
    then says ``"cpu"``), None while none has.
    """

    frames: int
    fps: float
    size: tuple[int, int]
    inputs: int
    input_drops: int
    input_size: tuple[int, int] | None
    background: tuple[int, int, int]
    recalibrations: int
    driver: str | None = None
    stage_ms_p50: dict[str, float] = field(default_factory=dict)
    dropped_params: int | None = None
    faces_lost: int | None = None
    avatar: str | None = None
    avatars: tuple[str, ...] = ()
    backend: str | None = None
    render_error: str | None = None
