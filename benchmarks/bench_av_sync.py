"""Lip sync, measured where it is heard: the offset between a click in the voice and a flash in the picture at
each viewer, and the voice's glass-to-glass latency.

The source is a known clip: a camera that is dark but for a white flash at each of ``EVENTS_S`` (within a
``LOOP_S`` loop, at irregular gaps so no wrong pairing fits) and a microphone that is silent but for a click (a
sharp-edged 1 kHz burst) at each of the same times. The test-pattern server (``python -m realtime.stream.server``)
shows the sender's camera as its picture, so each flash reaches every viewer through the whole video path
(uplink, the producer's frame cadence, encoding, fan-out), and each click through the voice path (uplink,
decoding, the lip-sync delay, Opus, fan-out).

* **Chromium**: a headless Chromium sender (the full client, its fake camera a ``.y4m`` of the clip, its fake
  microphone a ``.wav`` of the clicks), a headless Chromium viewer on ``/view`` and a Python viewer. A probe
  (``benchmarks/av_probe.js``, injected over the DevTools protocol, no part of the pages) times each flash at
  its expected display time (``requestVideoFrameCallback``) and each click at the time the page's audio output
  plays it (an AudioWorklet on the received track, ``AudioContext.getOutputTimestamp``). On the sender page it
  watches the local preview, as captured (a flash at its camera frame's capture time, a click when the audio
  graph took it in): the offset the fake devices themselves start with (``source``; Chromium's fake camera and
  microphone start apart by up to tens of milliseconds, differently each run), which the viewers inherit, and
  which drifts as they play (by tens of milliseconds over seconds here); ``added`` is what the way from the
  sender's devices to the viewer's playing adds to it, event by event: the figure the server answers for.
* **Python**: a Python sender (``ArrayVideoTrack`` + ``ArrayAudioTrack``, whose send times are the truth) and a
  Python viewer. aiortc's receivers hand a video frame over when the next one starts arriving (one frame
  interval late) and an audio frame once four more are buffered (80 ms late, ``lipsync.py``); ``raw`` offsets
  are hand-over times, ``played`` ones those of a player that plays each stream a constant delay after its
  timestamps, the holds taken off (``PythonViewer``).

Offsets are click minus flash, in ms: positive when the voice comes after the mouth. EBU R37's window for the
end-to-end result is ``[-EARLY_MS, +LATE_MS]`` (the voice at most 40 ms early, 60 ms late).

    python -m benchmarks.bench_av_sync [--seconds 20] [--no-browser]

Writes benchmarks/results/av_sync_<machine>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import tempfile
import time
import urllib.request
import wave
from pathlib import Path

import numpy as np
from websockets.asyncio.client import connect as ws_connect

from realtime.stream.client import ArrayAudioTrack, ArrayVideoTrack, PeerClient, ServerProcess
from realtime.stream.lipsync import AIORTC_AUDIO_HOLD_FRAMES

from ._meta import machine_tag, metadata, write_result
from .chromium import CHROMIUM, stop_browsers, write_y4m

LOOP_S = 4.0
EVENTS_S = (0.3, 1.1, 1.7, 2.7, 3.3)  # flash + click times within a loop (gaps 0.6 s to 1.0 s; whole frames)
FPS = 30
CAMERA = (240, 320)  # H, W
FLASH_FRAMES = 3  # 100 ms of white
RATE = 48_000
CLICK_S = 0.04
DARK, WHITE = 24, 235
FLASH_LEVEL = 128.0  # mean brightness a flash crosses (the probe's FLASH_LEVEL)
CLICK_LEVEL = 0.1  # of full scale (the probe's CLICK_LEVEL)
QUIET_S = 0.25  # silence before a click counts as a new one
PAIR_MS = 250.0  # a click and a flash further apart than this are not one event
EARLY_MS, LATE_MS = 40.0, 60.0  # EBU R37
PROBE = Path(__file__).with_name("av_probe.js")
SETTLE_S = 3.0  # after the pages connect, before measuring (jitter buffers, the lip-sync delay)


# ---- the clip ---------------------------------------------------------------------------------------------------

def flash_frames() -> list[np.ndarray]:
    """One loop of the camera: (H, W, 3) uint8 RGB frames at FPS, dark but white for FLASH_FRAMES at each event."""
    frames = [np.full((*CAMERA, 3), DARK, np.uint8) for _ in range(int(LOOP_S * FPS))]
    for t in EVENTS_S:
        for k in range(FLASH_FRAMES):
            frames[round(t * FPS) + k][:] = WHITE
    return frames


def click_samples() -> np.ndarray:
    """One loop of the microphone: (n,) int16 at RATE, silent but for a click at each event."""
    samples = np.zeros(int(LOOP_S * RATE), np.int16)
    burst = (0.5 * 32767 * np.sin(2 * np.pi * 1000 * np.arange(int(CLICK_S * RATE)) / RATE)).astype(np.int16)
    for t in EVENTS_S:
        start = round(t * RATE)
        samples[start:start + burst.size] = burst
    return samples


def write_wav(path: Path, samples: np.ndarray) -> None:
    with wave.open(str(path), "wb") as f:
        f.setnchannels(1)
        f.setsampwidth(2)
        f.setframerate(RATE)
        f.writeframes(samples.tobytes())


# ---- events and offsets --------------------------------------------------------------------------------------------

def rising_edges(times_ms: list[float], levels: list[float], threshold: float) -> list[float]:
    """The times at which ``levels`` crosses up through ``threshold``."""
    out, above = [], False
    for t, level in zip(times_ms, levels):
        if level > threshold and not above:
            out.append(t)
        above = level > threshold
    return out


def click_onsets(blocks: list[tuple[float, np.ndarray]], rate: int) -> list[float]:
    """Click times (ms) in consecutive sample blocks ``(time of the block's first sample in ms, (n,) int16)``: the
    first sample above CLICK_LEVEL after QUIET_S of quiet."""
    out, quiet, level = [], int(QUIET_S * rate), CLICK_LEVEL * 32768
    for start_ms, samples in blocks:
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > level)
        if not loud.size:
            quiet += samples.size
            continue
        if quiet + loud[0] >= QUIET_S * rate:
            out.append(start_ms + loud[0] * 1000.0 / rate)
        quiet = samples.size - 1 - loud[-1]
    return out


def pair(clicks: list[float], flashes: list[float], window_ms: float = PAIR_MS) -> list[float]:
    """For each click, click minus the nearest flash within ``window_ms`` (ms; positive: the voice is late)."""
    if not flashes:
        return []
    f = np.asarray(sorted(flashes))
    out = []
    for c in clicks:
        nearest = f[np.argmin(np.abs(f - c))]
        if abs(c - nearest) <= window_ms:
            out.append(float(c - nearest))
    return out


def matched(later: list[float], earlier: list[float], max_ms: float = 2000.0, tol_ms: float = 50.0) \
        -> list[tuple[float, float]]:
    """The same events seen twice, ``(earlier, later)`` pairs: the lag that lines up the most of ``later`` with
    ``earlier`` (events at irregular gaps make it unique, even when it is longer than a gap), then each event of
    ``earlier`` with the event of ``later`` nearest to it plus that lag, within ``3 * tol_ms``."""
    if not later or not earlier:
        return []
    e, l = np.asarray(earlier), np.asarray(later)
    misses = np.abs(l[:, None] - e[None, :])
    lags = np.arange(0.0, max_ms, 5.0)
    hits = [int(np.sum(np.min(np.abs(misses - d), axis=1) < tol_ms)) for d in lags]
    lag = lags[int(np.argmax(hits))]
    out = []
    for t in e:
        nearest = l[np.argmin(np.abs(l - t - lag))]
        if abs(nearest - t - lag) <= 3 * tol_ms:
            out.append((float(t), float(nearest)))
    return out


def after(later: list[float], earlier: list[float]) -> list[float]:
    """For each event seen in ``earlier`` and again in ``later`` (``matched``), how much later (ms)."""
    return [b - a for a, b in matched(later, earlier)]


def summary(offsets: list[float]) -> dict:
    """p5/p50/p95 and the share within the EBU window of a list of offsets (ms)."""
    if not offsets:
        return {"count": 0}
    a = np.asarray(offsets)
    p5, p50, p95 = np.percentile(a, [5, 50, 95])
    return {"count": int(a.size), "p5_ms": round(float(p5), 1), "p50_ms": round(float(p50), 1),
            "p95_ms": round(float(p95), 1), "min_ms": round(float(a.min()), 1), "max_ms": round(float(a.max()), 1),
            "within_ebu_r37": round(float(np.mean((a >= -EARLY_MS) & (a <= LATE_MS))), 3)}


# ---- the Python viewer ------------------------------------------------------------------------------------------

class PythonViewer:
    """A listening PeerClient that turns what it receives into flash and click times (monotonic ms).

    Hand-over times (``raw``) carry whatever kept this process's event loop busy, and aiortc's receive holds: it
    hands a video frame over when the next one begins to arrive, an audio frame when the fourth after it
    arrives (``lipsync.py``). ``played`` times are those of a player that plays each stream at a constant delay
    after its RTP timestamps: frame k arrived when it was sent, about its timestamp plus the transit; frame
    k + h (h: 1 for video, 4 for audio) released it, so ``handed_k - stamp_(k+h)`` is that transit plus any
    lateness of this loop, and the smallest of them (a frame is never handed over early) is the delay.
    """

    def __init__(self, ws_url: str) -> None:
        self.client = PeerClient(ws_url, listen=True)
        self.frames: list[tuple[float, int, float]] = []  # (handed-over ms, pts in 1/90000 s, mean luma)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        await self.client.connect()
        self._task = asyncio.get_running_loop().create_task(self._watch())

    async def _watch(self) -> None:
        """Drain the video, keeping each frame's hand-over time, pts and mean luma (read off its Y plane, no
        conversion: the event loop stays free to time the voice)."""
        track = self.client.track
        while True:
            frame = await track.recv()
            got = time.monotonic_ns() / 1e6
            y = frame.planes[0]
            luma = np.frombuffer(y, np.uint8).reshape(-1, y.line_size)[:frame.height, :frame.width]
            self.frames.append((got, int(frame.pts), float(luma.mean())))

    def events(self, since_ms: float, played: bool) -> tuple[list[float], list[float]]:
        """(flashes, clicks) of what was handed over after ``since_ms``: hand-over times, or ``played`` times."""
        frames = [f for f in self.frames if f[0] >= since_ms]
        heard = [h for h in self.client.heard if h.got_ms >= since_ms]
        if not frames or not heard:
            return [], []
        times = [got for got, _, _ in frames]
        if played:
            times = _played(times, [pts / 90.0 for _, pts, _ in frames], 1)
        flashes = rising_edges(times, [luma for _, _, luma in frames], FLASH_LEVEL)
        rate = heard[0].sample_rate
        starts = [h.got_ms for h in heard]
        if played:
            starts = _played(starts, [h.pts * 1000.0 / rate for h in heard], AIORTC_AUDIO_HOLD_FRAMES)
        return flashes, click_onsets([(t, h.samples) for t, h in zip(starts, heard)], rate)

    def offsets(self, since_ms: float) -> dict:
        """The ``raw`` and ``played`` offsets (``summary``), and the flashes and clicks seen."""
        out = {}
        for name, played in (("raw", False), ("played", True)):
            flashes, clicks = self.events(since_ms, played)
            out[name] = summary(pair(clicks, flashes))
        out["flashes"], out["clicks"] = (len(x) for x in self.events(since_ms, False))
        return out

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
        await self.client.close()


def _played(handed_ms: list[float], stamp_ms: list[float], hold: int) -> list[float]:
    """Play times of frames handed over at ``handed_ms`` with timestamps ``stamp_ms``, each released by the frame
    ``hold`` after it (``PythonViewer``)."""
    handed, stamp = np.asarray(handed_ms), np.asarray(stamp_ms)
    if stamp.size <= hold:
        return list(handed)
    return list(stamp + np.min(handed[:-hold] - stamp[hold:]))


async def python_run(server: ServerProcess, seconds: float) -> dict:
    """A Python sender of the clip and a Python viewer: the offsets at the viewer, the offsets the sender sent
    (its send times), and the voice's and the picture's glass-to-glass (sent → played)."""
    video, voice = ArrayVideoTrack(flash_frames(), FPS), ArrayAudioTrack(click_samples())
    sender = PeerClient(server.ws_url, "sender", video, voice=voice)
    await sender.connect()
    viewer = PythonViewer(server.ws_url)
    await viewer.start()
    await asyncio.sleep(SETTLE_S)
    since = time.monotonic_ns() / 1e6
    await asyncio.sleep(seconds)
    flashes, clicks = viewer.events(since, played=True)
    # what was sent: the send time of each flash frame and each click's frame (plus the click's place in it)
    flash_at = {round(t * FPS) for t in EVENTS_S}
    sent_flashes = [ns / 1e6 for k, ns in enumerate(video.sent_ns) if k % int(LOOP_S * FPS) in flash_at]
    first = voice.sent - len(voice.sent_ns)
    loop_frames = int(LOOP_S * RATE) // 960
    click_at = {round(t * RATE) // 960: round(t * RATE) % 960 for t in EVENTS_S}
    sent_clicks = [ns / 1e6 + click_at[(first + i) % loop_frames] * 1000.0 / RATE
                   for i, ns in enumerate(voice.sent_ns) if (first + i) % loop_frames in click_at]
    sent_flashes = [t for t in sent_flashes if t >= since - 1000]
    sent_clicks = [t for t in sent_clicks if t >= since - 1000]
    result = {
        "seconds": seconds,
        "viewer": viewer.offsets(since),
        "sent": summary(pair(sent_clicks, sent_flashes)),
        "voice_glass_to_glass_ms": summary_ms(after(clicks, sent_clicks)),
        "picture_glass_to_glass_ms": summary_ms(after(flashes, sent_flashes)),
        "server_voice": (await asyncio.to_thread(server.stats))["voice"],
    }
    await viewer.close()
    await sender.close()
    return result


def summary_ms(values: list[float]) -> dict:
    if not values:
        return {"count": 0}
    p50, p95 = np.percentile(values, [50, 95])
    return {"count": len(values), "p50_ms": round(float(p50), 1), "p95_ms": round(float(p95), 1)}


# ---- headless Chromium with the probe ------------------------------------------------------------------------------

def chromium_page(url: str, profile: Path, log: Path, camera: Path | None = None,
                  mic: Path | None = None) -> subprocess.Popen:
    """Headless Chromium on ``url`` with the DevTools protocol on a free port (written to the profile's
    DevToolsActivePort); the flags of benchmarks/chromium.py, and the clip's files as fake camera and microphone."""
    flags = [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync",
        f"--user-data-dir={profile}", "--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
        "--autoplay-policy=no-user-gesture-required", "--disable-features=WebRtcHideLocalIpsWithMdns",
        "--disable-renderer-backgrounding", "--disable-background-timer-throttling",
        "--remote-debugging-port=0", "--enable-logging=stderr", "--v=0",
    ]
    if camera is not None:
        flags.append(f"--use-file-for-fake-video-capture={camera}")
    if mic is not None:
        flags.append(f"--use-file-for-fake-audio-capture={mic}")
    with open(log, "w") as err:
        return subprocess.Popen([CHROMIUM, *flags, url], stdout=subprocess.DEVNULL, stderr=err)


class DevTools:
    """The DevTools protocol of one headless Chromium's page: ``evaluate`` JavaScript there."""

    def __init__(self, profile: Path) -> None:
        self.profile = profile
        self._ws = None
        self._id = 0

    async def connect(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        port_file = self.profile / "DevToolsActivePort"
        while time.monotonic() < deadline:
            if port_file.is_file() and port_file.read_text().strip():
                port = port_file.read_text().split()[0]
                targets = await asyncio.to_thread(_json, f"http://127.0.0.1:{port}/json/list")
                pages = [t for t in targets if t.get("type") == "page"]
                if pages:
                    self._ws = await ws_connect(pages[0]["webSocketDebuggerUrl"], max_size=None)
                    return
            await asyncio.sleep(0.2)
        raise TimeoutError(f"no DevTools page in {timeout} s ({port_file})")

    async def evaluate(self, expression: str, timeout: float = 10.0):
        self._id += 1
        await self._ws.send(json.dumps({"id": self._id, "method": "Runtime.evaluate",
                                        "params": {"expression": expression, "returnByValue": True}}))
        deadline = time.monotonic() + timeout
        while True:
            reply = json.loads(await asyncio.wait_for(self._ws.recv(), max(0.01, deadline - time.monotonic())))
            if reply.get("id") == self._id:
                result = reply.get("result", {})
                if "exceptionDetails" in result:
                    raise RuntimeError(f"the page threw: {result['exceptionDetails']}")
                return result.get("result", {}).get("value")

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()


def _json(url: str):
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.loads(r.read())


async def probe(tools: DevTools, url: str, video_id: str, timeout: float = 30.0) -> None:
    """Inject the probe into the page once it has loaded ``url``, watching the <video> ``video_id``."""
    deadline = time.monotonic() + timeout
    while await tools.evaluate("location.href + ' ' + document.readyState") != f"{url} complete":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the page did not load {url} in {timeout} s")
        await asyncio.sleep(0.2)
    await tools.evaluate(PROBE.read_text())
    await tools.evaluate(f"avProbe.start({json.dumps(video_id)})")


async def probed(tools: DevTools) -> dict:
    return json.loads(await tools.evaluate("JSON.stringify(avProbe)"))


def since(events: list[dict], epoch_ms: float) -> list[float]:
    return [e["t"] for e in events if e["t"] >= epoch_ms]


class Pages:
    """The Chromium run's peers (module docstring), probed: a Chromium sender of the clip on the full client, a
    Chromium viewer on ``/view`` (``view_query``: more of its query, e.g. ``volume=0.5``) and a Python viewer.
    An async context manager; ``evaluate(role, js)`` runs JavaScript in the ``sender`` or ``viewer`` page."""

    def __init__(self, server: ServerProcess, folder: Path, view_query: str = "") -> None:
        self.server, self.folder = server, folder
        base, _, query = server.url.partition("?")
        self.urls = {"sender": f"{base}?{'&'.join(filter(None, [query, 'autostart=sender']))}",
                     "viewer": f"{base}view" + (f"?{'&'.join(filter(None, [query, view_query]))}"
                                                if query or view_query else "")}
        self.browsers: dict[str, subprocess.Popen] = {}
        self.tools: dict[str, DevTools] = {}
        self.python = PythonViewer(server.ws_url)

    async def __aenter__(self) -> "Pages":
        camera, mic = self.folder / "flashes.y4m", self.folder / "clicks.wav"
        write_y4m(camera, flash_frames(), FPS)
        write_wav(mic, click_samples())
        try:
            for role, url in self.urls.items():
                media = dict(camera=camera, mic=mic) if role == "sender" else {}
                self.browsers[role] = chromium_page(url, self.folder / f"profile-{role}",
                                                    self.folder / f"{role}.log", **media)
                self.tools[role] = DevTools(self.folder / f"profile-{role}")
                await self.tools[role].connect()
                await probe(self.tools[role], url, "preview" if role == "sender" else "avatar")
            await self.python.start()
            await self._wait_started()
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        for tools in self.tools.values():
            await tools.close()
        stop_browsers(list(self.browsers.values()))
        await self.python.close()

    async def evaluate(self, role: str, expression: str):
        return await self.tools[role].evaluate(expression)

    async def _wait_started(self, timeout: float = 45.0) -> None:
        deadline, states = time.monotonic() + timeout, {}
        while time.monotonic() < deadline:
            states = {role: await probed(t) for role, t in self.tools.items()}
            if all(s["started"] and s["audioBlocks"] > 0 for s in states.values()):
                return
            if any(b.poll() is not None for b in self.browsers.values()):
                break
            await asyncio.sleep(0.5)
        logs = "\n".join((self.folder / f"{role}.log").read_text()[-1500:] for role in self.browsers)
        raise TimeoutError(f"the pages did not start playing: {states}\n{logs}")

    def _python_epoch(self, since_mono_ms: float) -> tuple[list[float], list[float]]:
        """The Python viewer's played (clicks, flashes) since ``since_mono_ms``, on the pages' epoch clock."""
        to_epoch = time.time() * 1000 - time.monotonic_ns() / 1e6
        flashes, clicks = self.python.events(since_mono_ms, played=True)
        return [c + to_epoch for c in clicks], [f + to_epoch for f in flashes]

    async def measure(self, seconds: float) -> dict:
        """Watch for ``seconds``; the offsets at each viewer, the source's, and the glass-to-glass latencies."""
        start_epoch, start_mono = time.time() * 1000, time.monotonic_ns() / 1e6
        await asyncio.sleep(seconds)
        seen = {role: await probed(t) for role, t in self.tools.items()}
        stats = await asyncio.to_thread(self.server.stats)
        sender, watcher = seen["sender"], seen["viewer"]
        # the source as captured: each flash at its camera frame's capture time, each click as the audio graph
        # took it in (the microphone's own input latency, some milliseconds, is not known to the page)
        sent_clicks = [c["taken"] for c in sender["clicks"] if c["t"] >= start_epoch - 1000]
        sent_flashes = [f["capture"] for f in sender["flashes"] if f["t"] >= start_epoch - 1000 and f["capture"]]
        clicks, flashes = since(watcher["clicks"], start_epoch), since(watcher["flashes"], start_epoch)
        return {
            "seconds": seconds,
            "viewer": {**summary(pair(clicks, flashes)), "flashes": len(flashes), "clicks": len(clicks),
                       "audio_peak": round(watcher["peak"], 3), "output_latency_s": watcher.get("outputLatency")},
            "source": {**summary(pair(sent_clicks, sent_flashes)), "flashes": len(sent_flashes),
                       "clicks": len(sent_clicks)},
            "added": summary(added((clicks, flashes), (sent_clicks, sent_flashes))),
            "voice_glass_to_glass_ms": summary_ms(after(clicks, sent_clicks)),
            "picture_glass_to_glass_ms": summary_ms(after(flashes, sent_flashes)),
            "python_viewer": {**self.python.offsets(start_mono),
                              "added": summary(added(self._python_epoch(start_mono), (sent_clicks, sent_flashes)))},
            "server_voice": stats["voice"],
            "sessions": [{"role": s["role"], "fps": (s["client"] or {}).get("fps"),
                          "picture_glass_to_glass_ms": s["glass_to_glass_ms"], "voice": s["voice"]}
                         for s in stats["session_list"]],
        }


def added(viewer: tuple[list[float], list[float]], source: tuple[list[float], list[float]]) -> list[float]:
    """What the way from the source to a viewer adds to each event's offset (ms): ``(clicks, flashes)`` at each
    end; an event is a click at the source and the same click at the viewer (``matched``), each with its offset
    from its own nearest flash. Per event, since the fake devices drift apart as they play."""
    (v_clicks, v_flashes), (s_clicks, s_flashes) = viewer, source
    out = []
    for here, there in matched(v_clicks, s_clicks):
        at_source, at_viewer = pair([here], s_flashes), pair([there], v_flashes)
        if at_source and at_viewer:
            out.append(at_viewer[0] - at_source[0])
    return out


async def chromium_run(server: ServerProcess, seconds: float, folder: Path) -> dict:
    """The Chromium run (module docstring): ``seconds`` of measuring after the pages settle."""
    async with Pages(server, folder) as pages:
        await asyncio.sleep(SETTLE_S)
        return await pages.measure(seconds)


# ---- the benchmark ------------------------------------------------------------------------------------------------

def run(seconds: float = 20.0, browser: bool = True) -> dict:
    """Both runs (the Chromium one when ``browser`` and Chromium is installed); a JSON-able dict."""
    load_before = os.getloadavg()[0]
    result = {"benchmark": "av_sync", "meta": metadata(), "events_s": list(EVENTS_S), "loop_s": LOOP_S,
              "ebu_r37_window_ms": [-EARLY_MS, LATE_MS]}
    with ServerProcess(["--log-level", "WARNING"]) as server:
        result["python"] = asyncio.run(python_run(server, seconds))
    if browser and CHROMIUM is not None:
        with ServerProcess(["--log-level", "WARNING"]) as server, tempfile.TemporaryDirectory() as folder:
            result["chromium"] = asyncio.run(chromium_run(server, seconds, Path(folder)))
    else:
        result["chromium"] = {"error": "not measured: " + ("chromium not installed" if browser else "--no-browser")}
    result["load_average_1m"] = {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)}
    result["notes"] = ("Offsets are click minus flash at the viewer (ms, positive: the voice after the mouth); "
                       "EBU R37 asks for -40..+60 ms. 'source' is what the Chromium sender's fake devices start "
                       "with, as its own page plays them; every viewer inherits it. Python 'raw' offsets are "
                       "aiortc's hand-over times, 'played' those of a player at a constant delay after the RTP "
                       "timestamps, aiortc's receive holds taken off (lipsync.py). Loopback "
                       "on one machine, test-pattern server (the sender's camera is its picture).")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measuring time of each run")
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()
    result = run(args.seconds, browser=not args.no_browser)
    for name in ("python", "chromium"):
        print(name, json.dumps(result[name], indent=1)[:3000], flush=True)
    print(write_result(f"av_sync_{machine_tag()}", result))


if __name__ == "__main__":
    main()
