"""The loop: capture → landmarks → fit → deform → render → out.

Two shapes of the same loop:

* `drive(params, painter)`: the offline twin, one picture per driving frame, in
  order, nothing dropped.
* `LivePipeline`: the stages run in two threads (track; deform + render) joined
  by one-slot mailboxes (`Latest`): a stage always takes the newest input,
  older unread inputs are dropped and counted, and no queue can grow. Every
  frame carries its capture time and each stage's duration to the output.
  It is the frame producer of the stream server (`frames`, `push_input`,
  `control` taking a typed `realtime.controls.Control`, `stats` giving a
  `realtime.meters.ProducerStats`). Camera frames arriving after a pause of
  more than NEW_CAMERA_GAP_NS go to a fresh tracker: a new sender (or the same
  person back) is calibrated anew instead of keeping the last one's identity.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from typing import AsyncIterator, Callable, Iterable, Iterator

import numpy as np

from realtime.avatar.gaussians import Avatar
from realtime.controls import Control, Recalibrate, SetBackground, SwitchAvatar, not_a_control
from realtime.frames import OutputFrame
from realtime.mailbox import Latest
from realtime.meters import FpsMeter, ProducerStats
from realtime.painter import AvatarPainter
from realtime.rig.model import RigParams

log = logging.getLogger(__name__)

NEW_CAMERA_GAP_NS = 2_000_000_000


def drive(frames: Iterable[RigParams], painter: AvatarPainter) -> Iterator[OutputFrame]:
    """Offline twin of the live loop: one picture per parameter set, in order, nothing dropped."""
    for index, params in enumerate(frames):
        timings: dict[str, float] = {}
        capture = time.monotonic_ns()
        yield OutputFrame(painter.draw(params, timings), capture, timings, index)


class LivePipeline:
    """The live loop as a frame producer.

    painter: draws the avatar; tracker_factory: makes a tracker for a rig (`track(image) -> result with .params
    and .timings`), called in the track thread; None when only rig parameters drive it (`push_params`).
    avatar_loader: name → Avatar, for the SwitchAvatar control; avatar_names: the names it offers.
    driver: what drives it (the `realtime serve --driver`), reported in `stats`.
    """

    def __init__(self, painter: AvatarPainter, tracker_factory: Callable[[object], object] | None = None,
                 avatar_loader: Callable[[str], Avatar] | None = None, avatar_names: Iterable[str] = (),
                 driver: str | None = None) -> None:
        self.painter = painter
        self._tracker_factory = tracker_factory
        self._avatar_loader = avatar_loader
        self._avatar_names = tuple(avatar_names)
        self._driver = driver
        self._images = Latest()
        self._params = Latest()
        self._out_cond = threading.Condition()
        self._output: OutputFrame | None = None
        self._threads: list[threading.Thread] = []
        self._running = threading.Event()
        self._recalibrate = threading.Event()
        self._new_painter: AvatarPainter | None = None
        self._recent: deque[dict[str, float]] = deque(maxlen=120)  # the stage timings of recent frames, for stats
        self._fps = FpsMeter()
        self.faces_lost = 0
        self.recalibrations = 0
        self.inputs = 0
        self.render_error: str | None = None  # the last error drawing a frame raised
        self._input_size: tuple[int, int] | None = None
        self.last_input_ns = 0  # capture time of the newest camera frame pushed in

    # -- inputs ------------------------------------------------------------------------------------------
    def push_input(self, image: np.ndarray, capture_ts_ns: int) -> None:
        """A camera frame (H, W, 3) uint8 RGB captured at `capture_ts_ns`; never blocks."""
        self.last_input_ns = capture_ts_ns
        self.inputs += 1
        self._input_size = (int(image.shape[1]), int(image.shape[0]))
        self._images.put((image, capture_ts_ns))

    def push_params(self, params: RigParams, capture_ts_ns: int | None = None) -> None:
        """Rig parameters that skip tracking (a built-in driver); never blocks."""
        self._params.put((params, capture_ts_ns or time.monotonic_ns(), {}))

    def control(self, message: Control) -> None:
        """Recalibrate (tracking drivers only), SetBackground or SwitchAvatar (to one of `avatar_names`);
        ValueError if refused."""
        match message:
            case Recalibrate():
                if self._tracker_factory is None:
                    raise ValueError("this driver does not track a face, so there is nothing to recalibrate")
                self.recalibrations += 1
                self._recalibrate.set()
            case SetBackground(rgb=rgb):
                self.painter.background = tuple(c / 255.0 for c in rgb)
            case SwitchAvatar(name=name):
                if self._avatar_loader is None or name not in self._avatar_names:
                    raise ValueError(f"unknown avatar {name!r}; offered: {', '.join(self._avatar_names) or 'none'}")
                avatar = self._avatar_loader(name)
                camera = avatar.camera.resized(self.painter.camera.width, self.painter.camera.height)
                self._new_painter = AvatarPainter(avatar, camera, backend=self.painter.backend,
                                                  background=self.painter.background)
            case _:
                raise not_a_control(message)

    # -- lifecycle ---------------------------------------------------------------------------------------
    def start(self) -> None:
        self._running.set()
        workers = [self._render_loop] + ([self._track_loop] if self._tracker_factory else [])
        for work in workers:
            thread = threading.Thread(target=work, name=f"pipeline{work.__name__}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self) -> None:
        self._running.clear()
        self._images.close()
        self._params.close()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def __enter__(self) -> "LivePipeline":
        self.start()
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    # -- stages ------------------------------------------------------------------------------------------
    def _track_loop(self) -> None:
        rig = self.painter.avatar.rig
        tracker = self._tracker_factory(rig)
        last_ns = None
        try:
            while self._running.is_set():
                item = self._images.get(timeout=0.2)
                if item is None:
                    continue
                image, capture_ns = item
                new_camera = last_ns is not None and capture_ns - last_ns > NEW_CAMERA_GAP_NS
                if self.painter.avatar.rig is not rig or new_camera:  # another rig, or maybe another person
                    tracker.close()
                    rig = self.painter.avatar.rig
                    tracker = self._tracker_factory(rig)
                last_ns = capture_ns
                if self._recalibrate.is_set():
                    self._recalibrate.clear()
                    tracker.recalibrate_neutral()
                result = tracker.track(image)
                if not result.face_found:
                    self.faces_lost += 1
                timings = {"landmarks": result.timings.get("landmarks", 0.0),
                           "fit": result.timings.get("fit", 0.0) + result.timings.get("filter", 0.0)}
                self._params.put((result.params, capture_ns, timings))
        finally:
            tracker.close()

    def _render_loop(self) -> None:
        while self._running.is_set():
            item = self._params.get(timeout=0.2)
            if item is None:
                continue
            if self._new_painter is not None:
                self.painter, self._new_painter = self._new_painter, None
            params, capture_ns, timings = item
            params.shape = self.painter.avatar.shape.astype(np.float32)  # the avatar's identity, not the driver's
            image = self._draw(params, timings)
            if image is None:
                continue
            with self._out_cond:
                index = 0 if self._output is None else self._output.index + 1
                self._output = OutputFrame(image, capture_ns, timings, index)
                self._recent.append(timings)
                self._fps.tick()
                self._out_cond.notify_all()

    def _draw(self, params: RigParams, timings: dict[str, float]) -> np.ndarray | None:
        """The painter's picture. When drawing raises, the error is logged (each new one once) and kept for
        `stats`; a GPU painter is then replaced by a CPU one for the same avatar, camera and background, which
        draws this frame and the next (so a stream never freezes on a failed GPU path); a CPU painter's failed frame
        is dropped (None) and the loop goes on."""
        try:
            return self.painter.draw(params, timings)
        except Exception as error:  # noqa: BLE001 - whatever the deformer or the renderer raised
            message = f"{type(error).__name__}: {error}"
            failed = self.painter
            if failed.backend != "cpu":
                log.exception("the %s backend failed to draw a frame; falling back to the CPU renderer", failed.backend)
                self.render_error = message
                self.painter = AvatarPainter(failed.avatar, failed.camera, backend="cpu", background=failed.background)
                return self._draw(params, timings)
            if message != self.render_error:
                log.exception("drawing a frame failed; dropping it (the same error recurring is not logged again)")
            self.render_error = message
            return None

    # -- outputs -----------------------------------------------------------------------------------------
    def wait_frame(self, after: int = -1, timeout: float | None = None) -> OutputFrame | None:
        """Block until a frame with index > `after` exists; the newest such frame, or None on timeout."""
        with self._out_cond:
            ok = self._out_cond.wait_for(lambda: self._output is not None and self._output.index > after, timeout)
            return self._output if ok else None

    async def frames(self) -> AsyncIterator[OutputFrame]:
        """Each new output frame as it is made (the newest wins: a slow reader skips frames)."""
        after = -1
        loop = asyncio.get_running_loop()
        while self._running.is_set():
            frame = await loop.run_in_executor(None, self.wait_frame, after, 0.5)
            if frame is not None:
                after = frame.index
                yield frame

    def stats(self) -> ProducerStats:
        stages: dict[str, list[float]] = {}
        for timings in list(self._recent):
            for name, ms in timings.items():
                stages.setdefault(name, []).append(ms)
        painter = self.painter
        return ProducerStats(
            frames=0 if self._output is None else self._output.index + 1,
            fps=round(self._fps.fps, 2),
            size=(painter.camera.width, painter.camera.height),
            inputs=self.inputs,
            input_drops=self._images.dropped,
            input_size=self._input_size,
            background=tuple(round(c * 255) for c in painter.background),
            recalibrations=self.recalibrations,
            driver=self._driver,
            stage_ms_p50={name: round(float(np.median(v)), 2) for name, v in stages.items()},
            dropped_params=self._params.dropped,
            faces_lost=self.faces_lost,
            avatar=painter.avatar.name,
            avatars=self._avatar_names,
            backend=painter.backend,
            render_error=self.render_error,
        )
