"""Render time per frame for a head-like avatar scene, at several output sizes.

Scene: `realtime.render.synthetic.head_scene` (N flat, mostly opaque Gaussians bound to a head-sized
ellipsoid, SH degree 3), framed head-and-shoulders (the head fills about half the frame height);
the camera orbits +-20 degrees around the head from frame to frame. Each frame is one `render` call
(projection, SH, sorting, binning, compositing, output), timed with perf_counter after warm-up frames.
For the CPU backend also: the first-call compile time of the numba kernels (in a fresh process with an
empty numba cache, and again with the cache filled) and the time of each stage.

    python -m benchmarks.bench_render [--gaussians 40000] [--sizes 256 512] [--frames 100] [--backend cpu]
                                      [--threads 2 1]

Writes benchmarks/results/render_<backend>_<machine>.json.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

from realtime.camera import Camera, head_and_shoulders_camera
from realtime.geometry import axis_angle_to_matrix
from realtime.painter import stage_end
from realtime.render import CpuRenderer, get_renderer
from realtime.render.cpu import rasterize
from realtime.render.tiles import sort_and_bin
from realtime.render.project import project
from realtime.render.synthetic import head_scene

from ._meta import machine_tag, metadata, summarize_ms, write_result

WARMUP = 5
_FIRST_CALL = """
import time
t = time.perf_counter()
from realtime.render import CpuRenderer
imported = time.perf_counter() - t
print(imported, CpuRenderer().warm_up())
"""


def first_call_seconds() -> dict:
    """Import and first-render times of the CPU kernels in fresh processes: with an empty numba cache
    (full JIT compile), then with the cache that run filled."""
    result = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for label in ("cold_cache", "warm_cache"):
            out = subprocess.run([sys.executable, "-c", _FIRST_CALL], env=env, capture_output=True, text=True,
                                 check=True).stdout.split()
            result[label] = {"import_s": float(out[0]), "first_render_s": float(out[1])}
    return result


def orbit(camera: Camera, centre: np.ndarray, yaw_deg: float) -> Camera:
    """The camera moved around the vertical axis through `centre` by `yaw_deg` (the head turns the other way)."""
    turn = np.eye(4)
    R = axis_angle_to_matrix(np.array([0.0, np.radians(yaw_deg), 0.0]))
    turn[:3, :3] = R
    turn[:3, 3] = centre - R @ centre
    return Camera(K=camera.K, viewmat=camera.viewmat @ turn, width=camera.width, height=camera.height)


def time_size(scene, size: int, frames: int, renderer) -> dict:
    base = head_and_shoulders_camera(scene.vertices, size, size)
    centre = (scene.vertices.min(0) + scene.vertices.max(0)) / 2
    cameras = [orbit(base, centre, yaw) for yaw in 20 * np.sin(np.linspace(0, 2 * np.pi, 24, endpoint=False))]
    host_args = (scene.means, scene.quats, scene.scales, scene.opacities, scene.sh)
    args = tuple(renderer.as_input(a) for a in host_args)
    done = stage_end(renderer.device)  # on CUDA: wait for the frame's kernels, so the time is the GPU's too
    for cam in cameras[:WARMUP]:
        renderer.render(*args, cam)
    done()
    ms = []
    for i in range(frames):
        t0 = time.perf_counter()
        result = renderer.render(*args, cameras[i % len(cameras)], with_alpha=True)
        done()
        ms.append((time.perf_counter() - t0) * 1e3)
    report = {"size": [size, size], "frame": summarize_ms(ms),
              "coverage": float((result.numpy().alpha > 0.5).mean())}
    if isinstance(renderer, CpuRenderer):
        report.update(cpu_stages(host_args, cameras, frames, renderer.workers))
    return report


def cpu_stages(args, cameras: list[Camera], frames: int, workers) -> dict:
    """p50 of each CPU stage, and how many Gaussians were drawn and tile entries made."""
    stages = {"project_sh": [], "sort_bin": [], "rasterize": []}
    background = np.zeros(3, np.float32)
    for i in range(frames):
        cam = cameras[i % len(cameras)]
        viewmat, K = cam.viewmat.astype(np.float32), cam.K.astype(np.float32)
        t0 = time.perf_counter()
        projected = project(*args, viewmat, K, cam.width, cam.height, sh_degree=3, antialiased=False,
                            workers=workers)
        t1 = time.perf_counter()
        offsets, ids = sort_and_bin(projected, cam.width, cam.height)
        t2 = time.perf_counter()
        rasterize(projected, offsets, ids, cam.width, cam.height, background, workers)
        t3 = time.perf_counter()
        for name, dt in zip(stages, (t1 - t0, t2 - t1, t3 - t2)):
            stages[name].append(dt * 1e3)
    return {"stages_p50_ms": {k: float(np.median(v)) for k, v in stages.items()},
            "visible_gaussians": int((projected.radii > 0).all(axis=1).sum()), "tile_entries": int(len(ids))}


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gaussians", type=int, default=40_000)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--backend", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--threads", type=int, nargs="+", default=[None],
                        help="CPU threads to time with, e.g. 2 1 (default: one per core)")
    parser.add_argument("--out", help="result name (default render_<backend>_<machine>)")
    args = parser.parse_args()

    report = {"benchmark": "render", "backend": args.backend, "meta": metadata(),
              "scene": {"kind": "realtime.render.synthetic.head_scene", "gaussians": args.gaussians,
                        "sh_degree": 3, "framing": "head_and_shoulders_camera, orbit +-20 deg"},
              "warmup_frames": WARMUP}
    if args.backend == "cpu":
        report["first_call"] = first_call_seconds()
        print("first call:", report["first_call"])
    scene = head_scene(args.gaussians, sh_degree=3)
    report["results"] = []
    for threads in args.threads if args.backend == "cpu" else [None]:
        renderer = CpuRenderer(threads) if args.backend == "cpu" else get_renderer("cuda")
        for size in args.sizes:
            r = {"threads": renderer.workers.threads if args.backend == "cpu" else None,
                 **time_size(scene, size, args.frames, renderer)}
            report["results"].append(r)
            f = r["frame"]
            print(f"{size}x{size}, {r['threads']} threads: {f['fps']:.1f} frames/s, p50 {f['p50_ms']:.1f} ms, "
                  f"p95 {f['p95_ms']:.1f} ms, p99 {f['p99_ms']:.1f} ms; stages {r.get('stages_p50_ms')}; "
                  f"coverage {r['coverage']:.2f}")
    path = write_result(args.out or f"render_{args.backend}_{machine_tag()}", report)
    print("wrote", path)


if __name__ == "__main__":
    main()
