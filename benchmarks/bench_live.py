"""The live loop end to end over loopback: `realtime serve` with the demo avatar, MediaPipe tracking and rendering.

The camera is the demo avatar's expression tour rendered at --size (a face that talks, blinks and turns; 25 fps).
Runs (each with the server in its own process, started as a user starts it):

* python: `realtime serve --driver browser`; a Python aiortc peer sends the clip as its camera and watches the
  avatar (sender + viewer). Sustained fps at the viewer; server-side processing (camera frame in the server →
  frame encoded and published, so tracking, deformation, rendering, the one encode for all viewers, and the
  waits between them) p50/p95/p99 overall and per stage; glass-to-glass p50/p95 (capture time → decoded at the
  viewer, on the shared monotonic clock: the capture time travels beside the frame, in a `frame {pts,
  capture_ms}` message on the data channel, and the viewer matches it to the decoded frame by RTP timestamp),
  the server's own estimate from the capture times the viewer echoes, and camera-to-display (the sent frame's
  departure → decoded, the uplink included; a lower bound within one camera frame, 40 ms: the driving frame is
  taken to be the last one sent before its capture time, the camera frame's arrival in the server). aiortc's
  receiver hands on a video frame only when the next frame's first packet arrives: the Python viewer's
  glass-to-glass holds about one output frame interval that a browser does not wait (viewer_frame_interval_ms
  says how long);
* chromium: the same with headless Chromium sending the clip as its fake camera (skipped without chromium, or
  with --no-browser); glass-to-glass is the server's estimate from the page's echoes;
* tour: `realtime serve --driver tour` and a Python viewer: the render path alone (no uplink, no tracking).

And `stages`: each stage of one frame timed in this process, one after another with nothing else running in it
(VP8 decode + RGB of the sender's camera in the server, landmarks, fit, deform, render, and encode: the server's
StreamEncoder, I420 conversion + VP8, once for all viewers), so their sum is the CPU time a frame costs before
packetizing and sending to each viewer; also deformation on torch with one thread (the pipeline uses NumPy on the
CPU) for comparison.

Other work on this machine skews every number: the load average is recorded before and after each run.

    python -m benchmarks.bench_live [--size 256] [--seconds 30] [--backend cpu] [--no-browser] [--quick]

Writes benchmarks/results/live_<machine>.json.
"""
from __future__ import annotations

import argparse
import asyncio
import bisect
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime.stream.client import ArrayVideoTrack, PeerClient, ServerProcess

from ._meta import cpu_seconds, load_1m, machine_tag, metadata, summarize_ms, write_result

CAMERA_FPS = 25
WARMUP_S = 4.0
STAGES = ("landmarks", "fit", "deform", "render")


def face_clip(size: int, seconds: float, backend: str) -> list[np.ndarray]:
    """The demo avatar's expression tour, its first `seconds`, rendered at size x size: (size, size, 3) uint8 each."""
    from realtime.app.motions import tour
    from realtime.app.library import resolve_avatar
    from realtime.painter import AvatarPainter
    from realtime.pipeline import drive

    avatar, _ = resolve_avatar("demo")
    driver = tour(avatar.rig, avatar.shape, fps=CAMERA_FPS)
    painter = AvatarPainter(avatar, avatar.camera.resized(size, size), backend=backend)
    return [out.image for out in drive(driver.frames[:int(seconds * CAMERA_FPS)], painter)]


def serve(driver: str, size: int, backend: str) -> ServerProcess:
    return ServerProcess(["serve", "--driver", driver, "--size", str(size), "--backend", backend],
                         module="realtime.app.cli", startup_timeout=300)


def server_side(stats: dict) -> dict:
    """What the server reports: fps, processing and per-stage summaries, drops, the producer's counters."""
    producer = stats["producer"]
    return {"server_fps": stats["fps"], "processing_ms": stats["processing_ms"],
            "stages_ms": {k: v for k, v in stats["stages_ms"].items()},
            "glass_to_glass_server_estimate_ms": stats["glass_to_glass_ms"],
            "dropped_inputs": producer.get("input_drops"), "dropped_params": producer.get("dropped_params"),
            "faces_lost": producer.get("faces_lost"), "viewer_skipped_frames": stats["drops"]["viewer_skipped"]}


async def python_peer(server: ServerProcess, clip: list[np.ndarray] | None, seconds: float) -> dict:
    """A sender of `clip` that also views (or a viewer only when `clip` is None), measured for `seconds`."""
    track = ArrayVideoTrack(clip, CAMERA_FPS) if clip is not None else None
    client = PeerClient(server.ws_url, role="sender" if track else "viewer", source=track)
    await client.connect()
    try:
        end = time.monotonic() + WARMUP_S
        while time.monotonic() < end:
            await client.receive(1, timeout=60)
        load, cpu0, t0 = load_1m(), cpu_seconds(server.proc.pid), time.monotonic()
        got = []
        while time.monotonic() < t0 + seconds:
            got += await client.receive(1, timeout=60)
        wall = time.monotonic() - t0
        cpu = (cpu_seconds(server.proc.pid) - cpu0) / wall
        stats = await asyncio.to_thread(server.stats)
    finally:
        await client.close()
    matched = [r for r in got if r.capture_ms is not None]  # those whose frame message was matched
    result = {"fps": round(len(got) / wall, 2), "frames": len(got), "frames_with_capture_time": len(matched),
              "seconds": round(wall, 2), "glass_to_glass_ms": summarize_ms([r.latency_ms for r in matched]),
              "viewer_frame_interval_ms": summarize_ms(np.diff([r.got_ms for r in got])),
              **server_side(stats), "server_cpu_cores": round(cpu, 3),
              "load_average_1m": {"before": load, "after": load_1m()}}
    if track is not None:
        shown = []
        for r in matched:
            k = bisect.bisect_right(track.sent_ns, r.capture_ms * 1e6) - 1
            if k >= 0:
                shown.append(r.got_ms - track.sent_ns[k] / 1e6)
        result["camera_to_display_ms_lower_bound"] = summarize_ms(shown)
    return result


def chromium_sender(server: ServerProcess, clip: list[np.ndarray], seconds: float) -> dict:
    """Headless Chromium sending `clip` as its fake camera from the full client page, measured for `seconds`."""
    from .chromium import CHROMIUM, chromium, sessions_by_role, stop_browsers, wait_for_pages, write_y4m

    if CHROMIUM is None:
        return {"error": "chromium is not installed"}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_y4m(tmp / "face.y4m", clip, fps=CAMERA_FPS)
        browser = chromium(f"{server.url}?autostart=sender", tmp / "face.y4m", tmp / "profile", tmp / "chromium.log")
        try:
            wait_for_pages(server, [browser], [tmp / "chromium.log"], timeout=60, done=lambda st: (
                (sessions_by_role(st).get("sender", {}).get("client") or {}).get("frames", 0) > 0))
            time.sleep(WARMUP_S)
            first = sessions_by_role(server.stats())["sender"]
            load, cpu0, t0 = load_1m(), cpu_seconds(server.proc.pid), time.monotonic()
            time.sleep(seconds)
            stats = server.stats()
            wall = time.monotonic() - t0
            cpu = (cpu_seconds(server.proc.pid) - cpu0) / wall
        finally:
            stop_browsers([browser])
    sender = sessions_by_role(stats)["sender"]
    return {"fps": round((sender["client"]["frames"] - first["client"]["frames"]) / wall, 2),
            "seconds": round(wall, 2), "camera_frames_in": sender["inputs"] - first["inputs"],
            "glass_to_glass_ms": sender["glass_to_glass_ms"], **server_side(stats),
            "server_cpu_cores": round(cpu, 3), "load_average_1m": {"before": load, "after": load_1m()}}


def stage_costs(clip: list[np.ndarray], size: int, backend: str, frames: int) -> dict:
    """Each stage of a frame timed in this process, one after another, over `frames` frames of `clip` (the first 5
    left out): the camera frame as the server gets it (aiortc's VP8, as the server decodes it), tracking, drawing,
    and the server's one encode for all viewers (StreamEncoder: I420 conversion + VP8)."""
    import av
    import torch
    from aiortc.codecs.vpx import Vp8Decoder, Vp8Encoder, vp8_depayload
    from aiortc.jitterbuffer import JitterFrame

    from realtime.deform import make_deformer
    from realtime.app.library import resolve_avatar
    from realtime.painter import AvatarPainter
    from realtime.stream.encoder import VIDEO_CLOCK_HZ, VIDEO_TIME_BASE, StreamEncoder
    from realtime.stream.tracks import input_image
    from realtime.track.tracker import Tracker

    avatar, _ = resolve_avatar("demo")
    painter = AvatarPainter(avatar, avatar.camera.resized(size, size), backend=backend)
    tracker = Tracker(avatar.rig)
    camera_encoder, camera_decoder = Vp8Encoder(), Vp8Decoder()
    stream_encoder = StreamEncoder(fps=CAMERA_FPS)
    frame_ticks = VIDEO_CLOCK_HZ // CAMERA_FPS
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    torch_deformer = make_deformer(avatar, "torch", device="cpu") if backend == "cpu" else None
    times: dict[str, list[float]] = {}

    def timed(name: str, start: float) -> float:
        now = time.perf_counter()
        times.setdefault(name, []).append((now - start) * 1e3)
        return now

    try:
        for i in range(frames + 5):
            image = clip[i % len(clip)]
            sent = av.VideoFrame.from_ndarray(image, format="rgb24")
            sent.pts, sent.time_base = i * frame_ticks, VIDEO_TIME_BASE
            payloads, timestamp = camera_encoder.encode(sent)
            start = time.perf_counter()
            (decoded,) = camera_decoder.decode(JitterFrame(b"".join(vp8_depayload(p) for p in payloads), timestamp))
            camera = input_image(decoded)
            timed("camera_decode", start)
            result = tracker.track(camera)
            times.setdefault("landmarks", []).append(result.timings["landmarks"])
            times.setdefault("fit", []).append(result.timings["fit"] + result.timings["filter"])  # as the loop does
            params = result.params
            params.shape = avatar.shape.astype(np.float32)
            timings: dict[str, float] = {}
            picture = painter.draw(params, timings)
            for stage in ("deform", "render"):
                times.setdefault(stage, []).append(timings[stage])
            start = time.perf_counter()
            stream_encoder.encode(picture, i * frame_ticks)
            timed("encode", start)
            if torch_deformer is not None:
                start = time.perf_counter()
                torch_deformer.deform(params)
                timed("deform_torch_1_thread", start)
    finally:
        torch.set_num_threads(threads)
        tracker.close()
    summary = {name: summarize_ms(ms[5:]) for name, ms in times.items()}
    serial = ("camera_decode", "landmarks", "fit", "deform", "render", "encode")
    total = sum(summary[k]["p50_ms"] for k in serial)
    return {"frames": frames, "stages_ms": summary, "frame_cpu_ms_p50_sum": round(total, 2),
            "fps_if_serial": round(1000.0 / total, 2), "serial_stages": list(serial)}


def run(seconds: float = 30.0, backend: str = "cpu", quick: bool = False, size: int | None = None,
        browser: bool = True) -> dict:
    """All runs (see the module doc); `quick`: a 2 s clip, fewer in-process frames, no browser."""
    size = size or (512 if backend == "cuda" else 256)
    started = load_1m()
    clip = face_clip(size, 2.0 if quick else 10.0, backend)
    report = {"size": size, "backend": backend, "camera": f"demo avatar's expression tour at {size}x{size}, "
              f"{len(clip)} frames looped at {CAMERA_FPS} fps", "load_average_1m_start": started}
    report["stages"] = stage_costs(clip, size, backend, 30 if quick else 120)
    runs = []
    with serve("browser", size, backend) as server:
        runs.append({"label": "Python sender + viewer", **asyncio.run(python_peer(server, clip, seconds))})
    if browser and not quick:
        with serve("browser", size, backend) as server:
            runs.append({"label": "Chromium sender (fake camera)", **chromium_sender(server, clip, seconds)})
    with serve("tour", size, backend) as server:
        runs.append({"label": "tour driver, Python viewer", **asyncio.run(python_peer(server, None, seconds))})
    report["runs"] = runs
    report["notes"] = (
        "Loopback on one machine: the server in its own process, the Python peer in the benchmark's, Chromium "
        "headless without GPU. processing_ms and stages_ms are the server's windows over its last 300 frames "
        f"(the first {WARMUP_S:g} s of warm-up may fall inside). glass_to_glass_ms: capture time (the camera "
        "frame's arrival in the server, or the tour frame's push; sent beside the frame on the data channel and "
        "matched to it by RTP timestamp) to decoded at the Python viewer, or the server's estimate from the "
        "capture times Chromium echoes. aiortc's receiver hands a video frame on only when the first packet of "
        "the next frame arrives, so the Python viewer's glass-to-glass includes about one output frame interval "
        "(viewer_frame_interval_ms) that a browser viewer does not wait; the same holds for camera frames "
        "entering the server (one camera frame, 40 ms at 25 fps, before the capture time, so not counted). A "
        "load average above the core count means other work shared the CPU during the run.")
    report["load_average_1m_end"] = load_1m()
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=None, help="output size (default 256 on cpu, 512 on cuda)")
    parser.add_argument("--seconds", type=float, default=30.0, help="measured seconds per run")
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--no-browser", action="store_true")
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args()
    report = {"benchmark": "live", "meta": metadata(),
              **run(args.seconds, args.backend, args.quick, args.size, browser=not args.no_browser)}
    for r in report["runs"]:
        g = r.get("glass_to_glass_ms", {})
        print(f"{r['label']}: {r.get('fps')} fps, processing p50/p95/p99 "
              f"{[r['processing_ms'].get(k) for k in ('p50', 'p95', 'p99')] if 'processing_ms' in r else '-'} ms, "
              f"glass-to-glass p50 {g.get('p50_ms', g.get('p50'))} p95 {g.get('p95_ms', g.get('p95'))} ms", flush=True)
    print(write_result(f"live_{machine_tag()}", report))


if __name__ == "__main__":
    main()
