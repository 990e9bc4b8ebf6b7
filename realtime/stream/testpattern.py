"""A test-pattern producer: ``--driver testpattern``.

Draws a moving pattern on the chosen background colour at a fixed frame rate,
and shows the newest camera frame uplinked by a browser sender instead when one
arrived within the last second (camera frames wait in a newest-wins mailbox,
``realtime.mailbox.Latest``: one replaced before a frame showed it is an
input drop). It needs no avatar, tracker or renderer, so it isolates network
and browser problems from the rest of the pipeline, and it is the frame source
of the stream tests and benchmarks.
"""
from __future__ import annotations

import asyncio
import time
from typing import AsyncIterator

import numpy as np

from realtime.controls import Control, Recalibrate, SetBackground, SwitchAvatar, not_a_control
from realtime.frames import OutputFrame
from realtime.mailbox import Latest
from realtime.meters import FpsMeter, ProducerStats

from .tracks import check_image

INPUT_FRESH_NS = 1_000_000_000


def fit_nearest(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """Nearest-neighbour resize. image: (h, w, 3) uint8 → (height, width, 3) uint8."""
    rows = np.arange(height) * image.shape[0] // height
    cols = np.arange(width) * image.shape[1] // width
    return image[rows[:, None], cols[None, :]]


def draw_pattern(frame_index: int, height: int, width: int, background: tuple[int, int, int]) -> np.ndarray:
    """The test pattern for one frame: (height, width, 3) uint8 RGB.

    Colour bars across the top quarter, a white square bouncing across the
    middle and a vertical bar sweeping left to right, both moving with
    ``frame_index`` so that frozen or skipped frames are visible.
    """
    img = np.empty((height, width, 3), np.uint8)
    img[:] = background
    bars = np.array([[255, 255, 255], [255, 255, 0], [0, 255, 255], [0, 255, 0],
                     [255, 0, 255], [255, 0, 0], [0, 0, 255], [0, 0, 0]], np.uint8)
    img[: height // 4] = bars[np.arange(width) * len(bars) // width][None]
    side = max(4, min(height, width) // 8)
    span = max(1, width - side)
    x = frame_index * 4 % (2 * span)
    x = x if x < span else 2 * span - x
    y = height // 2 - side // 2
    img[y : y + side, x : x + side] = 255
    img[height // 4 :, frame_index * 2 % width] = (255, 64, 0)
    return img


class TestPatternProducer:
    """Frame producer: a moving test pattern, or the sender's camera when it streams.

    width, height: output size (even, width >= 128); fps: output frame rate.
    """

    __test__ = False  # not a pytest test class

    def __init__(self, width: int = 256, height: int = 256, fps: float = 30.0) -> None:
        if width % 2 or height % 2 or width < 128 or height < 2:
            raise ValueError(f"test pattern size must be even with width >= 128, got {width}x{height}")
        if not 0 < fps <= 120:
            raise ValueError(f"fps must be in (0, 120], got {fps}")
        self.width, self.height, self.fps = width, height, float(fps)
        self.background = (32, 32, 40)
        self._inputs = Latest()  # camera frames pushed in, the newest wins; a replaced unread one is a drop
        self._input: tuple[np.ndarray, int] | None = None  # the newest taken (image, capture ns), shown while fresh
        self._phase = 0
        self.frames_made = 0
        self.inputs = 0
        self.recalibrations = 0
        self._fps = FpsMeter()

    async def frames(self) -> AsyncIterator[OutputFrame]:
        loop = asyncio.get_running_loop()
        period = 1.0 / self.fps
        deadline = loop.time()
        while True:
            delay = deadline - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            deadline = max(deadline + period, loop.time())
            yield self.make_frame()

    def make_frame(self) -> OutputFrame:
        """Draw the next frame now."""
        t0 = time.monotonic_ns()
        index = self.frames_made - self._phase
        capture_ts = t0
        taken = self._inputs.get(timeout=0)
        if taken is not None:
            self._input = taken
        if self._input is not None and t0 - self._input[1] < INPUT_FRESH_NS:
            image, capture_ts = self._input
            img = fit_nearest(image, self.height, self.width)
            img[:4, :] = 255
            img[:4, : index * 4 % self.width] = 0
        else:
            img = draw_pattern(index, self.height, self.width, self.background)
        self.frames_made += 1
        self._fps.tick()
        return OutputFrame(img, capture_ts, {"draw": (time.monotonic_ns() - t0) / 1e6})

    def push_input(self, image: np.ndarray, capture_ts_ns: int) -> None:
        check_image(image)
        self._inputs.put((image, int(capture_ts_ns)))
        self.inputs += 1

    def control(self, message: Control) -> None:
        match message:
            case Recalibrate():
                self.recalibrations += 1
                self._phase = self.frames_made
            case SetBackground(rgb=rgb):
                self.background = rgb
            case SwitchAvatar():
                raise ValueError("the test pattern driver has no avatars to switch to")
            case _:
                raise not_a_control(message)

    def stats(self) -> ProducerStats:
        size = None if self._input is None else (int(self._input[0].shape[1]), int(self._input[0].shape[0]))
        return ProducerStats(frames=self.frames_made, fps=round(self._fps.fps, 2), size=(self.width, self.height),
                             inputs=self.inputs, input_drops=self._inputs.dropped, input_size=size,
                             background=self.background, recalibrations=self.recalibrations, driver="testpattern")
