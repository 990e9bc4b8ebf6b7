"""A real headless Chromium with a fake camera: sends, receives and measures glass-to-glass.

Needs Debian's ``chromium`` (skipped when absent). The page reports its decoded
frame count and the latency stamps it read over the data channel; the test reads
them back from the server's ``/stats``.
"""
import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np
import pytest
from skimage.data import astronaut

from realtime.stream.client import ServerProcess

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
TOKEN = "browser-test-token"


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Write (H, W, 3) uint8 RGB frames as a YUV4MPEG2 file with a C420 header (yuv420p planes)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n")
            f.write(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().tobytes())


def face_clip(n: int = 60, w: int = 320, h: int = 240) -> list[np.ndarray]:
    """A real face photo (scikit-image's astronaut) panning slowly, as a camera would see it."""
    img = astronaut()  # 512x512 RGB
    frames = []
    for i in range(n):
        dx = int(120 + 40 * np.sin(2 * np.pi * i / n))
        frames.append(np.ascontiguousarray(img[10:10 + h, dx:dx + w]))
    return frames


def chromium(url: str, camera: Path, profile: Path, log: Path) -> subprocess.Popen:
    flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        f"--use-file-for-fake-video-capture={camera}", "--autoplay-policy=no-user-gesture-required",
        # a viewer-only page holds no camera permission, so Chromium would hide its host candidates behind mDNS
        "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
        "--enable-logging=stderr", "--v=0",
    ]
    with open(log, "w") as err:
        return subprocess.Popen([CHROMIUM, *flags, url], stdout=subprocess.DEVNULL, stderr=err)


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
            deadline, stats = time.monotonic() + 45, None
            while time.monotonic() < deadline and all(b.poll() is None for b in browsers):
                time.sleep(0.5)
                stats = server.stats()
                roles = {s["role"]: s for s in stats["session_list"]}
                done = all(
                    s in roles and (roles[s]["client"] or {}).get("frames", 0) >= 60
                    and roles[s]["glass_to_glass_ms"]["count"] >= 30 for s in ("sender", "viewer"))
                if done and stats["producer"]["inputs"] >= 60:
                    break
            else:
                pytest.fail(f"the pages did not get there: {stats}\n--- chromium\n"
                            + "\n".join(log.read_text()[-2000:] for log in logs)
                            + f"\n--- server\n{server.log()[-3000:]}")
        finally:
            for b in browsers:
                b.terminate()
                b.wait(10)
    sender, viewer = roles["sender"], roles["viewer"]
    # the fake camera reached the producer at its own size, and drove the output
    assert stats["producer"]["input_size"] == [320, 240]
    assert sender["inputs"] >= 60
    for s in (sender, viewer):
        assert s["client"]["fps"] > 15, s
        g2g = s["glass_to_glass_ms"]
        assert 0 < g2g["p50"] < 500, s
    print(f"\nbrowser: sender fps {sender['client']['fps']}, g2g p50 {sender['glass_to_glass_ms']['p50']} ms "
          f"p95 {sender['glass_to_glass_ms']['p95']} ms; viewer fps {viewer['client']['fps']}, "
          f"g2g p50 {viewer['glass_to_glass_ms']['p50']} ms")
