"""Named mutants: the behaviour a test claims to check, broken on purpose, and the tests that must then fail.

Each `Mutant` breaks one thing by monkeypatching (`patch`, applied at interpreter start, so that every module that
imports the patched name gets the mutant) and names the tests that must kill it. The mutation check
(tests/test_mutants.py) runs those tests in a subprocess with ``REALTIME_MUTANT=<name>`` and
tests/mutant_site on ``PYTHONPATH``: its ``sitecustomize`` calls `apply` in that pytest process and in every
Python process it starts (the stream servers of the browser tests), and each named test must fail there.

A mutant that no test kills yet carries `pending`: why, and which test must kill it; the check expects it to
survive (xfail) until that test is strengthened, then fails until the mark is removed.

Add a mutant whenever a hollow test is found: the breakage it let through, and the test that now catches it.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np

ENV = "REALTIME_MUTANT"


@dataclass(frozen=True)
class Mutant:
    name: str
    breaks: str  # the behaviour broken, in words
    patch: Callable[[], None]
    killers: tuple[str, ...]  # test node ids (from the repository root) that must fail with the mutant applied
    pending: str | None = None  # why no test kills it yet, and which must
    needs: str | None = None  # a program the killers need (they skip without it)


def _black_painter() -> None:
    from realtime.painter import AvatarPainter

    draw = AvatarPainter.draw

    def black(self, params, timings):
        return np.zeros_like(draw(self, params, timings))

    AvatarPainter.draw = black


def _black_stream() -> None:
    from realtime.stream.encoder import StreamEncoder

    encode = StreamEncoder.encode

    def zeros(self, image, pts, keyframe=False):
        return encode(self, np.zeros_like(image), pts, keyframe)

    StreamEncoder.encode = zeros


def _dropped_control() -> None:
    from realtime.pipeline import LivePipeline

    LivePipeline.control = lambda self, message: None


def _ignored_avatar_switch() -> None:
    from realtime.controls import SwitchAvatar
    from realtime.pipeline import LivePipeline

    control = LivePipeline.control

    def ignoring(self, message):
        control(self, message)  # checked and acknowledged, then forgotten
        if isinstance(message, SwitchAvatar):
            self._new_painter = None

    LivePipeline.control = ignoring


def _reversed_drive() -> None:
    import realtime.pipeline

    drive = realtime.pipeline.drive

    def reversed_drive(frames, painter):
        yield from drive(list(frames)[::-1], painter)  # frame i is the picture of the parameters n - 1 - i

    realtime.pipeline.drive = reversed_drive


def _frozen_one_euro() -> None:
    from realtime.track.filters import OneEuroFilter

    call = OneEuroFilter.__call__

    def frozen(self, value, time):
        return call(self, value, time) if self._value is None else self._value.copy()

    OneEuroFilter.__call__ = frozen


def _frozen_rig_filter() -> None:
    from realtime.track.filters import FILTERED, RigParamsFilter

    call = RigParamsFilter.__call__

    def frozen(self, params, time):
        if getattr(self, "_first", None) is None:
            self._first = call(self, params, time)
        return replace(params, **{name: getattr(self._first, name) for name in FILTERED})

    RigParamsFilter.__call__ = frozen


def _neutral_driver() -> None:
    import realtime.app.offline as offline
    from realtime.rig.model import RigParams

    load = offline.load_driver

    def neutral(spec, avatar, progress=False):
        driving = load(spec, avatar, progress=progress)
        frames = [replace(RigParams.neutral(avatar.rig), shape=avatar.shape.astype(np.float32))
                  for _ in driving.frames]
        return replace(driving, frames=frames)

    offline.load_driver = neutral


_PIPELINE, _STREAM, _FILTERS = "tests/test_pipeline.py::", "tests/test_stream_server.py::", "tests/test_track_filters.py::"
_OFFLINE = "tests/test_offline.py::"

MUTANTS = {m.name: m for m in (
    Mutant("black_painter", "the painter draws black pictures", _black_painter,
           (_PIPELINE + "test_painter_draws_the_avatar_as_the_reference_deformer_and_renderer_do",)),
    Mutant("black_stream", "the stream's encoder is fed black frames", _black_stream,
           (_STREAM + "test_viewer_receives_the_bare_picture_with_capture_times_beside_it",)),
    Mutant("black_stream_in_the_browser", "the stream's encoder is fed black frames (seen by Chromium's pages)",
           _black_stream, ("tests/test_browser.py::test_chromium_sends_its_camera_and_both_pages_show_that_picture",),
           needs="chromium"),
    Mutant("dropped_control", "LivePipeline.control does nothing", _dropped_control,
           (_PIPELINE + "test_controls_set_the_background_and_switch_the_avatar",
            _PIPELINE + "test_controls_are_refused_with_clear_errors")),
    Mutant("ignored_avatar_switch", "an avatar switch is acknowledged but the old avatar goes on", _ignored_avatar_switch,
           (_PIPELINE + "test_controls_set_the_background_and_switch_the_avatar",)),
    Mutant("reversed_drive", "the offline loop draws the driving frames in reverse order", _reversed_drive,
           (_PIPELINE + "test_offline_drive_gives_one_frame_per_parameter_set_in_order",)),
    Mutant("frozen_one_euro", "the One-Euro filter holds its first value", _frozen_one_euro,
           (_FILTERS + "test_a_step_is_followed", _FILTERS + "test_a_faster_beta_lags_less")),
    Mutant("frozen_rig_filter", "the tracker's parameter filter holds the first frame's pose and expression",
           _frozen_rig_filter, (_FILTERS + "test_rig_params_filter_moves_pose_and_expression_but_not_identity",)),
    Mutant("neutral_driver", "every driver gives the neutral pose", _neutral_driver,
           (_OFFLINE + "test_tour_mp4_has_one_frame_per_driver_frame_at_its_rate",)),
    Mutant("neutral_parameter_file", "every driver gives the neutral pose (a parameter file's frames)",
           _neutral_driver, (_OFFLINE + "test_parameter_file_drives_the_avatar",)),
)}


def apply(name: str) -> Mutant:
    """Apply the mutant `name` in this process (KeyError naming the known ones if there is none such)."""
    if name not in MUTANTS:
        raise KeyError(f"unknown mutant {name!r}; known: {', '.join(MUTANTS)}")
    mutant = MUTANTS[name]
    mutant.patch()
    return mutant


def apply_from_environment() -> None:
    name = os.environ.get(ENV)
    if name:
        mutant = apply(name)
        print(f"mutant {mutant.name} applied: {mutant.breaks}", file=__import__("sys").stderr)
