"""A real headless Chromium with a fake camera: sends, receives and measures glass-to-glass.

Needs Debian's ``chromium`` (skipped when absent). Each page matches the frames it
shows (``requestVideoFrameCallback``'s ``metadata.rtpTimestamp``) with the capture
times the server sends beside them, echoes them, and reports its counters (frames
shown, frames matched, the size of the last one) over the data channel; the test
reads them back from the server's ``/stats``.
"""
import numpy as np
from skimage.data import astronaut

from browser_helpers import (chromium, needs_chromium, pages_reported, sessions_by_role, stop_browsers,
                             wait_for_pages, write_y4m)
from realtime.stream.client import ServerProcess

pytestmark = needs_chromium
TOKEN = "browser-test-token"
SIZE = 256  # the test-pattern server's default


def face_clip(n: int = 60, w: int = 320, h: int = 240) -> list[np.ndarray]:
    """A real face photo (scikit-image's astronaut) panning slowly, as a camera would see it."""
    img = astronaut()  # 512x512 RGB
    frames = []
    for i in range(n):
        dx = int(120 + 40 * np.sin(2 * np.pi * i / n))
        frames.append(np.ascontiguousarray(img[10:10 + h, dx:dx + w]))
    return frames


def test_chromium_sends_its_camera_and_views_the_stream(tmp_path):
    camera = tmp_path / "cam.y4m"
    write_y4m(camera, face_clip())
    logs = [tmp_path / "sender.log", tmp_path / "viewer.log"]
    with ServerProcess(["--token", TOKEN, "--log-level", "INFO"]) as server:
        base = server.url.split("?")[0]
        # headless Chromium opens one page per process: the full client sending its camera, and /view
        browsers = [chromium(f"{base}?token={TOKEN}&autostart=sender", camera, tmp_path / "p1", logs[0]),
                    chromium(f"{base}view?token={TOKEN}", camera, tmp_path / "p2", logs[1])]
        try:
            stats = wait_for_pages(server, browsers, logs, timeout=45, done=lambda st: pages_reported(
                st, ("sender", "viewer"), frames=60, shown=30) and st["producer"]["inputs"] >= 60)
        finally:
            stop_browsers(browsers)
    roles = sessions_by_role(stats)
    sender, viewer = roles["sender"], roles["viewer"]
    # the fake camera reached the producer at its own size, and drove the output
    assert stats["producer"]["input_size"] == [320, 240]
    assert sender["inputs"] >= 60
    for s in (sender, viewer):
        client = s["client"]
        assert client["fps"] > 15, s
        # the browser shows the bare picture, and finds the capture time of (nearly) every frame by its RTP
        # timestamp: the first few wait for the offset to be found, a message may trail its frame
        assert (client["width"], client["height"]) == (SIZE, SIZE), s
        assert client["matched"] >= 0.9 * client["frames"] - 5, s
        assert s["frame_messages_skipped"] == 0, s
        assert s["glass_to_glass_ms"]["p50"] > 0, s
    print(f"\nbrowser: sender fps {sender['client']['fps']}, g2g p50 {sender['glass_to_glass_ms']['p50']} ms "
          f"p95 {sender['glass_to_glass_ms']['p95']} ms; viewer fps {viewer['client']['fps']}, "
          f"g2g p50 {viewer['glass_to_glass_ms']['p50']} ms; frames matched {sender['client']['matched']} of "
          f"{sender['client']['frames']} and {viewer['client']['matched']} of {viewer['client']['frames']}")
