"""Headless Chromium as a user starts it, for the live benchmark and the browser tests: a fake camera file, the
browser on a page, and the server's view of its pages.

Flags as seen working on this machine: Debian's ``chromium`` headless, as root, with a ``.y4m`` file as its camera.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import av
import numpy as np

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def write_y4m(path: Path, frames: list[np.ndarray], fps: int = 30) -> None:
    """Write (H, W, 3) uint8 RGB frames as a YUV4MPEG2 file with a C420 header (yuv420p planes)."""
    h, w = frames[0].shape[:2]
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F{fps}:1 Ip A1:1 C420\n".encode())
        for rgb in frames:
            f.write(b"FRAME\n")
            f.write(av.VideoFrame.from_ndarray(rgb, format="rgb24").reformat(format="yuv420p").to_ndarray().tobytes())


def chromium(url: str, camera: Path, profile: Path, log: Path) -> subprocess.Popen:
    """Headless Chromium opening `url`, with `camera` (.y4m) as its camera and a fresh profile dir; stderr to `log`."""
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


def stop_browsers(browsers: list[subprocess.Popen]) -> None:
    for browser in browsers:
        browser.terminate()
        try:
            browser.wait(10)
        except subprocess.TimeoutExpired:
            browser.kill()
            browser.wait()


def sessions_by_role(stats: dict) -> dict[str, dict]:
    """The server's /stats sessions, keyed by role ('sender', 'viewer')."""
    return {s["role"]: s for s in stats["session_list"]}


def wait_for_pages(server, browsers: list[subprocess.Popen], logs: list[Path], done, timeout: float) -> dict:
    """Poll the server's /stats until `done(stats)`; the last stats. TimeoutError with the browsers' and the
    server's logs when the browsers exit or `timeout` seconds pass first."""
    deadline, stats = time.monotonic() + timeout, None
    while time.monotonic() < deadline and all(b.poll() is None for b in browsers):
        time.sleep(0.5)
        stats = server.stats()
        if done(stats):
            return stats
    raise TimeoutError(f"the pages did not get there: {stats}\n--- chromium\n"
                       + "\n".join(log.read_text()[-2000:] for log in logs)
                       + f"\n--- server\n{server.log()[-3000:]}")
