"""Shared helpers for the benchmarks: what machine and code a result came from, the load and a process's CPU time
while measuring, timing summaries, JSON output.

    from ._meta import cpu_seconds, load_1m, metadata, machine_tag, summarize_ms, write_result
"""

from __future__ import annotations

import datetime
import importlib.metadata
import json
import os
import platform
import re
import subprocess
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
LIBRARIES = ("numpy", "scipy", "numba", "llvmlite", "torch", "gsplat", "cupy-cuda13x", "mediapipe", "av", "aiortc")


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or platform.processor() elsewhere)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def usable_cores() -> int:
    """CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def gpu_name() -> str | None:
    """The first CUDA device's name, or None without a usable one (torch is imported only if installed)."""
    try:
        import torch
    except ImportError:
        return None
    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def git_commit() -> str:
    """HEAD's commit, with '-dirty' when tracked files differ from it."""
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT,
                               capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("-dirty" if dirty else "")


def library_versions() -> dict[str, str]:
    """Installed versions of the libraries that matter for speed (absent ones are left out)."""
    versions = {"python": platform.python_version()}
    for name in LIBRARIES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    return versions


def metadata() -> dict:
    """Machine, date, code version and library versions of a benchmark run, and the machine's load
    average when it started (other work on a small machine skews timings)."""
    return {"date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "commit": git_commit(), "platform": platform.platform(), "machine": platform.machine(),
            "cpu_model": cpu_model(), "cpu_cores": usable_cores(), "gpu": gpu_name(),
            "load_average_1_5_15_min": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
            "versions": library_versions()}


def load_1m() -> float:
    """This machine's 1-minute load average, rounded to 0.01 (recorded beside timings: other work skews them)."""
    return round(os.getloadavg()[0], 2)


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system, seconds) that process `pid` has used so far, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def machine_tag() -> str:
    """A short file-name-safe name of this machine: the GPU's name when there is one, else CPU model and cores."""
    name = gpu_name() or f"{cpu_model()} {usable_cores()}c"
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_")


def summarize_ms(ms: list[float]) -> dict[str, float]:
    """p50/p95/p99/mean of per-frame times in milliseconds, and frames/s from the mean."""
    a = np.asarray(ms, dtype=np.float64)
    return {"frames": int(a.size), "mean_ms": float(a.mean()), "p50_ms": float(np.percentile(a, 50)),
            "p95_ms": float(np.percentile(a, 95)), "p99_ms": float(np.percentile(a, 99)),
            "fps": float(1000.0 / a.mean())}


def write_result(name: str, report: dict) -> Path:
    """Write `report` as benchmarks/results/<name>.json (or into $REALTIME_BENCH_RESULTS) and return the path."""
    folder = Path(os.environ.get("REALTIME_BENCH_RESULTS") or RESULTS)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    return path
