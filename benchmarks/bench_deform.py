"""Deformation time per frame: CuPy kernels vs the torch baseline (CUDA) vs NumPy and torch on the CPU.

FLAME-sized synthetic rig (4972 vertices, 9940 faces, 300 shape + 100 expression + 36 pose correctives),
random avatars of 10k, 100k and 1M Gaussians, random parameters every frame (the avatar's own identity).

GPU backends: each frame starts on an idle device; CUDA events recorded before and after `deform` on the
current stream, then waited for, so a frame's time includes the host's launch work (what a frame waits for).
CPU backends: perf_counter around `deform`. Also the host time of the `deform` call itself for every backend.

    python benchmarks/bench_deform.py [--sizes 10000 100000 1000000] [--frames 200] [--seconds 20]

Writes benchmarks/results/deform_<device>.json (device: the GPU's name, or "cpu").
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from realtime.avatar.synthetic import random_avatar, random_params  # noqa: E402
from realtime.deform import make_deformer  # noqa: E402
from realtime.rig.synthetic import synthetic_rig  # noqa: E402

WARMUP = 5


def percentiles(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "p99_ms": float(np.percentile(a, 99)), "mean_ms": float(a.mean()), "frames": len(ms)}


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
    result = {"frame": percentiles(device_ms if cuda else host_ms), "host_call": percentiles(host_ms)}
    result["frame"]["clock"] = "cuda events" if cuda else "perf_counter"
    return result


def git_commit() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True).stdout.strip()
        return commit + ("-dirty" if dirty else "")
    except OSError:
        return "unknown"


def metadata() -> dict:
    versions = {"python": platform.python_version(), "numpy": np.__version__, "torch": torch.__version__}
    if importlib.util.find_spec("cupy") is not None:
        import cupy
        versions["cupy"] = cupy.__version__
    meta = {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "machine": platform.machine(), "platform": platform.platform(),
            "processor": platform.processor(), "torch_threads": torch.get_num_threads(),
            "load_average_1m": os.getloadavg()[0], "versions": versions,
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None}
    if torch.cuda.is_available():
        meta["cuda"] = torch.version.cuda
    return meta


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--frames", type=int, default=200, help="most timed frames per backend and size")
    parser.add_argument("--seconds", type=float, default=20.0, help="most seconds timed per backend and size")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    cuda = torch.cuda.is_available()
    have_cupy = importlib.util.find_spec("cupy") is not None
    backends = [("numpy", "numpy", None), ("torch-cpu", "torch", "cpu")]
    notes = []
    if cuda:
        backends.append(("torch-cuda", "torch", "cuda"))
        if have_cupy:
            backends.append(("cupy", "cupy", "cuda"))
        else:
            notes.append("CuPy not installed: cupy backend not measured")
    else:
        notes.append("no CUDA device: torch-cuda and cupy backends not measured (CPU backends only)")

    rig = synthetic_rig(n_rings=72, n_segments=70, n_shape=300, n_expr=100, seed=1)
    results = []
    for n in args.sizes:
        avatar = random_avatar(rig, n, seed=0)
        frames = [random_params(avatar, seed=s) for s in range(16)]
        row = {"n_gaussians": n}
        for label, backend, device in backends:
            deformer = make_deformer(avatar, backend, device=device)
            row[label] = time_frames(deformer, frames, args.frames, args.seconds, cuda=device == "cuda")
            print(f"{n:>8} {label:<10} p50 {row[label]['frame']['p50_ms']:8.3f} ms  "
                  f"p99 {row[label]['frame']['p99_ms']:8.3f} ms", flush=True)
            del deformer
        baseline = "torch-cuda" if "torch-cuda" in row else "torch-cpu"
        row["speedup_vs_" + baseline] = {label: row[baseline]["frame"]["p50_ms"] / row[label]["frame"]["p50_ms"]
                                         for label, _, _ in backends if label in row}
        results.append(row)

    device_name = torch.cuda.get_device_name() if cuda else "cpu"
    out = args.out or ROOT / "benchmarks" / "results" / f"deform_{re.sub(r'[^A-Za-z0-9]+', '_', device_name).strip('_').lower()}.json"
    report = {"benchmark": "deform", "meta": metadata(), "notes": notes,
              "rig": {"name": rig.name, "vertices": rig.n_vertices, "faces": rig.n_faces, "shape": rig.n_shape,
                      "expr": rig.n_expr, "pose_correctives": rig.pose_dirs.shape[2]},
              "method": __doc__.split("\n\n")[2].replace("\n", " "), "results": results}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
