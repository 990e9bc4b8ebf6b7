"""Stream quality: what a viewer decodes against what the server rendered, and what one encode for many costs.

* psnr: a StreamServer in this process plays a clip (``avatar``: the demo avatar's expression tour rendered
  here at the size; ``photo``: scikit-image's astronaut photo panning, a textured picture that needs no
  renderer) at 25 fps; one Python viewer decodes the stream, and each decoded frame is matched to the frame the
  server rendered by its pts (the viewer finds each frame's capture time from the frame messages, and the
  producer filed every frame under its capture time). PSNR of the decoded luma against the server's own I420
  conversion of that frame (what the codec and the network lost; the target, >= 36 dB at 512 px, is on this)
  and of the decoded RGB against the rendered RGB (4:2:0 chroma included, beside the PSNR of the I420
  conversion alone, the ceiling of any 4:2:0 stream): mean, 5th percentile and minimum over the frames after
  the first second, with the stream's configured and measured bitrate and its keyframes.
* fanout: a StreamServer in a child process plays the first content's clip (the test pattern would not do:
  its still background costs the encoder next to nothing) to 1, 4 and 8 Python viewers in this process: each
  viewer's fps (frames it decoded whose capture time falls in the measured window, so a backlog at the start
  does not count), the server process's CPU time per published frame, frames encoded against frames published
  (one encode for all), and each viewer's wait from its offer to its first decoded frame (it starts at a
  keyframe made for it).

Other work on this 2-core machine skews every timing: the 1-minute load average is recorded beside each run.

    python -m benchmarks.bench_stream_quality [--sizes 256 512] [--viewers 1 4 8] [--seconds 8]
        [--content avatar photo] [--codec vp8]

Writes benchmarks/results/stream_quality_<machine>.json; `python -m benchmarks` runs it as its stream_quality section.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import time
import urllib.request
from typing import AsyncIterator

import av
import numpy as np
from skimage.data import astronaut

from realtime.controls import Control
from realtime.frames import OutputFrame
from realtime.meters import ProducerStats
from realtime.stream.client import PeerClient
from realtime.stream.server import StreamServer

from ._meta import cpu_seconds, load_1m, machine_tag, metadata, write_result
from .bench_live import face_clip

FPS = 25.0
WARMUP_S = 1.0
AVATAR_FRAMES = 50  # two seconds of the tour, looped
TARGET_PSNR_DB = 36.0


def photo_clip(size: int, frames: int = 100) -> list[np.ndarray]:
    """The astronaut photo (512 x 512) scaled to `size` and panning sideways, a few pixels a frame."""
    photo = astronaut()[:: 512 // size, :: 512 // size]
    wide = np.pad(photo, ((0, 0), (0, size // 4), (0, 0)), mode="reflect")
    shifts = (size // 8 * (1 + np.sin(2 * np.pi * np.arange(frames) / frames))).astype(int)
    return [np.ascontiguousarray(wide[:, dx:dx + size]) for dx in shifts]


def psnr_db(a: np.ndarray, b: np.ndarray) -> float:
    mse = np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2)
    return float("inf") if mse == 0 else float(10 * np.log10(255.0 ** 2 / mse))


class ClipProducer:
    """A FrameProducer (see realtime.stream.producer) that plays `clip` in a loop at `fps` and files each frame it
    makes under its capture time in ms (as the server announces it, to the microsecond)."""

    def __init__(self, clip: list[np.ndarray], fps: float = FPS) -> None:
        self.clip, self.fps = clip, fps
        self.rendered: dict[float, np.ndarray] = {}
        self.frames_made = 0

    async def frames(self) -> AsyncIterator[OutputFrame]:
        loop = asyncio.get_running_loop()
        deadline = loop.time()
        while True:
            await asyncio.sleep(max(0.0, deadline - loop.time()))
            deadline = max(deadline + 1 / self.fps, loop.time())
            image = self.clip[self.frames_made % len(self.clip)]
            now = time.monotonic_ns()
            self.rendered[round(now / 1e6, 3)] = image
            self.frames_made += 1
            yield OutputFrame(image, now, index=self.frames_made - 1)

    def push_input(self, image: np.ndarray, capture_ts_ns: int) -> None:
        raise ValueError("the clip producer takes no camera")

    def control(self, message: Control) -> None:
        raise ValueError("the clip producer takes no controls")

    def stats(self) -> ProducerStats:
        h, w = self.clip[0].shape[:2]
        return ProducerStats(frames=self.frames_made, fps=self.fps, size=(w, h), inputs=0, input_drops=0,
                             input_size=None, background=(0, 0, 0), recalibrations=0, driver="clip")


def _serve_clip(clip: list[np.ndarray], options: dict, port, stop) -> None:
    """The child process of ClipServer: a StreamServer playing `clip` until `stop` is set."""
    async def main() -> None:
        async with StreamServer(ClipProducer(clip), port=0, **options) as server:
            port.put(server.port)
            while not stop.is_set():
                await asyncio.sleep(0.1)
    asyncio.run(main())


class ClipServer:
    """A StreamServer playing a clip in a child process (so its CPU time is its own); a context manager."""

    def __init__(self, clip: list[np.ndarray], **options) -> None:
        context = multiprocessing.get_context("spawn")
        self._port, self._stop = context.Queue(), context.Event()
        self.proc = context.Process(target=_serve_clip, args=(clip, options, self._port, self._stop), daemon=True)

    def __enter__(self) -> "ClipServer":
        self.proc.start()
        port = self._port.get(timeout=120)
        self.ws_url, self._stats_url = f"ws://127.0.0.1:{port}/ws", f"http://127.0.0.1:{port}/stats"
        return self

    def stats(self) -> dict:
        with urllib.request.urlopen(self._stats_url, timeout=10) as r:
            return json.loads(r.read())

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self.proc.join(10)
        if self.proc.is_alive():
            self.proc.kill()
            self.proc.join()


def summary_db(values: list[float]) -> dict:
    a = np.asarray(values)
    return {"mean": round(float(a.mean()), 2), "p5": round(float(np.percentile(a, 5)), 2),
            "min": round(float(a.min()), 2), "frames": int(a.size)}


async def measure_psnr(clip: list[np.ndarray], seconds: float, codec: str = "vp8",
                       bitrate: int | None = None) -> dict:
    """PSNR of one viewer's decoded frames against the rendered ones, over `seconds` after WARMUP_S."""
    producer = ClipProducer(clip)
    async with StreamServer(producer, port=0, codec=codec, bitrate=bitrate, fps=FPS) as server:
        viewer = PeerClient(server.page_url("ws"))
        await viewer.connect()
        await viewer.receive(int(WARMUP_S * FPS), timeout=30)
        before = server.encoder.stats()
        started = time.monotonic()
        got = []
        while time.monotonic() - started < seconds:
            got += await viewer.receive(1, timeout=30, keep_images=True)
        await asyncio.sleep(0.3)  # the last frames' messages
        after = server.encoder.stats()
        wall = time.monotonic() - started
        await viewer.close()
    y_db, rgb_db, i420_db, unmatched = [], [], [], 0
    for r in got:
        rendered = producer.rendered.get(r.capture_ms) if r.capture_ms is not None else None
        if rendered is None:
            unmatched += 1
            continue
        h = rendered.shape[0]
        sent = av.VideoFrame.from_ndarray(rendered, format="rgb24").reformat(format="yuv420p")
        y_db.append(psnr_db(r.yuv[:h], sent.to_ndarray()[:h]))
        rgb_db.append(psnr_db(r.image, rendered))
        i420_db.append(psnr_db(sent.to_ndarray(format="rgb24"), rendered))
    size = clip[0].shape[0]
    return {"size": size, "codec": codec, "bitrate_bps": after.bitrate,
            "measured_bps": round((after.bytes - before.bytes) * 8 / wall),
            "keyframes_in_window": after.keyframes - before.keyframes, "frames_decoded": len(got),
            "frames_unmatched": unmatched, "psnr_y_db": summary_db(y_db), "psnr_rgb_db": summary_db(rgb_db),
            "psnr_rgb_i420_conversion_only_db": summary_db(i420_db),
            "meets_target": bool(np.mean(y_db) >= TARGET_PSNR_DB)}


async def measure_fanout(server: ClipServer, viewers: int, seconds: float) -> dict:
    """`viewers` Python viewers of a server in its own process for `seconds` after WARMUP_S; see the module doc."""
    clients = [PeerClient(server.ws_url) for _ in range(viewers)]
    first_frame_ms = []
    for c in clients:
        start = time.monotonic()
        await c.connect()
        await c.receive(1, timeout=30)
        first_frame_ms.append(round((time.monotonic() - start) * 1e3, 1))
    await asyncio.gather(*(c.receive(int(WARMUP_S * FPS), timeout=30) for c in clients))
    load, stats0, cpu0 = load_1m(), await asyncio.to_thread(server.stats), cpu_seconds(server.proc.pid)
    wall0 = time.monotonic()
    t0 = wall0 * 1e3  # the server's capture times are on this machine's monotonic clock, in ms

    async def collect(c: PeerClient) -> list:
        got, end = [], time.monotonic() + seconds + 0.5  # frames captured near the end arrive a little later
        while time.monotonic() < end:
            got += await c.receive(1, timeout=30)
        return got

    t1 = t0 + seconds * 1e3
    results = await asyncio.gather(*(collect(c) for c in clients))
    cpu, stats1 = cpu_seconds(server.proc.pid) - cpu0, await asyncio.to_thread(server.stats)
    wall = time.monotonic() - wall0
    for c in clients:
        await c.close()
    frames = stats1["frames"] - stats0["frames"]
    fps = [sum(r.capture_ms is not None and t0 <= r.capture_ms < t1 for r in got) / seconds for got in results]
    return {"viewers": viewers, "bitrate_bps": stats1["encoder"]["bitrate"],
            "fps_per_viewer": [round(f, 2) for f in fps],
            "fps_min": round(min(fps), 2), "fps_mean": round(float(np.mean(fps)), 2),
            "server_fps": round(frames / wall, 2),
            "server_cpu_ms_per_frame": round(cpu * 1e3 / max(1, frames), 2),
            "frames_published": frames,
            "frames_encoded": stats1["encoder"]["frames"] - stats0["encoder"]["frames"],
            "first_frame_ms": first_frame_ms, "load_average_1m": {"before": load, "after": load_1m()}}


def run(sizes=(256, 512), viewers=(1, 4, 8), seconds: float = 8.0, contents=("avatar", "photo"),
        codec: str = "vp8") -> dict:
    """Every measurement of the module doc; a JSON-able dict."""
    report = {"codec": codec, "fps": FPS, "target_psnr_db": TARGET_PSNR_DB, "load_average_1m_start": load_1m(),
              "psnr": [], "fanout": []}
    for size in sizes:
        clips = {content: face_clip(size, AVATAR_FRAMES / FPS, "cpu") if content == "avatar" else photo_clip(size)
                 for content in contents}
        for content, clip in clips.items():
            row = asyncio.run(measure_psnr(clip, seconds, codec))
            report["psnr"].append({"content": content, **row, "load_average_1m": load_1m()})
        content, clip = next(iter(clips.items()))
        for count in viewers:
            with ClipServer(clip, codec=codec, fps=FPS, max_sessions=count) as server:
                row = asyncio.run(measure_fanout(server, count, seconds))
            report["fanout"].append({"size": size, "content": content, **row})
    report["load_average_1m_end"] = load_1m()
    report["notes"] = (
        "Loopback on one machine. psnr: in-process server and one Python viewer; PSNR-Y against the server's "
        "own I420 conversion of the rendered frame isolates codec + network, PSNR-RGB against the rendered RGB "
        "adds the 4:2:0 chroma subsampling (sharp saturated edges lose most there); the window includes the "
        "periodic keyframes (keyframes_in_window), each a one-frame dip. fanout: the server in a child process "
        "playing the clip, viewers decode in this process, so with many viewers at 512 px the viewers' own decoding "
        "competes with the server for the two cores; server_cpu_ms_per_frame is the server process's CPU time "
        "per published frame (encode once, packetize and send per viewer). A load average above the core "
        "count means other work shared the CPU.")
    return report


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 4, 8])
    parser.add_argument("--seconds", type=float, default=8.0, help="measured seconds per run")
    parser.add_argument("--content", nargs="+", choices=["avatar", "photo"], default=["avatar", "photo"])
    parser.add_argument("--codec", choices=["vp8", "h264"], default="vp8")
    args = parser.parse_args(argv)
    report = {"benchmark": "stream_quality", "meta": metadata(),
              **run(args.sizes, args.viewers, args.seconds, args.content, args.codec)}
    for r in report["psnr"]:
        print(f"{r['size']}px {r['content']}: PSNR-Y mean {r['psnr_y_db']['mean']} p5 {r['psnr_y_db']['p5']} dB, "
              f"PSNR-RGB mean {r['psnr_rgb_db']['mean']} dB at {r['measured_bps'] / 1e3:.0f} of "
              f"{r['bitrate_bps'] / 1e3:.0f} kbit/s", flush=True)
    for r in report["fanout"]:
        print(f"{r['size']}px x{r['viewers']} viewers: fps min {r['fps_min']}, server CPU "
              f"{r['server_cpu_ms_per_frame']} ms a frame", flush=True)
    print(write_result(f"stream_quality_{machine_tag()}", report))


if __name__ == "__main__":
    main()
