"""The producer's stats record is what the server sends and the page reads.

With the real live loop, camera frames dropped because tracking is slower than the camera reach the page's fields
(they once did not: the page and the pipeline spelled the key differently). Every `msg.producer.<field>` that
client_web/app.js reads must be a field of `ProducerStats`, so a missing key fails here, not silently on the page.
"""

import dataclasses
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.controls import Recalibrate
from realtime.meters import FpsMeter, ProducerStats
from realtime.painter import AvatarPainter
from realtime.pipeline import LivePipeline
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig
from realtime.stream import signaling
from realtime.stream.server import StreamServer
from realtime.stream.testpattern import TestPatternProducer

APP_JS = Path(__file__).resolve().parents[1] / "client_web" / "app.js"
TRACK_S = 0.05  # how long the stand-in tracker takes a frame
SIZE = 64


@pytest.fixture(scope="module")
def painter():
    avatar = random_avatar(synthetic_rig(), 500, seed=2)
    camera = frontal_camera(avatar.rig.v_template.mean(0), distance=0.5, size=SIZE)
    return AvatarPainter(avatar, camera, backend="cpu")


class SlowTracker:
    """A stand-in tracker that takes TRACK_S a frame, far slower than the camera frames pushed at it."""

    def __init__(self, rig):
        self.rig = rig

    def track(self, image):
        time.sleep(TRACK_S)
        return SimpleNamespace(params=RigParams.neutral(self.rig, np.float32), face_found=True,
                               timings={"landmarks": TRACK_S * 1e3, "fit": 0.1})

    def recalibrate_neutral(self):
        pass

    def close(self):
        pass


def page_fields() -> set[str]:
    """The producer's stats fields the page reads: each `msg.producer.<field>` in app.js."""
    fields = set(re.findall(r"\bmsg\.producer\.(\w+)", APP_JS.read_text()))
    assert "input_drops" in fields, "app.js no longer reads msg.producer.input_drops: has its stats code moved?"
    return fields


def page_message(producer) -> dict:
    """The stats message as a session sends it to the page (its JSON text, parsed back)."""
    summary = StreamServer(producer, port=0).stats_summary()
    return json.loads(signaling.encode("stats", **summary, session={}))


def test_the_page_shows_real_input_drops_with_the_live_pipeline(painter):
    pipeline = LivePipeline(painter, tracker_factory=SlowTracker, avatar_names=["synthetic"], driver="browser")
    image = np.zeros((48, 64, 3), np.uint8)
    pushed = 20
    with pipeline:
        for _ in range(pushed):  # a camera ten times faster than tracking: the newest frame wins
            pipeline.push_input(image, time.monotonic_ns())
            time.sleep(TRACK_S / 10)
        pipeline.control(Recalibrate())
        assert pipeline.wait_frame(timeout=10) is not None
        time.sleep(3 * TRACK_S)  # the tracker takes the last frame, which is not dropped
    stats = pipeline.stats()
    assert isinstance(stats, ProducerStats)
    assert stats.inputs == pushed and pushed // 2 <= stats.input_drops < pushed, stats
    assert (stats.input_size, stats.size, stats.driver, stats.backend) == ((64, 48), (SIZE, SIZE), "browser", "cpu")
    assert stats.recalibrations == 1 and stats.faces_lost == 0 and stats.avatars == ("synthetic",)
    assert {"landmarks", "fit", "deform", "render"} <= set(stats.stage_ms_p50)

    producer = page_message(pipeline)["producer"]
    for field in page_fields():
        assert field in producer, f"the page reads msg.producer.{field}, which the stats message lacks"
    assert producer["input_drops"] == stats.input_drops
    assert producer == json.loads(json.dumps(dataclasses.asdict(stats)))  # the record, field by field


@pytest.mark.parametrize("kind", ["testpattern", "pipeline"])
def test_every_field_the_page_reads_is_in_the_record(kind, painter):
    record = {f.name for f in dataclasses.fields(ProducerStats)}
    assert page_fields() <= record, page_fields() - record
    producer = TestPatternProducer() if kind == "testpattern" else LivePipeline(painter)
    message = page_message(producer)["producer"]
    assert set(message) == record and message["input_drops"] == 0


def test_fps_meter_reports_the_rate_of_the_last_window():
    meter = FpsMeter(window_s=0.1)
    assert meter.fps == 0.0
    start = time.monotonic()
    while time.monotonic() - start < 0.35:
        meter.tick()
        time.sleep(0.01)  # at most 100 ticks a second
    assert 10 < meter.fps <= 110, meter.fps
    with pytest.raises(ValueError, match="window_s must be positive, got 0"):
        FpsMeter(0)
