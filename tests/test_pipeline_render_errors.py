"""A renderer that fails inside the live loop's render thread is reported (log + stats) and the stream goes on:
a GPU painter is replaced by the CPU one, a CPU painter's failed frame is dropped. It once froze the stream
silently: gsplat without its CUDA extension dies with an AttributeError on its first rasterization."""

import logging

import numpy as np
import pytest

from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.painter import AvatarPainter
from realtime.pipeline import LivePipeline
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig

GSPLAT_ERROR = "'NoneType' object has no attribute 'rasterize_to_pixels_fwd'"


@pytest.fixture
def gpu_painter_that_fails():
    """A painter that says it draws on CUDA and raises what gsplat without its extension raises."""
    avatar = random_avatar(synthetic_rig(), 500, seed=2)
    painter = AvatarPainter(avatar, frontal_camera(avatar.rig.v_template.mean(0), 0.5, size=64), backend="cpu",
                            background=(0.0, 0.5, 0.0))
    painter.backend = "cuda"

    def draw(params, timings):
        raise AttributeError(GSPLAT_ERROR)

    painter.draw = draw
    return painter


def test_a_failing_gpu_renderer_falls_back_to_the_cpu_and_the_stream_goes_on(gpu_painter_that_fails, caplog):
    pipeline = LivePipeline(gpu_painter_that_fails)
    params = RigParams.neutral(gpu_painter_that_fails.avatar.rig)
    with caplog.at_level(logging.ERROR, logger="realtime.pipeline"), pipeline:
        pipeline.push_params(params)
        first = pipeline.wait_frame(timeout=60)
        assert first is not None, "the stream froze"
        pipeline.push_params(params)
        second = pipeline.wait_frame(after=first.index, timeout=30)
    assert second is not None
    failed = gpu_painter_that_fails
    expected = AvatarPainter(failed.avatar, failed.camera, backend="cpu", background=failed.background).draw(params, {})
    np.testing.assert_array_equal(first.image, expected)  # the same avatar, camera and background, on the CPU
    stats = pipeline.stats()
    assert stats.backend == "cpu" and stats.render_error == f"AttributeError: {GSPLAT_ERROR}"
    assert pipeline.painter.avatar is gpu_painter_that_fails.avatar
    [record] = [r for r in caplog.records if "falling back to the CPU renderer" in r.getMessage()]
    assert record.exc_info is not None  # the traceback is in the log


def test_a_frame_the_cpu_painter_cannot_draw_is_dropped_and_the_next_is_drawn(caplog):
    avatar = random_avatar(synthetic_rig(), 300, seed=1)
    painter = AvatarPainter(avatar, frontal_camera(avatar.rig.v_template.mean(0), 0.5, size=32), backend="cpu")
    pipeline = LivePipeline(painter)
    bad = RigParams.neutral(avatar.rig)
    bad.jaw_pose = np.array([0.0, np.nan, 0.0], np.float32)
    with caplog.at_level(logging.ERROR, logger="realtime.pipeline"), pipeline:
        for _ in range(2):
            pipeline.push_params(bad)
            assert pipeline.wait_frame(timeout=0.5) is None
        pipeline.push_params(RigParams.neutral(avatar.rig))
        frame = pipeline.wait_frame(timeout=30)
    assert frame is not None and frame.index == 0
    stats = pipeline.stats()
    assert stats.backend == "cpu" and "jaw_pose holds NaN" in stats.render_error
    assert len([r for r in caplog.records if "dropping it" in r.getMessage()]) == 1  # logged once, not per frame
