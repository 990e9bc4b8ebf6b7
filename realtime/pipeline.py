"""The loop: capture → landmarks → fit → deform → render → out.

Two shapes of the same loop:

* `drive(params, painter)`: the offline twin, one picture per driving frame, in
  order, nothing dropped.
* `LivePipeline`: the stages run in two threads (track; deform + render) joined
  by one-slot mailboxes (`Latest`): a stage always takes the newest input,
  older unread inputs are dropped and counted, and no queue can grow. Every
  frame carries its capture time and each stage's duration to the output.
  It is the frame producer of the stream server (`frames`, `push_input`,
  `control`, `stats`). Camera frames arriving after a pause of more than
  NEW_CAMERA_GAP_NS go to a fresh tracker: a new sender (or the same person
  back) is calibrated anew instead of keeping the last one's identity.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from typing import AsyncIterator, Callable, Iterable, Iterator

import numpy as np

from realtime.avatar.gaussians import Avatar
from realtime.frames import OutputFrame
from realtime.mailbox import Latest
from realtime.painter import AvatarPainter
from realtime.rig.model import RigParams

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
    avatar_loader: name → Avatar, for the 'avatar' control; avatar_names: the names it offers.
    """

    def __init__(self, painter: AvatarPainter, tracker_factory: Callable[[object], object] | None = None,
                 avatar_loader: Callable[[str], Avatar] | None = None, avatar_names: Iterable[str] = ()) -> None:
        self.painter = painter
        self._tracker_factory = tracker_factory
        self._avatar_loader = avatar_loader
        self._avatar_names = list(avatar_names)
        self._images = Latest()
        self._params = Latest()
        self._out_cond = threading.Condition()
        self._output: OutputFrame | None = None
        self._threads: list[threading.Thread] = []
        self._running = threading.Event()
        self._recalibrate = threading.Event()
        self._new_painter: AvatarPainter | None = None
        self._recent = deque(maxlen=120)  # (output time ns, timings, capture ns) of recent frames, for stats
        self.faces_lost = 0
        self.last_input_ns = 0  # capture time of the newest camera frame pushed in

    # -- inputs ------------------------------------------------------------------------------------------
    def push_input(self, image: np.ndarray, capture_ts_ns: int) -> None:
        """A camera frame (H, W, 3) uint8 RGB captured at `capture_ts_ns`; never blocks."""
        self.last_input_ns = capture_ts_ns
        self._images.put((image, capture_ts_ns))

    def push_params(self, params: RigParams, capture_ts_ns: int | None = None) -> None:
        """Rig parameters that skip tracking (a built-in driver); never blocks."""
        self._params.put((params, capture_ts_ns or time.monotonic_ns(), {}))

    def control(self, message: dict) -> None:
        """'recalibrate', 'background' (#rrggbb) or 'avatar' (a name from `avatar_names`); ValueError if refused."""
        action = message.get("action")
        if action == "recalibrate":
            if self._tracker_factory is None:
                raise ValueError("this driver does not track a face, so there is nothing to recalibrate")
            self._recalibrate.set()
        elif action == "background":
            color = message["color"]
            self.painter.background = tuple(int(color[i:i + 2], 16) / 255.0 for i in (1, 3, 5))
        elif action == "avatar":
            name = message["name"]
            if self._avatar_loader is None or name not in self._avatar_names:
                raise ValueError(f"unknown avatar {name!r}; offered: {', '.join(self._avatar_names) or 'none'}")
            avatar = self._avatar_loader(name)
            camera = avatar.camera.resized(self.painter.camera.width, self.painter.camera.height)
            self._new_painter = AvatarPainter(avatar, camera, backend=self.painter.backend,
                                              background=self.painter.background)
        else:
            raise ValueError(f"unknown control action {action!r}")

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
            image = self.painter.draw(params, timings)
            with self._out_cond:
                index = 0 if self._output is None else self._output.index + 1
                self._output = OutputFrame(image, capture_ns, timings, index)
                self._recent.append((time.monotonic_ns(), timings, capture_ns))
                self._out_cond.notify_all()

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

    def stats(self) -> dict:
        recent = list(self._recent)
        stages: dict[str, list[float]] = {}
        for _, timings, _ in recent:
            for name, ms in timings.items():
                stages.setdefault(name, []).append(ms)
        fps = 0.0
        if len(recent) > 1:
            fps = (len(recent) - 1) / max((recent[-1][0] - recent[0][0]) * 1e-9, 1e-9)
        return {
            "frames": 0 if self._output is None else self._output.index + 1,
            "fps": round(fps, 2),
            "dropped_inputs": self._images.dropped,
            "dropped_params": self._params.dropped,
            "faces_lost": self.faces_lost,
            "stage_ms_p50": {name: round(float(np.median(v)), 2) for name, v in stages.items()},
            "avatar": self.painter.avatar.name,
            "avatars": self._avatar_names,
            "backend": self.painter.backend,
        }
