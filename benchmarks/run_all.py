"""Every benchmark in one run: one JSON of results, then a Markdown report with plots (benchmarks/report.py).

    python -m benchmarks [--quick] [--backend auto|cpu|cuda] [--out DIR] [--report-only] [--readme]
    realtime bench [--quick] [--backend auto|cpu|cuda] [--out DIR]

Sections (each a function of the profile and the devices measured; one that fails is recorded as an error
and the others still run): live (the real loop, benchmarks/bench_live.py), render (frames/s over Gaussian
count x resolution), deform (NumPy, torch, CuPy), encode (VP8, H.264 at 512x512), stream (glass-to-glass
over loopback: Python peers, headless Chromium when installed), stream_quality (PSNR of what a viewer decodes
against what was rendered, and the one encode fanned out to many viewers: benchmarks/bench_stream_quality.py),
baselines (benchmarks/bench_baselines.py), and in the full profile track and builder (their own modules,
`python -m benchmarks.bench_track` and `python -m benchmarks.bench_builder`, in subprocesses).

Profiles (benchmarks/profiles.py): `full` (default; 7 to 12 minutes on a busy 2-core CPU), `quick` (under 3
minutes on a 2-core CPU: small sizes, few frames, no browser, no track/builder) and `smoke` (seconds of measuring:
the test suite's check that every file and field is produced). Writes DIR/suite_<machine>.json, DIR/report.md
and DIR/*.png; DIR defaults to benchmarks/results (full) or benchmarks/results/quick (quick, smoke).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

from . import _meta, report
from .chromium import CHROMIUM
from .profiles import PROFILES, Profile

DEFAULT_OUT = {"full": _meta.RESULTS, "quick": _meta.RESULTS / "quick", "smoke": _meta.RESULTS / "quick"}


@dataclass(frozen=True)
class Context:
    """What a section gets: the profile, what runs on CUDA ({'deform': bool, 'render': bool}), the output folder."""

    profile: Profile
    cuda: dict
    out: Path


def cuda_devices(backend: str) -> dict[str, bool]:
    """What runs on CUDA for a --backend choice: {'deform': bool, 'render': bool}. 'cuda' without a usable
    device (or without gsplat for rendering) raises BackendUnavailable, saying what is missing."""
    from realtime.render import resolve_backend
    from realtime.render.gsplat_backend import cuda_usable

    if backend == "cpu":
        return {"deform": False, "render": False}
    render = resolve_backend(backend) == "cuda"
    return {"deform": cuda_usable(), "render": render}


# ---- sections -------------------------------------------------------------------------------------------------

def section_live(ctx: Context) -> dict:
    """The real loop end to end (benchmarks/bench_live.py): `realtime serve` with the demo avatar over loopback."""
    from . import bench_live

    return bench_live.run(seconds=ctx.profile.live_seconds, backend="cuda" if ctx.cuda["render"] else "cpu",
                          quick=ctx.profile.name != "full", browser=ctx.profile.stream_browser)


def section_render(ctx: Context) -> dict:
    """frames/s of the whole render call over the Gaussian count x resolution grid (bench_render's scene)."""
    from . import bench_render

    from realtime.render import get_renderer
    from realtime.render.synthetic import head_scene

    result = {"scene": "realtime.render.synthetic.head_scene, SH degree 3, head_and_shoulders_camera, "
                       "orbit +-20 deg", "warmup_frames": bench_render.WARMUP}
    if ctx.profile.render_first_call:
        result["first_call_cpu"] = bench_render.first_call_seconds()
    renderers = {backend: get_renderer(backend) for backend in ["cpu"] + (["cuda"] if ctx.cuda["render"] else [])}
    result["cpu_threads"] = renderers["cpu"].workers.threads
    for backend in renderers:
        result[backend] = []
    for n in ctx.profile.render_counts:
        scene = head_scene(n, sh_degree=3)
        for backend, renderer in renderers.items():
            for size in ctx.profile.render_sizes:
                if ctx.profile.render_max_cost and n * size * size > ctx.profile.render_max_cost:
                    continue
                row = bench_render.time_size(scene, size, ctx.profile.render_frames, renderer)
                result[backend].append({"gaussians": n, **row})
        del scene
    return result


def section_deform(ctx: Context) -> dict:
    """Per-frame deformation on every backend that can run here (bench_deform's rig, avatars and timing)."""
    from . import bench_deform

    backends, notes = bench_deform.backends_here(ctx.cuda["deform"])
    rig = bench_deform.bench_rig()
    rows = bench_deform.measure(rig, ctx.profile.deform_sizes, backends, ctx.profile.deform_frames,
                                ctx.profile.deform_seconds)
    return {"rig": {"vertices": rig.n_vertices, "faces": rig.n_faces, "shape": rig.n_shape, "expr": rig.n_expr},
            "backends": [label for label, _, _ in backends], "notes": notes, "results": rows}


def section_encode(ctx: Context) -> dict:
    from . import bench_encode

    return bench_encode.run(size=512, frames=ctx.profile.encode_frames)


def section_stream(ctx: Context) -> dict:
    """Glass-to-glass over loopback with the test-pattern server (bench_stream's peers and browser)."""
    from . import bench_stream

    from realtime.stream.client import ServerProcess

    p = ctx.profile
    browser = p.stream_browser and CHROMIUM is not None
    runs = []
    for size in p.stream_sizes:
        run = {"size": size, "fps_target": 30.0, "codec": "vp8", "python": []}
        server_args = ["--size", str(size), "--fps", "30", "--codec", "vp8",
                       "--max-sessions", str(max(p.stream_viewers) + 1), "--log-level", "WARNING"]
        for count in p.stream_viewers:
            with ServerProcess(server_args) as server:
                run["python"].append(asyncio.run(bench_stream.python_viewers(server, count, p.stream_seconds)))
        if browser:
            with ServerProcess(server_args) as server:
                run["browser"] = bench_stream.browser_viewer(server, p.stream_seconds)
        runs.append(run)
    why = "not in this profile" if not p.stream_browser else "chromium not installed"
    notes = [] if browser else [f"browser peer not measured ({why})"]
    return {"driver": "test pattern (realtime.stream.server)", "runs": runs, "notes": notes}


def section_stream_quality(ctx: Context) -> dict:
    """Received-frame PSNR and the cost of fanning one encode out to viewers (bench_stream_quality's runs)."""
    from . import bench_stream_quality

    p = ctx.profile
    return bench_stream_quality.run(p.quality_sizes, p.quality_viewers, p.quality_seconds, p.quality_contents)


def section_baselines(ctx: Context) -> dict:
    from . import bench_baselines

    devices = ("cpu", "cuda") if ctx.cuda["render"] and ctx.cuda["deform"] else ("cpu",)
    return bench_baselines.run(quick=ctx.profile.name == "quick", devices=devices,
                               smoke=ctx.profile.name == "smoke")


def script_section(script: str, result_name: str) -> Callable[[Context], dict]:
    """A section that runs benchmarks/<script> as its own process (python -m benchmarks.<name>) and returns the
    <result_name>.json it writes (into a temporary folder: the script's own result file in benchmarks/results is
    left as it was)."""
    def section(ctx: Context) -> dict:
        with tempfile.TemporaryDirectory() as folder:
            env = {**os.environ, "REALTIME_BENCH_RESULTS": folder}
            done = subprocess.run([sys.executable, "-m", f"{__package__}.{Path(script).stem}"], env=env,
                                  capture_output=True, text=True)
            if done.returncode:
                raise RuntimeError(f"{script} failed ({done.returncode}): {done.stderr.strip()[-1500:]}")
            return {"script": script, **json.loads((Path(folder) / f"{result_name}.json").read_text())}
    return section


SECTIONS: dict[str, Callable] = {"live": section_live, "render": section_render, "deform": section_deform,
                                 "encode": section_encode, "stream": section_stream,
                                 "stream_quality": section_stream_quality, "baselines": section_baselines}
SCRIPT_RESULTS = {"bench_track.py": ("track", "track_{machine}"),
                  "bench_builder.py": ("builder", "builder_cpu_{machine}"),
                  "bench_fidelity.py": ("fidelity", "fidelity_{machine}")}


# ---- the run --------------------------------------------------------------------------------------------------

def run_suite(profile: Profile, backend: str, out: Path, log: Callable[[str], None] = print,
              only: tuple[str, ...] | None = None) -> tuple[Path, dict]:
    """Run every section of `profile` (or those in `only`), write out/suite_<machine>.json; returns its path and
    the suite."""
    cuda = cuda_devices(backend)
    out.mkdir(parents=True, exist_ok=True)
    machine = _meta.machine_tag()
    sections = dict(SECTIONS)
    for script in profile.scripts:
        name, result = SCRIPT_RESULTS[script]
        sections[name] = script_section(script, result.format(machine=machine))
    if only:
        unknown = set(only) - set(sections)
        if unknown:
            raise ValueError(f"unknown section(s) {sorted(unknown)} for profile {profile.name}; "
                             f"choose from {', '.join(sections)}")
        sections = {k: v for k, v in sections.items() if k in only}
    suite = {"benchmark": "suite", "profile": asdict(profile), "backend": backend, "cuda": cuda,
             "machine_tag": machine, "meta": _meta.metadata(), "sections": {}}
    import numba
    import torch
    suite["meta"].update(numba_threads=numba.get_num_threads(), torch_threads=torch.get_num_threads())
    start = time.perf_counter()
    for name, function in sections.items():
        log(f"[{name}] ...")
        t0, load0 = time.perf_counter(), os.getloadavg()[0]
        try:
            result = function(Context(profile, cuda, out))
        except Exception as exc:  # noqa: BLE001 - one broken section must not lose the others' results
            log(traceback.format_exc())
            result = {"error": f"{type(exc).__name__}: {exc}"}
        result["run"] = {"seconds": round(time.perf_counter() - t0, 2), "load_average_1m_before": round(load0, 2),
                         "load_average_1m_after": round(os.getloadavg()[0], 2)}
        suite["sections"][name] = result
        log(f"[{name}] {'FAILED: ' + result['error'] if 'error' in result else 'done'} "
            f"in {result['run']['seconds']:.1f} s")
    suite["elapsed_s"] = round(time.perf_counter() - start, 1)
    suite["load_average_1_5_15_min_after"] = [round(x, 2) for x in os.getloadavg()]
    path = out / f"suite_{machine}.json"
    path.write_text(json.dumps(suite, indent=2) + "\n")
    return path, suite


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.split("\n")[0])
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--quick", action="store_true", help="the quick profile: under 3 minutes on a 2-core CPU")
    mode.add_argument("--smoke", action="store_true", help="the test suite's profile: every file, minimal sizes")
    p.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto",
                   help="cpu: CPU paths only; cuda: also CUDA (error without it); auto: CUDA when usable")
    p.add_argument("--out", type=Path,
                   help="output folder (default benchmarks/results; quick, smoke: benchmarks/results/quick)")
    p.add_argument("--only", nargs="+", help="run only these sections (live render deform encode stream "
                                             "stream_quality baselines track builder); the suite file then holds "
                                             "only those")
    p.add_argument("--report-only", action="store_true", help="no measuring: rebuild report.md and plots from "
                                                              "the suite_*.json in the output folder")
    p.add_argument("--readme", action="store_true", help="also rewrite README.md's performance section from "
                                                         "the output folder's results")
    return p


def main(argv: list[str] | None = None) -> int:
    """The command line; returns the exit status (1 when a section failed, 2 on bad usage)."""
    args = parser().parse_args(argv)
    profile = PROFILES["quick" if args.quick else "smoke" if args.smoke else "full"]
    out = (args.out or DEFAULT_OUT[profile.name]).resolve()
    failed = []
    if not args.report_only:
        try:
            path, suite = run_suite(profile, args.backend, out, only=tuple(args.only) if args.only else None)
        except (ValueError, ImportError, RuntimeError) as exc:
            print(f"benchmarks: error: {exc}", file=sys.stderr)
            return 2
        failed = [name for name, section in suite["sections"].items() if "error" in section]
        print(f"wrote {path} ({suite['elapsed_s']} s)")
    try:
        written = report.write_report(out)
        print("wrote", *written, sep="\n  ")
        if args.readme:
            print("updated", report.update_readme(out, _meta.ROOT / "README.md"))
    except (FileNotFoundError, ValueError) as exc:
        print(f"benchmarks: error: {exc}", file=sys.stderr)
        return 2
    if failed:
        print(f"benchmarks: sections failed: {', '.join(failed)} (see the report)", file=sys.stderr)
        return 1
    return 0
