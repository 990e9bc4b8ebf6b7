"""Streaming over loopback: sustained fps, server-side processing and glass-to-glass latency.

The server runs as a user starts it (``python -m realtime.stream.server``, test-pattern
driver, in its own process); viewers are Python aiortc peers in this process, and
optionally a headless Chromium on ``/view``. For each frame size and viewer count:

* fps: decoded frames per second at each viewer (the driver makes ``--fps``);
* glass-to-glass: the frame's capture time → decoded at the Python viewer, on this
  machine's monotonic clock (the server shares it). The capture time travels beside
  the frame, in a ``frame {pts, capture_ms}`` message on the data channel, and the
  viewer matches it to the decoded frame by RTP timestamp (see
  ``realtime/stream/frametimes.py``); also the server's own estimate from the capture
  times the viewers echo (echo arrival - capture time - rtt/2), which is what a browser reports;
* server processing: capture → frame published (test-pattern draw + I420 conversion +
  encoding, once for all viewers; the live loop's stages add to this), from ``/stats``;
* server CPU: the server process's CPU time per wall second (one encode, then
  packetizing and sending per viewer);
* encode: the per-frame cost of the server's ``StreamEncoder`` (I420 conversion + the codec), timed in-process.

    python -m benchmarks.bench_stream [--sizes 256 512] [--viewers 1 4] [--seconds 10] [--no-browser]

Writes benchmarks/results/stream_<machine>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import subprocess
import tempfile
import time

from realtime.stream.client import PeerClient, ServerProcess
from realtime.stream.encoder import VIDEO_CLOCK_HZ, StreamEncoder
from realtime.stream.testpattern import draw_pattern

from ._meta import cpu_seconds, load_1m, machine_tag, metadata, summarize_ms, write_result
from .chromium import CHROMIUM

WARMUP_S = 2.0


def encode_cost(size: int, fps: float, codec: str = "vp8", frames: int = 200) -> dict:
    """What the server's one encode costs a frame: ``StreamEncoder.encode`` (I420 conversion + `codec`) of the
    moving test pattern at size x size and `fps` (its pts), the first 10 frames left out."""
    encoder = StreamEncoder(codec, fps=fps)
    times = []
    for i in range(frames):
        image = draw_pattern(i, size, size, (30, 30, 30))
        t0 = time.perf_counter()
        encoder.encode(image, round(i * VIDEO_CLOCK_HZ / fps))
        times.append((time.perf_counter() - t0) * 1e3)
    return summarize_ms(times[10:])


async def python_viewers(server: ServerProcess, count: int, seconds: float) -> dict:
    clients = [PeerClient(server.ws_url) for _ in range(count)]
    for c in clients:
        await c.connect()
    await asyncio.gather(*(c.receive(int(WARMUP_S * 30)) for c in clients))
    cpu0, t0 = cpu_seconds(server.proc.pid), time.monotonic()

    async def collect(c: PeerClient) -> list:
        got, end = [], time.monotonic() + seconds
        while time.monotonic() < end:
            got += await c.receive(1)
        return got

    results = await asyncio.gather(*(collect(c) for c in clients))
    wall = time.monotonic() - t0
    cpu = (cpu_seconds(server.proc.pid) - cpu0) / wall
    stats = await asyncio.to_thread(server.stats)
    for c in clients:
        await c.close()
    fps = [len(r) / wall for r in results]
    lat = [x.latency_ms for r in results for x in r if x.latency_ms is not None]
    return {
        "viewers": count,
        "seconds": round(wall, 2),
        "fps_per_viewer": [round(f, 2) for f in fps],
        "glass_to_glass_ms": summarize_ms(lat),
        "glass_to_glass_server_estimate_ms": stats["glass_to_glass_ms"],
        "server_processing_ms": stats["processing_ms"],
        "server_cpu_cores": round(cpu, 3),
        "viewer_skipped_frames": stats["drops"]["viewer_skipped"],
    }


def browser_viewer(server: ServerProcess, seconds: float) -> dict | None:
    if CHROMIUM is None:
        return None
    base, _, query = server.url.partition("?")
    with tempfile.TemporaryDirectory() as profile:
        flags = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 f"--user-data-dir={profile}", "--autoplay-policy=no-user-gesture-required",
                 "--disable-features=WebRtcHideLocalIpsWithMdns"]
        proc = subprocess.Popen([CHROMIUM, *flags, base + "view" + (f"?{query}" if query else "")],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(WARMUP_S + 3)
            first = [s for s in server.stats()["session_list"] if s["client"]]
            time.sleep(seconds)
            stats = server.stats()
        finally:
            proc.terminate()
            proc.wait(10)
    sessions = [s for s in stats["session_list"] if s["client"]]
    if not sessions or not first:
        return {"error": "the browser did not connect"}
    s = sessions[0]
    return {
        "viewers": 1,
        "fps": round((s["client"]["frames"] - first[0]["client"]["frames"]) / seconds, 2),
        "glass_to_glass_ms": s["glass_to_glass_ms"],
        "server_processing_ms": stats["processing_ms"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--viewers", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--codec", default="vp8", choices=["vp8", "h264"])
    parser.add_argument("--no-browser", action="store_true")
    args = parser.parse_args()

    runs, load_before = [], load_1m()
    for size in args.sizes:
        run = {"size": size, "fps_target": args.fps, "codec": args.codec,
               "encode_ms": encode_cost(size, args.fps, args.codec)}
        server_args = ["--size", str(size), "--fps", str(args.fps), "--codec", args.codec,
                       "--max-sessions", str(max(args.viewers) + 1), "--log-level", "WARNING"]
        run["python"] = []
        for count in args.viewers:
            with ServerProcess(server_args) as server:
                result = asyncio.run(python_viewers(server, count, args.seconds))
            run["python"].append(result)
            g = result["glass_to_glass_ms"]
            print(f"{size}px {count} viewer(s): fps {result['fps_per_viewer']}, glass-to-glass p50 "
                  f"{g['p50_ms']:.1f} p95 {g['p95_ms']:.1f} ms, server processing p99 "
                  f"{result['server_processing_ms']['p99']} ms, server CPU {result['server_cpu_cores']} cores",
                  flush=True)
        if not args.no_browser:
            with ServerProcess(server_args) as server:
                run["browser"] = browser_viewer(server, args.seconds)
            print(f"{size}px chromium /view: {run['browser']}", flush=True)
        runs.append(run)

    report = {"benchmark": "stream", "meta": metadata(), "runs": runs,
              "load_average_1m": {"before": load_before, "after": load_1m()},
              "notes": "Loopback on one machine: server subprocess (test-pattern driver), Python aiortc viewers "
                       "in the benchmark process, Chromium headless without GPU. glass_to_glass_ms is measured "
                       "at the Python viewer on the shared monotonic clock, from the capture time sent beside "
                       "each frame and matched to it by RTP timestamp; the server estimate uses the capture times "
                       "the viewers echo (see realtime/stream/latency.py). A load average above the core count "
                       "means other work shared the CPU during the run."}
    print(write_result(f"stream_{machine_tag()}", report))


if __name__ == "__main__":
    main()
