"""A real headless Chromium with a fake camera: sends its camera, and both its page and a viewer page show it back.

Needs Debian's ``chromium`` (skipped when absent). Each page matches the frames it shows
(``requestVideoFrameCallback``'s ``metadata.rtpTimestamp``) with the capture times the server sends beside them,
echoes them, and reports its counters over the data channel: frames shown and matched, the size of the last one,
and what a shown frame looked like (its mean colour, spread and change since the previous report); the test reads
them back from the server's ``/stats`` and compares them with the camera frames it sent. How fast the pages
show frames and the glass-to-glass latency are measured by the live benchmark (benchmarks/bench_stream.py,
``--sender chromium``), not judged here.
"""
import numpy as np
from skimage.data import astronaut

from browser_helpers import (PageReports, chromium, needs_chromium, pages_reported, picture, sessions_by_role,
                             stop_browsers, wait_for_pages, write_y4m)
from realtime.stream.client import ServerProcess
from realtime.stream.testpattern import fit_nearest

pytestmark = needs_chromium
TOKEN = "browser-test-token"
SIZE = 256  # the test-pattern server's default
PAN = 45  # frames of one sweep of the camera: 1.5 s at 30 fps, so that frames a report (1 s) apart always differ


def face_clip(n: int = PAN, w: int = 320, h: int = 240) -> list[np.ndarray]:
    """A real face photo (scikit-image's astronaut) panned left to right and starting over, as a camera sees it."""
    img = astronaut()  # 512x512 RGB
    return [np.ascontiguousarray(img[10:10 + h, 80 + 80 * i // n: 80 + 80 * i // n + w]) for i in range(n)]


def test_chromium_sends_its_camera_and_both_pages_show_that_picture(tmp_path):
    clip = face_clip()
    camera = tmp_path / "cam.y4m"
    write_y4m(camera, clip)
    logs = [tmp_path / "sender.log", tmp_path / "viewer.log"]
    # once the camera drives the server (its frames, shown while fresh, replace the test pattern), each page's
    # reports are kept; the first one kept may still describe a frame shown before
    reports = PageReports(recording=lambda st: st["producer"]["inputs"] >= 30)

    def done(stats):
        reports.add(stats)
        return pages_reported(stats, ("sender", "viewer"), frames=60, shown=30) and all(
            len(reports.pictures(role)) >= 4 for role in ("sender", "viewer"))

    with ServerProcess(["--token", TOKEN, "--log-level", "INFO"]) as server:
        base = server.url.split("?")[0]
        # headless Chromium opens one page per process: the full client sending its camera, and /view
        browsers = [chromium(f"{base}?token={TOKEN}&autostart=sender", camera, tmp_path / "p1", logs[0]),
                    chromium(f"{base}view?token={TOKEN}", camera, tmp_path / "p2", logs[1])]
        try:
            stats = wait_for_pages(server, browsers, logs, timeout=60, done=done)
        finally:
            stop_browsers(browsers)
    roles = sessions_by_role(stats)
    sender, viewer = roles["sender"], roles["viewer"]
    # the fake camera reached the producer at its own size, and drove the output
    assert stats["producer"]["input_size"] == [320, 240]
    assert sender["inputs"] >= 60
    # what the server shows of a camera frame: the frame fitted to the stream's size (and a 4-row progress bar)
    sent = [picture(fit_nearest(frame, SIZE, SIZE)) for frame in clip]
    means, spreads = np.array([m for m, _ in sent]), np.array([s for _, s in sent])
    for s in (sender, viewer):
        client = s["client"]
        # the browser shows the bare picture, and finds the capture time of (nearly) every frame by its RTP
        # timestamp: the first few wait for the offset to be found, a message may trail its frame
        assert (client["width"], client["height"]) == (SIZE, SIZE), s
        assert client["matched"] >= 0.9 * client["frames"] - 5, s
        assert s["frame_messages_skipped"] == 0, s
        assert s["glass_to_glass_ms"]["count"] > 0 and s["glass_to_glass_ms"]["p50"] > 0, s
        # each page shows the camera's picture (its colours and contrast, not black, not the test pattern) and it
        # moves as the camera pans (a frozen picture would not change from one report to the next)
        shown = reports.pictures(s["role"])[1:]
        for report in shown:
            assert np.all(np.abs(np.array(report["mean_rgb"]) - means.mean(axis=0)) < 15), (report, means)
            assert spreads.min() - 12 < report["spread"] < spreads.max() + 12, (report, spreads)
        assert all(report["change"] > 10 for report in shown[1:]), shown
    print(f"\nbrowser: pictures shown by the sender's page {reports.pictures('sender')} and by the viewer "
          f"{reports.pictures('viewer')}; sent mean colours {means.min(axis=0)}..{means.max(axis=0)}, "
          f"spread {spreads.min():.1f}..{spreads.max():.1f}")
