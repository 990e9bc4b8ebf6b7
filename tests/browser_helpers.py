"""The headless-Chromium tests' pieces: the skip marker, the check that the pages reported, and what the pages
say they show; the browser itself (fake camera file, start, stop, the server's pages) is benchmarks/chromium.py,
which the live benchmark uses too.

Each page measures a frame it shows once a report (client_web/app.js, ``PictureMeter``) and reports its mean
colour, spread and change beside its counters; `picture` computes the same measures of a picture here, so a test
compares what a page showed with what was sent.
"""
from __future__ import annotations

import numpy as np
import pytest

from benchmarks.chromium import CHROMIUM, chromium, sessions_by_role, stop_browsers, wait_for_pages, write_y4m

__all__ = ["PageReports", "chromium", "needs_chromium", "pages_reported", "picture", "sessions_by_role",
           "stop_browsers", "wait_for_pages", "write_y4m"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def pages_reported(stats: dict, roles: tuple[str, ...], frames: int, shown: int) -> bool:
    """Whether each page in `roles` reported at least `frames` shown frames and echoed the capture times of
    `shown` of them (the server's glass-to-glass samples for that page)."""
    by_role = sessions_by_role(stats)
    return all(role in by_role and (by_role[role]["client"] or {}).get("frames", 0) >= frames
               and by_role[role]["glass_to_glass_ms"]["count"] >= shown for role in roles)


def picture(image: np.ndarray) -> tuple[np.ndarray, float]:
    """(mean colour (3,), spread) of an (H, W, 3) uint8 picture, as a page measures a frame it shows: the spread
    is the standard deviation of the pixel values, each channel around its own mean, averaged over the channels."""
    pixels = image.reshape(-1, 3).astype(np.float64)
    return pixels.mean(axis=0), float(np.sqrt(pixels.var(axis=0).mean()))


class PageReports:
    """Each page's counters reports (its 'client' entry in the server's /stats), one per report, in order, from
    the first `/stats` poll that `add` is given with `recording(stats)` true on."""

    def __init__(self, recording=lambda stats: True) -> None:
        self.recording, self.started = recording, False
        self.by_role: dict[str, list[dict]] = {}

    def add(self, stats: dict) -> None:
        self.started = self.started or self.recording(stats)
        if not self.started:
            return
        for role, session in sessions_by_role(stats).items():
            client = session["client"]
            seen = self.by_role.setdefault(role, [])
            if client is not None and (not seen or seen[-1] != client):
                seen.append(client)

    def pictures(self, role: str) -> list[dict]:
        """The reports of `role` that carry a measured picture."""
        return [r for r in self.by_role.get(role, []) if r.get("mean_rgb") is not None]


def demo_pose_faces(poses: dict[str, tuple[float, float]], size: int) -> dict[str, np.ndarray]:
    """The demo avatar in each pose (name -> (jaw, yaw) in radians), rendered by the offline loop at size x size:
    name -> (size, size, 3) uint8. The demo is built and cached on first use."""
    from realtime.app.library import resolve_avatar
    from realtime.painter import AvatarPainter
    from realtime.pipeline import drive
    from realtime.rig.model import RigParams

    avatar, _ = resolve_avatar("demo")
    painter = AvatarPainter(avatar, avatar.camera.resized(size, size), backend="cpu")
    frames = []
    for jaw, yaw in poses.values():
        params = RigParams.neutral(avatar.rig)
        params.shape = avatar.shape.astype(np.float32)
        params.jaw_pose = np.array([jaw, 0, 0], np.float32)
        params.rotation = np.array([0, yaw, 0], np.float32)
        frames.append(params)
    return {name: out.image for name, out in zip(poses, drive(frames, painter))}
