"""The report's plots (matplotlib, PNG) drawn from one or more suite results (run_all's suite_<machine>.json).

Each function takes the loaded suites and a PNG path, draws what the suites hold and returns the path, or None
when no suite has the data (the report then says so instead of showing a picture).
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import FuncFormatter, NullFormatter  # noqa: E402

# the live loop's stages as bench_live times them in-process (column name, key), and the server's own stage windows
IN_PROCESS = (("capture", "camera_decode"), ("landmarks", "landmarks"), ("fit", "fit"), ("deform", "deform"),
              ("render", "render"), ("encode", "encode"))
SERVER_STAGES = ("landmarks", "fit", "deform", "render", "encode")
# the stages compared in bench_baselines' CPU renderer baseline
RATIO_PARTS = {"total": "whole frame", "projection_sh": "projection + SH",
               "tile_intersection_vs_sort_bin": "tile lists", "compositing_vs_rasterize": "compositing"}
DPI = 110
PLAIN = FuncFormatter(lambda value, _: f"{value:g}")


def count_label(n: int) -> str:
    """10000 -> '10k', 1000000 -> '1M'."""
    return f"{n / 1e6:g}M" if n >= 10**6 else f"{n / 1e3:g}k" if n >= 1000 else str(n)


def percentiles(summary: dict) -> tuple[float, float, float]:
    """(p50, p95, p99) of a timing summary, whichever spelling it uses (`p50_ms` or `p50`)."""
    return tuple(float(summary.get(f"p{q}_ms", summary.get(f"p{q}", np.nan))) for q in (50, 95, 99))


def machine_label(suite: dict) -> str:
    """A short name of the machine a suite ran on: its GPU, else its CPU and cores."""
    meta = suite["meta"]
    return meta.get("gpu") or f"{meta['cpu_model']} {meta['cpu_cores']}c"


def section(suite: dict, name: str) -> dict | None:
    """A suite's section when it ran without error, else None."""
    result = suite.get("sections", {}).get(name)
    return None if result is None or "error" in result else result


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def _suffix(suite: dict, many: bool) -> str:
    return f" ({machine_label(suite)})" if many else ""


def _ranges(ax, x: float, summary: dict, colour, label: str | None = None) -> None:
    """A timing summary at x: a dot at p50, a thick line to p95, a thin one to p99."""
    p50, p95, p99 = percentiles(summary)
    ax.plot([x, x], [p50, p95], color=colour, lw=5, alpha=0.6, solid_capstyle="butt")
    ax.plot([x, x], [p95, p99], color=colour, lw=1.5)
    ax.plot([x], [p50], "o", color=colour, ms=6, label=label)


def live_breakdown(run: dict) -> dict[str, float]:
    """Where one live run's glass-to-glass p50 goes, in ms: the server's stage p50s (tracking, drawing and the one
    encode for all viewers), the rest of its processing p50 (waits between threads, camera decode), and what
    follows publishing (glass-to-glass p50 - processing p50: packetizing and sending to the viewer, network,
    jitter buffer, decode at the viewer)."""
    stages = run.get("stages_ms", {})
    parts = {k: percentiles(stages[k])[0] for k in SERVER_STAGES if k in stages}
    processing = percentiles(run["processing_ms"])[0]
    parts["other server time"] = max(0.0, processing - sum(parts.values()))
    if "glass_to_glass_ms" in run:
        parts["send + network + decode"] = max(0.0, percentiles(run["glass_to_glass_ms"])[0] - processing)
    return parts


def live_stages(suites: list[dict], path: Path) -> Path | None:
    """The live loop per stage: percentile ranges (p50 dot, thick to p95, thin to p99) of each stage timed
    in-process one after another and of the server's own stage windows during the runs; and a stacked bar of
    where each run's glass-to-glass p50 goes."""
    lives = [(suite, live) for suite in suites if (live := section(suite, "live"))]
    if not lives:
        return None
    many = len(suites) > 1
    fig, (ax_r, ax_b) = plt.subplots(1, 2, figsize=(13, 5), gridspec_kw={"width_ratios": [3, 2]})
    colours = iter(plt.get_cmap("tab10").colors)
    columns = [label for label, _ in IN_PROCESS] + ["glass-to-glass"]
    bars = []
    for suite, live in lives:
        in_process = live.get("stages", {}).get("stages_ms", {})
        colour = next(colours)
        series = [(i, in_process[key]) for i, (_, key) in enumerate(IN_PROCESS) if key in in_process]
        for j, (i, summary) in enumerate(series):
            _ranges(ax_r, i - 0.2, summary, colour, f"in-process, serial{_suffix(suite, many)}" if j == 0 else None)
        for run in live.get("runs", []):
            if "error" in run:
                continue
            colour = next(colours)
            points = [(columns.index(k), run["stages_ms"][k]) for k in SERVER_STAGES if k in run.get("stages_ms", {})]
            if "glass_to_glass_ms" in run:
                points.append((len(columns) - 1, run["glass_to_glass_ms"]))
            for j, (i, summary) in enumerate(points):
                _ranges(ax_r, i + 0.1 * len(bars), summary, colour,
                        f"server: {run['label']}{_suffix(suite, many)}" if j == 0 else None)
            bars.append((f"{run['label']}{_suffix(suite, many)}", live_breakdown(run), run))
    ax_r.set_xticks(range(len(columns)), columns, fontsize=8)
    ax_r.set_yscale("log")
    ax_r.set_ylabel("ms per frame (log): p50 dot, p95 thick, p99 thin")
    ax_r.set_title("Live loop: per-stage latency")
    ax_r.grid(True, axis="y", which="both", alpha=0.3)
    ax_r.legend(fontsize=7)
    names = list(dict.fromkeys(k for _, parts, _ in bars for k in parts))
    bottoms = np.zeros(len(bars))
    for i, name in enumerate(names):
        values = np.array([parts.get(name, 0.0) for _, parts, _ in bars])
        ax_b.bar(range(len(bars)), values, bottom=bottoms, color=plt.get_cmap("tab10").colors[i % 10], label=name)
        bottoms += values
    for k, (_, _, run) in enumerate(bars):
        if "glass_to_glass_ms" in run:
            ax_b.plot([k], [percentiles(run["glass_to_glass_ms"])[0]], "k_", ms=30, mew=2)
    ax_b.plot([], [], "k_", ms=12, mew=2, label="glass-to-glass p50")
    ax_b.set_xticks(range(len(bars)), [textwrap.fill(label, 18) for label, _, _ in bars], fontsize=7)
    ax_b.set_ylabel("ms (p50 of each part, stacked)")
    ax_b.set_title("Live loop: where glass-to-glass goes")
    ax_b.legend(fontsize=7)
    return _save(fig, path)


def render_fps(suites: list[dict], path: Path) -> Path | None:
    """frames/s against Gaussian count (one line per resolution) and against resolution (one line per count),
    CPU solid, CUDA dashed."""
    series = [(suite, backend, rows) for suite in suites if (render := section(suite, "render"))
              for backend in ("cpu", "cuda") if (rows := render.get(backend))]
    if not series:
        return None
    many = len(suites) > 1
    fig, (ax_n, ax_s) = plt.subplots(1, 2, figsize=(12, 4.6))
    for suite, backend, rows in series:
        style = "-" if backend == "cpu" else "--"
        sizes = sorted({r["size"][0] for r in rows})
        counts = sorted({r["gaussians"] for r in rows})
        fps = {(r["gaussians"], r["size"][0]): r["frame"]["fps"] for r in rows}
        for size in sizes:
            xs = [n for n in counts if (n, size) in fps]
            ax_n.plot(xs, [fps[n, size] for n in xs], style, marker="o",
                      label=f"{backend.upper()} {size}x{size}{_suffix(suite, many)}")
        for n in counts:
            xs = [s for s in sizes if (n, s) in fps]
            ax_s.plot(xs, [fps[n, s] for s in xs], style, marker="o",
                      label=f"{backend.upper()} {count_label(n)}{_suffix(suite, many)}")
    for ax, xlabel in ((ax_n, "Gaussians"), (ax_s, "output size (pixels, square)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.axhline(30, color="grey", lw=0.8, ls=":")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("frames/s (mean, log)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        ax.yaxis.set_major_formatter(PLAIN)
        ax.yaxis.set_minor_formatter(PLAIN)
    ax_s.set_xticks([256, 512, 1024], ["256", "512", "1024"])
    ax_s.xaxis.set_minor_formatter(NullFormatter())
    ax_n.set_title("Render frames/s vs Gaussian count (dotted: 30 fps)")
    ax_s.set_title("Render frames/s vs resolution")
    return _save(fig, path)


def deform_encode(suites: list[dict], path: Path) -> Path | None:
    """Deformation time per frame per backend against Gaussian count, and encode time per frame at 512x512."""
    deform = [(s, d) for s in suites if (d := section(s, "deform"))]
    encode = [(s, e) for s in suites if (e := section(s, "encode"))]
    if not deform and not encode:
        return None
    many = len(suites) > 1
    fig, (ax_d, ax_e) = plt.subplots(1, 2, figsize=(12, 4.6))
    for suite, d in deform:
        for backend in d["backends"]:
            rows = [r for r in d["results"] if backend in r]
            ax_d.plot([r["n_gaussians"] for r in rows], [r[backend]["frame"]["p50_ms"] for r in rows], marker="o",
                      ls="-" if backend in ("numpy", "numba", "cupy") else "--", label=f"{backend}{_suffix(suite, many)}")
    ax_d.set_xscale("log")
    ax_d.set_yscale("log")
    ax_d.set_xlabel("Gaussians")
    ax_d.set_ylabel("ms per frame (p50, log)")
    ax_d.set_title("Deformation backends (solid: ours, dashed: torch)")
    ax_d.grid(True, which="both", alpha=0.3)
    if deform:
        ax_d.legend(fontsize=8)
    labels, p50s, p95s = [], [], []
    for suite, e in encode:
        for name, r in e["encoders"].items():
            p50, p95, _ = percentiles(r["frame"])
            labels.append(f"{name}{_suffix(suite, many)}")
            p50s.append(p50)
            p95s.append(p95)
        p50, p95, _ = percentiles(e["rgb_to_yuv420p"])
        labels.append(f"RGB->yuv420p{_suffix(suite, many)}")
        p50s.append(p50)
        p95s.append(p95)
    y = np.arange(len(labels))
    ax_e.barh(y, p50s, color="tab:blue", label="p50")
    ax_e.errorbar(p50s, y, xerr=[np.zeros(len(y)), np.subtract(p95s, p50s)], fmt="none", ecolor="k", capsize=3,
                  label="to p95")
    ax_e.set_yticks(y, labels, fontsize=8)
    ax_e.invert_yaxis()
    ax_e.set_xlabel("ms per frame")
    ax_e.set_title("Video encoders at 512x512")
    if encode:
        ax_e.legend(fontsize=8)
    return _save(fig, path)


def _latency_bars(ax, rows: list[tuple[str, dict]], title: str) -> None:
    """Horizontal p50 bars with whiskers to p95 and a dot at p99, one per (label, summary)."""
    y = np.arange(len(rows))
    p = np.array([percentiles(summary) for _, summary in rows]).reshape(-1, 3)
    ax.barh(y, p[:, 0], color="tab:orange", label="p50")
    ax.errorbar(p[:, 0], y, xerr=[np.zeros(len(y)), p[:, 1] - p[:, 0]], fmt="none", ecolor="k", capsize=3,
                label="to p95")
    ax.plot(p[:, 2], y, "kx", label="p99")
    ax.set_yticks(y, [label for label, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("glass-to-glass ms")
    ax.set_title(title)
    ax.legend(fontsize=8)


def glass_to_glass(suites: list[dict], path: Path) -> Path | None:
    """Glass-to-glass latency over loopback: the live loop (where measured) and the stream server with its test
    pattern, for Python peers and the browser."""
    many = len(suites) > 1
    rows = []
    for suite in suites:
        for run in (section(suite, "live") or {}).get("runs", []):
            if "glass_to_glass_ms" in run and "error" not in run:
                rows.append((f"live loop, {run['label']}{_suffix(suite, many)}", run["glass_to_glass_ms"]))
        for run in (section(suite, "stream") or {}).get("runs", []):
            for peer in run["python"]:
                rows.append((f"stream {run['size']}px, Python peer x{peer['viewers']}{_suffix(suite, many)}",
                             peer["glass_to_glass_ms"]))
            browser = run.get("browser")
            if browser and "glass_to_glass_ms" in browser:
                rows.append((f"stream {run['size']}px, Chromium{_suffix(suite, many)}", browser["glass_to_glass_ms"]))
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(9, 0.9 + 0.45 * len(rows)))
    _latency_bars(ax, rows, "Glass-to-glass latency over loopback")
    return _save(fig, path)


def baselines(suites: list[dict], path: Path) -> Path | None:
    """Baseline time / our time (p50) per comparison, log scale; bars above 1 mean ours is faster."""
    many = len(suites) > 1
    labels, ratios = [], []
    for suite in suites:
        b = section(suite, "baselines")
        if not b:
            continue
        for row in b["avatar_frame"]:
            for label, ratio in row["ratios_over_ours_p50"].items():
                threads = ", torch 1 thread" if label.endswith("1_thread") else ""
                labels.append(f"GaussianAvatars-style frame {row['device'].upper()}{threads}, "
                              f"{count_label(row['gaussians'])} {row['size'][0]}px{_suffix(suite, many)}")
                ratios.append(ratio["total"])
        for row in b["cpu_renderer_vs_reference"]:
            for part, value in row["ratio_reference_over_ours_p50"].items():
                labels.append(f"CPU render vs torch reference, {RATIO_PARTS.get(part, part)}, "
                              f"{count_label(row['gaussians'])} {row['size'][0]}px{_suffix(suite, many)}")
                ratios.append(value)
    if not labels:
        return None
    fig, ax = plt.subplots(figsize=(10, 0.9 + 0.4 * len(labels)))
    y = np.arange(len(labels))
    ax.barh(y, ratios, color=["tab:green" if r >= 1 else "tab:red" for r in ratios])
    ax.axvline(1, color="k", lw=0.8)
    ax.set_xscale("log")
    for yi, r in zip(y, ratios):
        ax.text(r, yi, f" {r:.3g}x", va="center", fontsize=8)
    ax.set_yticks(y, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("baseline time / our time (p50, log; > 1: ours is faster)")
    ax.set_title("Baselines measured in the same run")
    return _save(fig, path)


PLOTS = {"live_stages.png": live_stages, "render_fps.png": render_fps, "deform_encode.png": deform_encode,
         "glass_to_glass.png": glass_to_glass, "baselines.png": baselines}


def draw_all(suites: list[dict], folder: Path) -> dict[str, Path | None]:
    """Every plot into `folder`; {file name: path, or None when the suites have no data for it}. A plot with no
    data removes a stale file of that name."""
    drawn = {}
    for name, draw in PLOTS.items():
        drawn[name] = draw(suites, folder / name)
        if drawn[name] is None:
            (folder / name).unlink(missing_ok=True)
    return drawn
