"""The live loop: newest input wins, drops are counted, frames carry their timings."""

import asyncio
import threading
import time

import numpy as np
import pytest

from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.controls import Recalibrate, SetBackground, SwitchAvatar
from realtime.app.motions import tour
from realtime.app.feeds import MotionFeed
from realtime.mailbox import Latest
from realtime.painter import AvatarPainter
from realtime.pipeline import LivePipeline, drive
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig


@pytest.fixture(scope="module")
def painter():
    avatar = random_avatar(synthetic_rig(), 2000, seed=1)
    camera = frontal_camera(avatar.rig.v_template.mean(0), distance=0.5, size=128)
    return AvatarPainter(avatar, camera, backend="cpu")


def test_latest_keeps_only_the_newest_and_counts_drops():
    slot = Latest()
    for i in range(5):
        slot.put(i)
    assert slot.get(timeout=0) == 4
    assert slot.dropped == 4
    assert slot.get(timeout=0.01) is None  # nothing new
    slot.close()
    assert slot.get() is None


def test_latest_wakes_a_waiting_reader():
    slot = Latest()
    got = []
    reader = threading.Thread(target=lambda: got.append(slot.get(timeout=5)))
    reader.start()
    time.sleep(0.05)
    slot.put("frame")
    reader.join(timeout=5)
    assert got == ["frame"]


def test_painter_draws_the_avatar_and_times_each_stage(painter):
    timings = {}
    image = painter.draw(RigParams.neutral(painter.avatar.rig), timings)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    assert image.max() > 50  # something was drawn on the black background
    assert set(timings) == {"deform", "render"} and all(ms > 0 for ms in timings.values())


def test_offline_drive_gives_one_frame_per_parameter_set_in_order(painter):
    driver = tour(painter.avatar.rig, painter.avatar.shape, fps=10, seconds=1.0)
    frames = list(drive(driver.frames, painter))
    assert [f.index for f in frames] == list(range(10))
    assert not np.array_equal(frames[0].image, frames[3].image)  # the jaw opens during the first second


def test_live_pipeline_drops_stale_parameters_and_stamps_capture_times(painter):
    pipeline = LivePipeline(painter)
    driver = tour(painter.avatar.rig, painter.avatar.shape, fps=25, seconds=1.0)
    with pipeline:
        stamps = []
        for params in driver.frames:  # far faster than the renderer: most must be dropped
            stamps.append(time.monotonic_ns())
            pipeline.push_params(params, stamps[-1])
        frame = pipeline.wait_frame(timeout=10)
        assert frame is not None
        time.sleep(0.3)
        last = pipeline.wait_frame(after=-1, timeout=5)
    stats = pipeline.stats()
    assert stats.dropped_params > 0
    assert stats.frames < len(driver.frames)
    assert last.capture_ts_ns == stamps[-1]  # the newest input won
    assert {"deform", "render"} <= set(last.timings)


def test_frames_iterator_yields_new_frames_to_an_event_loop(painter):
    pipeline = LivePipeline(painter)
    feed = MotionFeed(pipeline, tour(painter.avatar.rig, painter.avatar.shape, fps=20, seconds=2.0))

    async def collect():
        got = []
        async for frame in pipeline.frames():
            got.append(frame.index)
            if len(got) == 5:
                return got

    with pipeline:
        feed.start()
        try:
            indices = asyncio.run(asyncio.wait_for(collect(), timeout=30))
        finally:
            feed.stop()
    assert indices == sorted(set(indices))  # strictly increasing: no frame twice, none out of order


def test_controls(painter):
    pipeline = LivePipeline(painter, avatar_loader={"a": painter.avatar}.__getitem__, avatar_names=["a"])
    pipeline.control(SetBackground((255, 128, 0)))
    assert painter.background == pytest.approx((1.0, 128 / 255, 0.0))
    assert pipeline.stats().background == (255, 128, 0)
    with pytest.raises(ValueError, match="nothing to recalibrate"):
        pipeline.control(Recalibrate())
    with pytest.raises(ValueError, match="unknown avatar 'b'; offered: a"):
        pipeline.control(SwitchAvatar("b"))
    with pytest.raises(ValueError, match="expected a control .* got {'action': 'recalibrate'}"):
        pipeline.control({"action": "recalibrate"})  # the untyped form is refused
    pipeline.control(SwitchAvatar("a"))
    assert pipeline.stats().recalibrations == 0
    painter.background = (0.0, 0.0, 0.0)


class CountingTracker:
    """A stand-in tracker: records the frames it saw; every made one is kept in `made`."""

    made: list["CountingTracker"] = []

    def __init__(self, rig):
        self.frames = 0
        CountingTracker.made.append(self)

    def track(self, image):
        from types import SimpleNamespace

        self.frames += 1
        return SimpleNamespace(params=RigParams.neutral(synthetic_rig(), np.float32), face_found=True,
                               timings={"landmarks": 0.1, "fit": 0.1})

    def recalibrate_neutral(self):
        pass

    def close(self):
        pass


def test_a_camera_back_after_a_pause_gets_a_fresh_tracker(painter):
    from realtime.pipeline import NEW_CAMERA_GAP_NS

    CountingTracker.made.clear()
    pipeline = LivePipeline(painter, tracker_factory=CountingTracker)
    image = np.zeros((32, 32, 3), np.uint8)
    start = time.monotonic_ns()
    with pipeline:
        for k, at in enumerate([0, 33_000_000, 66_000_000,                        # one sender's frames
                                66_000_000 + NEW_CAMERA_GAP_NS + 1, 2_200_000_000]):  # another's after a pause
            pipeline.push_input(image, start + at)
            assert pipeline.wait_frame(after=k - 1, timeout=10) is not None
    assert [t.frames for t in CountingTracker.made] == [3, 2]
