"""Video encoding per frame at 512x512: the encoders a WebRTC viewer can get, timed as the server runs them.

* aiortc-vp8: aiortc's `Vp8Encoder` (PyAV libvpx, realtime deadline, cpu-used -6, CBR at its default
  500 kbit/s), RTP packetization included;
* aiortc-h264: aiortc's `H264Encoder` (PyAV libx264, tune zerolatency, default preset, 1 Mbit/s), packetization
  included;
* pyav-x264-ultrafast: PyAV's libx264 with preset ultrafast + tune zerolatency at 1 Mbit/s, the cheapest H.264
  setting one could give aiortc.

Input: real content (the astronaut portrait sliding, zooming and tilting, from bench_track.synthetic_clip),
converted once to yuv420p as the server's broadcast does (that conversion is timed separately, `rgb_to_yuv420p`).
Each encoder gets the frames in order at 30 fps timestamps; the first frames (the keyframe and warm-up) are
not timed. Also the encoded size (kbit/s at 30 fps).

    python -m benchmarks.bench_encode [--size 512] [--frames 120]

Writes benchmarks/results/encode_<machine>.json.
"""

from __future__ import annotations

import argparse
import fractions
import time

import av
import numpy as np

from ._meta import machine_tag, metadata, summarize_ms, write_result

WARMUP = 5
FPS = 30
ENCODERS = ("aiortc-vp8", "aiortc-h264", "pyav-x264-ultrafast")


def clip_frames(size: int, count: int) -> list[np.ndarray]:
    """`count` (size, size, 3) uint8 RGB frames of a moving real photo."""
    import cv2
    from .bench_track import synthetic_clip

    clip, _ = synthetic_clip(count)
    return [frame if frame.shape[0] == size else cv2.resize(frame, (size, size), interpolation=cv2.INTER_AREA)
            for frame in clip]


class _X264Ultrafast:
    """PyAV libx264, preset ultrafast, tune zerolatency, one packet list per frame (no RTP packetization)."""

    def __init__(self, size: int, bitrate: int = 1_000_000) -> None:
        self.codec = av.CodecContext.create("libx264", "w")
        self.codec.width = self.codec.height = size
        self.codec.pix_fmt = "yuv420p"
        self.codec.bit_rate = bitrate
        self.codec.framerate = fractions.Fraction(FPS, 1)
        self.codec.time_base = fractions.Fraction(1, FPS)
        self.codec.options = {"preset": "ultrafast", "tune": "zerolatency"}

    def encode(self, frame: av.VideoFrame) -> tuple[list[bytes], int]:
        return [bytes(p) for p in self.codec.encode(frame)], frame.pts


def make_encoder(name: str, size: int):
    """An object with `encode(av.VideoFrame) -> (payloads: list[bytes], timestamp)` for an ENCODERS name."""
    if name == "aiortc-vp8":
        from aiortc.codecs.vpx import Vp8Encoder
        return Vp8Encoder()
    if name == "aiortc-h264":
        from aiortc.codecs.h264 import H264Encoder
        return H264Encoder()
    if name == "pyav-x264-ultrafast":
        return _X264Ultrafast(size)
    raise ValueError(f"unknown encoder {name!r}; choose one of {', '.join(ENCODERS)}")


def time_encoder(name: str, frames: list[av.VideoFrame], size: int) -> dict:
    """Per-frame encode times (ms) after WARMUP frames, and the stream's size."""
    encoder = make_encoder(name, size)
    ms, sizes = [], []
    for i, frame in enumerate(frames):
        t0 = time.perf_counter()
        payloads, _ = encoder.encode(frame)
        dt = (time.perf_counter() - t0) * 1e3
        if i >= WARMUP:
            ms.append(dt)
            sizes.append(sum(len(p) for p in payloads))
    return {"frame": summarize_ms(ms), "kbit_per_s_at_30fps": float(np.mean(sizes) * 8 * FPS / 1e3)}


def run(size: int = 512, frames: int = 120, encoders: tuple[str, ...] = ENCODERS) -> dict:
    """Time every encoder in `encoders` on `frames` frames of size x size; returns the result dict."""
    if frames <= WARMUP:
        raise ValueError(f"frames must exceed the {WARMUP} warm-up frames, got {frames}")
    images = clip_frames(size, frames)
    yuv, convert_ms = [], []
    for i, image in enumerate(images):
        t0 = time.perf_counter()
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        convert_ms.append((time.perf_counter() - t0) * 1e3)
        frame.pts, frame.time_base = i * (90_000 // FPS), fractions.Fraction(1, 90_000)
        yuv.append(frame)
    results = {"size": [size, size], "frames": frames, "warmup_frames": WARMUP,
               "rgb_to_yuv420p": summarize_ms(convert_ms[WARMUP:]), "encoders": {}}
    for name in encoders:
        results["encoders"][name] = time_encoder(name, yuv, size)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--frames", type=int, default=120)
    args = parser.parse_args()
    report = {"benchmark": "encode", "meta": metadata(), **run(args.size, args.frames)}
    for name, r in report["encoders"].items():
        print(f"{name:<20} p50 {r['frame']['p50_ms']:6.2f} ms  p95 {r['frame']['p95_ms']:6.2f} ms  "
              f"{r['kbit_per_s_at_30fps']:7.0f} kbit/s")
    print("wrote", write_result(f"encode_{machine_tag()}", report))


if __name__ == "__main__":
    main()
