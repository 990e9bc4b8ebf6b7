"""The live loop: newest input wins, drops are counted, frames carry their timings."""

import asyncio
import threading
import time
from dataclasses import replace

import numpy as np
import pytest

from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.controls import Recalibrate, SetBackground, SwitchAvatar
from realtime.deform.reference import deform as reference_deform
from realtime.app.motions import tour
from realtime.app.feeds import MotionFeed
from realtime.mailbox import Latest
from realtime.painter import AvatarPainter
from realtime.pipeline import LivePipeline, drive
from realtime.render import render
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig
from render_checks import assert_same_picture, same_picture


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


def reference_picture(avatar, camera, params, background=(0.0, 0.0, 0.0)) -> np.ndarray:
    """The direct computation of what a painter draws: the float64 reference deformation (the identity is
    `params.shape`), then the CPU renderer with the avatar's opacities and colours, rounded to (H, W, 3) uint8."""
    g = reference_deform(avatar, params, dtype=np.float64).gaussians
    image = render(g.means, g.quats, g.scales, avatar.opacities, avatar.sh, camera, background=background,
                   backend="cpu").image
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8)


def posed(avatar, jaw: float = 0.3, yaw: float = 0.2) -> RigParams:
    """The avatar's identity with the jaw open and the head turned (radians)."""
    params = RigParams.neutral(avatar.rig)
    params.shape = avatar.shape.astype(np.float32)
    params.jaw_pose = np.array([jaw, 0, 0], np.float32)
    params.rotation = np.array([0, yaw, 0], np.float32)
    return params


def test_painter_draws_the_avatar_as_the_reference_deformer_and_renderer_do(painter):
    timings = {}
    params = posed(painter.avatar)
    image = painter.draw(params, timings)
    assert image.shape == (128, 128, 3) and image.dtype == np.uint8
    expected = reference_picture(painter.avatar, painter.camera, params)
    assert np.mean(expected.max(axis=2) > 10) > 0.1  # the avatar covers part of the picture: the check means something
    assert_same_picture(image, expected, "the painter's picture")
    assert set(timings) == {"deform", "render"} and all(ms > 0 for ms in timings.values())


def test_offline_drive_gives_one_frame_per_parameter_set_in_order(painter):
    driver = tour(painter.avatar.rig, painter.avatar.shape, fps=10, seconds=1.0)
    frames = list(drive(driver.frames, painter))
    assert [f.index for f in frames] == list(range(10))
    # frame i is the picture of parameter set i (the jaw opens and closes during the first second: they differ)
    for frame, params in zip(frames, driver.frames):
        assert np.array_equal(frame.image, painter.draw(params, {})), f"frame {frame.index} shows another set"
    assert not np.array_equal(frames[0].image, frames[3].image)


def test_live_pipeline_drops_stale_parameters_and_stamps_capture_times(painter):
    pipeline = LivePipeline(painter)
    driver = tour(painter.avatar.rig, painter.avatar.shape, fps=25, seconds=1.0)
    shown = []
    with pipeline:
        stamps = []
        for params in driver.frames:  # far faster than the renderer: most must be dropped
            stamps.append(time.monotonic_ns())
            pipeline.push_params(params, stamps[-1])
        # every frame made until the one drawn from the newest input (which must come: the newest input wins)
        deadline = time.monotonic() + 10
        frame = pipeline.wait_frame(timeout=10)
        while frame is not None:
            shown.append(frame)
            if frame.capture_ts_ns == stamps[-1]:
                break
            frame = pipeline.wait_frame(after=frame.index, timeout=max(0.0, deadline - time.monotonic()))
    assert shown and shown[-1].capture_ts_ns == stamps[-1], [f.capture_ts_ns for f in shown]
    stats = pipeline.stats()
    assert stats.dropped_params > 0
    assert stats.frames < len(driver.frames)
    # each frame carries the capture time of the input it was drawn from, newer and newer
    assert all(f.capture_ts_ns in stamps for f in shown)
    assert [f.capture_ts_ns for f in shown] == sorted(set(f.capture_ts_ns for f in shown))
    assert {"deform", "render"} <= set(shown[-1].timings)


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


def next_frame(pipeline: LivePipeline, params: RigParams, after: int):
    """Push (a copy of: the loop gives it the avatar's identity) `params` and wait for the frame drawn from them
    (the first one made after frame `after`)."""
    pipeline.push_params(replace(params))
    frame = pipeline.wait_frame(after=after, timeout=10)
    assert frame is not None, "no frame within 10 s"
    return frame


def test_controls_set_the_background_and_switch_the_avatar(painter):
    rig = painter.avatar.rig
    first = replace(painter.avatar, name="a")
    second = replace(random_avatar(rig, 2000, seed=7), name="b")
    own = AvatarPainter(first, painter.camera, backend="cpu")
    pipeline = LivePipeline(own, avatar_loader={"a": first, "b": second}.__getitem__, avatar_names=["a", "b"])
    params, orange = posed(first), (1.0, 128 / 255, 0.0)
    with pipeline:
        before = next_frame(pipeline, params, after=-1)
        pipeline.control(SetBackground((255, 128, 0)))
        assert own.background == pytest.approx(orange)
        assert pipeline.stats().background == (255, 128, 0)
        coloured = next_frame(pipeline, params, before.index)
        pipeline.control(SwitchAvatar("b"))
        switched = next_frame(pipeline, params, coloured.index)
        stats = pipeline.stats()
    assert_same_picture(before.image, reference_picture(first, painter.camera, params), "the first picture")
    # the frames after each control show it: the new background, then the new avatar (its own identity and
    # framing, the same pose, the same picture size) on that background
    assert_same_picture(coloured.image, reference_picture(first, painter.camera, params, orange),
                        "the picture after the background changed")
    expected = reference_picture(second, second.camera.resized(128, 128), replace(params, shape=second.shape), orange)
    assert_same_picture(switched.image, expected, "the picture after the avatar switch")
    assert not same_picture(coloured.image, expected)[0]  # the first avatar's picture would not pass for it
    assert stats.avatar == "b"


def test_controls_are_refused_with_clear_errors(painter):
    pipeline = LivePipeline(painter, avatar_loader={"a": painter.avatar}.__getitem__, avatar_names=["a"])
    with pytest.raises(ValueError, match="nothing to recalibrate"):
        pipeline.control(Recalibrate())
    with pytest.raises(ValueError, match="unknown avatar 'b'; offered: a"):
        pipeline.control(SwitchAvatar("b"))
    with pytest.raises(ValueError, match="expected a control .* got {'action': 'recalibrate'}"):
        pipeline.control({"action": "recalibrate"})  # the untyped form is refused
    assert pipeline.stats().recalibrations == 0


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
