"""Deformation time per frame: CuPy kernels vs the torch baseline (CUDA) vs NumPy and torch on the CPU.

FLAME-sized synthetic rig (4972 vertices, 9940 faces, 300 shape + 100 expression + 36 pose correctives),
random avatars of 10k, 100k and 1M Gaussians, random parameters every frame (the avatar's own identity).

GPU backends: each frame starts on an idle device; CUDA events recorded before and after `deform` on the
current stream, then waited for, so a frame's time includes the host's launch work (what a frame waits for).
CPU backends: perf_counter around `deform`. Also the host time of the `deform` call itself for every backend.

    python -m benchmarks.bench_deform [--sizes 10000 100000 1000000] [--frames 200] [--seconds 20]

Writes benchmarks/results/deform_<machine>.json (machine: the GPU's name, or the CPU's model and cores).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import time

import torch

from realtime.avatar.synthetic import random_avatar, random_params
from realtime.deform import make_deformer
from realtime.rig.synthetic import synthetic_rig

from ._meta import machine_tag, metadata, summarize_ms, write_result

WARMUP = 5


def time_frames(deformer, frames: list, max_frames: int, seconds: float, cuda: bool) -> dict:
    """Per-frame times of `deformer.deform` over the parameter sets `frames` (cycled)."""
    for params in frames[:WARMUP]:
        deformer.deform(params)
    if cuda:
        torch.cuda.synchronize()
    device_ms, host_ms = [], []
    start_time = time.perf_counter()
    for i in range(max_frames):
        params = frames[i % len(frames)]
        if cuda:
            start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
            start.record()
        t0 = time.perf_counter()
        deformer.deform(params)
        host_ms.append((time.perf_counter() - t0) * 1e3)
        if cuda:
            end.record()
            end.synchronize()
            device_ms.append(start.elapsed_time(end))
        if time.perf_counter() - start_time > seconds and i >= 4:
            break
    result = {"frame": summarize_ms(device_ms if cuda else host_ms), "host_call": summarize_ms(host_ms)}
    result["frame"]["clock"] = "cuda events" if cuda else "perf_counter"
    return result


def backends_here(cuda: bool) -> tuple[list[tuple[str, str, str | None]], list[str]]:
    """(label, backend, device) of every deformation backend that can run here, and notes on those that can't."""
    backends = [("numpy", "numpy", None), ("numba", "numba", None), ("torch-cpu", "torch", "cpu")]
    notes = []
    if cuda:
        backends.append(("torch-cuda", "torch", "cuda"))
        if importlib.util.find_spec("cupy") is not None:
            backends.append(("cupy", "cupy", "cuda"))
        else:
            notes.append("CuPy not installed: cupy backend not measured")
    else:
        notes.append("no CUDA device: torch-cuda and cupy backends not measured (CPU backends only)")
    return backends, notes


def bench_rig():
    """The FLAME-sized synthetic rig every deformation figure is measured on."""
    return synthetic_rig(n_rings=72, n_segments=70, n_shape=300, n_expr=100, seed=1)


def measure(rig, sizes: list[int], backends: list, max_frames: int, seconds: float, log=None) -> list[dict]:
    """One row per Gaussian count: each backend's time_frames, and the speed-ups against the torch baseline."""
    results = []
    for n in sizes:
        avatar = random_avatar(rig, n, seed=0)
        frames = [random_params(avatar, seed=s) for s in range(16)]
        row = {"n_gaussians": n}
        for label, backend, device in backends:
            deformer = make_deformer(avatar, backend, device=device)
            row[label] = time_frames(deformer, frames, max_frames, seconds, cuda=device == "cuda")
            if log:
                log(f"{n:>8} {label:<10} p50 {row[label]['frame']['p50_ms']:8.3f} ms  "
                    f"p99 {row[label]['frame']['p99_ms']:8.3f} ms")
            del deformer
        baseline = "torch-cuda" if "torch-cuda" in row else "torch-cpu"
        row["speedup_vs_" + baseline] = {label: row[baseline]["frame"]["p50_ms"] / row[label]["frame"]["p50_ms"]
                                         for label, _, _ in backends if label in row}
        results.append(row)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--frames", type=int, default=200, help="most timed frames per backend and size")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds timed per backend and size")
    args = parser.parse_args()

    backends, notes = backends_here(torch.cuda.is_available())
    rig = bench_rig()
    results = measure(rig, args.sizes, backends, args.frames, args.seconds, log=lambda line: print(line, flush=True))
    report = {"benchmark": "deform", "meta": {**metadata(), "torch_threads": torch.get_num_threads(),
                                              "load_average_1m": os.getloadavg()[0]},
              "notes": notes,
              "rig": {"name": rig.name, "vertices": rig.n_vertices, "faces": rig.n_faces, "shape": rig.n_shape,
                      "expr": rig.n_expr, "pose_correctives": rig.pose_dirs.shape[2]},
              "method": __doc__.split("\n\n")[2].replace("\n", " "), "results": results}
    out = write_result(f"deform_{machine_tag()}", report)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
