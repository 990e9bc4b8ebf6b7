"""The Markdown report (report.md + plots) of the suite results in a folder, and README.md's performance section.

    write_report(folder)                  folder/report.md and folder/*.png from folder/suite_*.json
    update_readme(folder, readme)         rewrite only the part of README.md between the perf markers

Every figure says where it was measured: the machine (CPU model and cores, GPU), the date, the commit and the
load average when the run started and ended (other work on a small machine skews timings).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from . import plots
from .plots import IN_PROCESS, SERVER_STAGES, count_label, machine_label, percentiles, section
from .profiles import PROFILES

START, END = "<!-- perf:start -->", "<!-- perf:end -->"
REPRODUCE = ("python -m benchmarks --quick                     # under 3 minutes on a 2-core CPU, no GPU needed\n"
             "python -m benchmarks                             # the full run (same as `realtime bench`)\n"
             "python -m benchmarks --report-only --readme      # rebuild report.md, the plots and README.md's section")


def load_suites(folder: Path) -> list[dict]:
    """The suite results in `folder` (suite_*.json), CPU-only machines first. FileNotFoundError when none."""
    paths = sorted(Path(folder).glob("suite_*.json"))
    if not paths:
        raise FileNotFoundError(f"no suite_*.json results in {folder}: run `python -m benchmarks` first")
    suites = [json.loads(p.read_text()) for p in paths]
    return sorted(suites, key=lambda s: (s["meta"].get("gpu") is not None, s["machine_tag"]))


def _ms(x: float) -> str:
    return "–" if x != x else f"{x:.1f}" if x >= 10 else f"{x:.2f}" if x >= 0.1 else f"{x:.3f}"


def _table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def where_measured(suite: dict) -> str:
    """One line: machine, date, commit, load average at start and end, profile."""
    meta = suite["meta"]
    load = meta.get("load_average_1_5_15_min") or []
    after = suite.get("load_average_1_5_15_min_after") or []
    peak = max([r["run"][k] for r in suite["sections"].values() for k in ("load_average_1m_before",
                                                                          "load_average_1m_after")
                if k in r.get("run", {})] + load[:1] + after[:1] or [float("nan")])
    gpu = meta.get("gpu") or "no GPU"
    return (f"{meta['cpu_model']}, {meta['cpu_cores']} cores, {gpu}; {meta['date']}; commit "
            f"`{meta['commit'][:12]}`; load average (1 min) {load[0]:.1f} at start, "
            f"{after[0]:.1f} at end, up to {peak:.1f} while a section ran ({suite['profile']['name']} profile, "
            f"{suite.get('elapsed_s', 0):.0f} s)"
            + (" — more work than cores: other jobs shared the CPU, timings are pessimistic"
               if max(load[0], after[0], peak) > meta["cpu_cores"] else "")
            if load and after else f"{meta['cpu_model']}, {meta['cpu_cores']} cores, {gpu}; {meta['date']}")


def machines_table(suites: list[dict]) -> str:
    rows = []
    for s in suites:
        meta = s["meta"]
        v = meta.get("versions", {})
        load = meta.get("load_average_1_5_15_min") or []
        rows.append([s["machine_tag"], meta["cpu_model"], meta["cpu_cores"], meta.get("gpu") or "–", meta["date"],
                     f"`{meta['commit'][:12]}`", s["profile"]["name"],
                     " / ".join(f"{x:.1f}" for x in load) + " → " +
                     " / ".join(f"{x:.1f}" for x in s.get("load_average_1_5_15_min_after", [])),
                     f"{s.get('elapsed_s', 0):.0f} s",
                     ", ".join(f"{k} {v[k]}" for k in ("python", "numpy", "numba", "torch", "gsplat", "cupy-cuda13x",
                                                       "mediapipe", "av", "aiortc") if k in v)])
    return _table(["machine", "CPU", "cores", "GPU", "date (UTC)", "commit", "profile",
                   "load avg 1/5/15 min (start → end)", "run time", "versions"], rows)


def _machine_column(suites: list[dict]) -> bool:
    return len(suites) > 1


def _pp(summary: dict | None) -> str:
    """'p50 / p95' of a timing summary, or '–'."""
    if not summary:
        return "–"
    p50, p95, _ = percentiles(summary)
    return f"{_ms(p50)} / {_ms(p95)}"


def live_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        live = section(s, "live")
        if not live:
            continue
        where = (f"{machine_label(s)}, {live['size']}x{live['size']}, {live['backend'].upper()}; "
                 f"camera: {live['camera']}")
        stages = live.get("stages", {})
        in_process = stages.get("stages_ms", {})
        rows = [[label, *(_ms(x) for x in percentiles(in_process[key]))] for label, key in IN_PROCESS
                if key in in_process]
        rows += [[f"({key}, for comparison)", *(_ms(x) for x in percentiles(v))] for key, v in in_process.items()
                 if key not in dict((k, 1) for _, k in IN_PROCESS)]
        parts.append(f"**{where}.**\n\nEach stage timed in-process, one after another ({stages.get('frames')} "
                     f"frames; capture = VP8 decode + RGB of the camera frame in the server, encode = I420 "
                     f"conversion + VP8, once for all viewers): the p50s sum to "
                     f"{stages.get('frame_cpu_ms_p50_sum')} ms of CPU a frame, {stages.get('fps_if_serial')} fps "
                     f"if run serially.\n\n"
                     + _table(["stage", "p50 ms", "p95 ms", "p99 ms"], rows))
        header = ["run", "fps", "server processing", *SERVER_STAGES, "glass-to-glass",
                  "camera-to-display (lower bound)", "dropped camera frames", "server CPU cores", "load avg 1 min"]
        rows, breakdown = [], []
        for run in live.get("runs", []):
            if "error" in run:
                rows.append([run["label"], run["error"]] + [""] * (len(header) - 2))
                continue
            st = run.get("stages_ms", {})
            load = run.get("load_average_1m", {})
            rows.append([run["label"], f"{run['fps']:.1f}", _pp(run["processing_ms"]),
                         *(_pp(st.get(k)) for k in SERVER_STAGES), _pp(run.get("glass_to_glass_ms")),
                         _pp(run.get("camera_to_display_ms_lower_bound")), str(run.get("dropped_inputs", "–")),
                         f"{run.get('server_cpu_cores', float('nan')):.2f}",
                         f"{load.get('before', float('nan')):.1f} → {load.get('after', float('nan')):.1f}"])
            breakdown.append([run["label"], *(f"{k} {_ms(v)}" for k, v in
                                              plots.live_breakdown(run).items())])
        parts.append("Runs over loopback (the server in its own process, as a user starts it), ms p50 / p95:\n\n"
                     + _table(header, rows))
        if breakdown:
            parts.append("Where each run's glass-to-glass p50 goes (ms; the stacked bars above):\n\n" + "\n".join(
                f"* {row[0]}: " + ", ".join(row[1:]) for row in breakdown))
        notes = live.get("notes")
        if notes:
            parts.append(f"_{notes}_")
    return "\n\n".join(parts) or "_Not measured in this run._"


def render_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        render = section(s, "render")
        if not render:
            continue
        for backend in ("cpu", "cuda"):
            rows = render.get(backend)
            if not rows:
                continue
            sizes = sorted({r["size"][0] for r in rows})
            cells = {(r["gaussians"], r["size"][0]): r["frame"] for r in rows}
            table = [[f"{n:,}"] + [f"{cells[n, z]['fps']:.1f} ({_ms(cells[n, z]['p50_ms'])} ms)"
                                   if (n, z) in cells else "–" for z in sizes]
                     for n in sorted({r["gaussians"] for r in rows})]
            title = f"**{backend.upper()}** ({machine_label(s)}): frames/s (p50 ms per frame)"
            parts.append(title + "\n\n" + _table(["Gaussians"] + [f"{z}x{z}" for z in sizes], table))
        first = render.get("first_call_cpu")
        if first:
            parts.append(f"CPU kernels' first call in a fresh process: {first['cold_cache']['first_render_s']:.1f} s "
                         f"with an empty numba cache (compiling), {first['warm_cache']['first_render_s']:.2f} s "
                         "with the cache filled.")
    return "\n\n".join(parts) or "_Not measured in this run._"


def deform_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        d = section(s, "deform")
        if not d:
            continue
        rows = [[f"{r['n_gaussians']:,}"] + [_ms(r[b]["frame"]["p50_ms"]) + " / " + _ms(r[b]["frame"]["p95_ms"])
                                             if b in r else "–" for b in d["backends"]] for r in d["results"]]
        rig = d["rig"]
        parts.append(f"{machine_label(s)}: ms per frame, p50 / p95 (rig: {rig['vertices']} vertices, "
                     f"{rig['shape']} shape + {rig['expr']} expression coefficients).\n\n" +
                     _table(["Gaussians", *d["backends"]], rows) +
                     "".join(f"\n\n_{note}_" for note in d.get("notes", [])))
    return "\n\n".join(parts) or "_Not measured in this run._"


def encode_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        e = section(s, "encode")
        if not e:
            continue
        rows = [[name, _ms(r["frame"]["p50_ms"]), _ms(r["frame"]["p95_ms"]), f"{r['kbit_per_s_at_30fps']:.0f}"]
                for name, r in e["encoders"].items()]
        rows.append(["RGB → yuv420p (once per frame, shared by all viewers)", _ms(e["rgb_to_yuv420p"]["p50_ms"]),
                     _ms(e["rgb_to_yuv420p"]["p95_ms"]), "–"])
        parts.append(f"{machine_label(s)}, {e['size'][0]}x{e['size'][1]}, {e['frames']} frames of a moving photo:"
                     "\n\n" + _table(["encoder", "p50 ms", "p95 ms", "kbit/s at 30 fps"], rows))
    return "\n\n".join(parts) or "_Not measured in this run._"


def stream_part(suites: list[dict]) -> str:
    rows, notes = [], []
    for s in suites:
        st = section(s, "stream")
        if not st:
            continue
        notes += st.get("notes", [])
        for run in st["runs"]:
            for peer in run["python"]:
                p50, p95, p99 = percentiles(peer["glass_to_glass_ms"])
                rows.append([machine_label(s), f"{run['size']}x{run['size']}", f"Python x{peer['viewers']}",
                             " / ".join(f"{f:.1f}" for f in peer["fps_per_viewer"]), _ms(p50), _ms(p95), _ms(p99),
                             _ms(percentiles(peer["server_processing_ms"])[0])])
            browser = run.get("browser")
            if browser and "glass_to_glass_ms" in browser:
                p50, p95, p99 = percentiles(browser["glass_to_glass_ms"])
                rows.append([machine_label(s), f"{run['size']}x{run['size']}", "Chromium (headless)",
                             f"{browser['fps']:.1f}", _ms(p50), _ms(p95), _ms(p99),
                             _ms(percentiles(browser["server_processing_ms"])[0])])
            elif browser:
                notes.append(f"browser at {run['size']}px: {browser.get('error')}")
    if not rows:
        return "_Not measured in this run._"
    return (_table(["machine", "size", "peer", "fps", "g2g p50 ms", "p95", "p99", "server processing p50 ms"], rows)
            + "".join(f"\n\n_{note}_" for note in notes))


def _kbit(bps: float | None) -> str:
    return "–" if bps is None else f"{bps / 1e3:.0f}"


def stream_quality_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        q = section(s, "stream_quality")
        if not q:
            continue
        rows = [[f"{r['size']}x{r['size']}", r["content"], f"{_kbit(r['bitrate_bps'])} / {_kbit(r['measured_bps'])}",
                 r["keyframes_in_window"], f"{r['psnr_y_db']['mean']:.1f} / {r['psnr_y_db']['p5']:.1f}",
                 f"{r['psnr_rgb_db']['mean']:.1f}", f"{r['psnr_rgb_i420_conversion_only_db']['mean']:.1f}",
                 f"{r['psnr_y_db']['frames']} ({r['frames_unmatched']} unmatched)",
                 "yes" if r["meets_target"] else "**no**", f"{r['load_average_1m']:.1f}"] for r in q["psnr"]]
        parts.append(f"{machine_label(s)}, {q['codec'].upper()} at {q['fps']:g} fps: each frame a Python viewer "
                     "decoded against the frame the server rendered (matched by its capture time); PSNR-Y against "
                     "the server's own I420 conversion (what the codec and the network lost; target "
                     f"{q['target_psnr_db']:g} dB mean), PSNR-RGB against the rendered RGB (4:2:0 chroma "
                     "included; beside it the I420 conversion alone, the ceiling of any 4:2:0 stream).\n\n"
                     + _table(["size", "content", "kbit/s configured / measured", "keyframes", "PSNR-Y dB mean / p5",
                               "PSNR-RGB dB mean", "I420 alone dB", "frames", "target met", "load avg 1 min"], rows))
        rows = [[f"{r['size']}x{r['size']}", r["content"], r["viewers"], f"{r['fps_min']:.1f} / {r['fps_mean']:.1f}",
                 f"{r['server_fps']:.1f}", f"{r['server_cpu_ms_per_frame']:.1f}",
                 f"{r['frames_encoded']} / {r['frames_published']}", f"{max(r['first_frame_ms']):.0f}",
                 f"{r['load_average_1m']['before']:.1f} → {r['load_average_1m']['after']:.1f}"] for r in q["fanout"]]
        if rows:
            parts.append("One encode for every viewer: the server in its own process, the viewers in the "
                         "benchmark's (their decoding shares the CPU with it).\n\n"
                         + _table(["size", "content", "viewers", "fps per viewer min / mean", "server fps",
                                   "server CPU ms a frame", "frames encoded / published",
                                   "first frame ms (slowest viewer)", "load avg 1 min"], rows))
        if q.get("notes"):
            parts.append(f"_{q['notes']}_")
    return "\n\n".join(parts) or "_Not measured in this run._"


def baselines_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        b = section(s, "baselines")
        if not b:
            continue
        rows = []
        for r in b["avatar_frame"]:
            for label, ratios in r["ratios_over_ours_p50"].items():
                for part in ("deform", "render", "total"):
                    rows.append([f"frame {r['device'].upper()}, {r['gaussians']:,} Gaussians, {r['size'][0]}px: "
                                 f"{part}", r["paths"]["ours"], _ms(r["ours"][part]["p50_ms"]), r["paths"][label],
                                 _ms(r[label][part]["p50_ms"]), f"**{ratios[part]:.2f}x**"])
        for r in b["cpu_renderer_vs_reference"]:
            ratio = r["ratio_reference_over_ours_p50"]
            diff = r["image_abs_difference"]
            rows.append([f"CPU render, {r['gaussians']:,} Gaussians, {r['size'][0]}px: whole frame",
                         "our CPU renderer", _ms(r["ours_ms"]["total"]["p50_ms"]), r["reference"],
                         _ms(r["reference_ms"]["total"]["p50_ms"]), f"**{ratio['total']:.1f}x**"])
            for part, (ours, theirs) in {"projection_sh": (("projection_sh",), ("projection", "sh")),
                                         "tile_intersection_vs_sort_bin": (("sort_bin",), ("tile_intersection",)),
                                         "compositing_vs_rasterize": (("rasterize",), ("compositing",))}.items():
                if part in ratio:
                    rows.append([f"  … stage {' + '.join(theirs)} vs our {ours[0]}", "", _ms(sum(
                        r["ours_ms"][k]["p50_ms"] for k in ours)), "", _ms(sum(r["reference_ms"][k]["p50_ms"]
                                                                            for k in theirs)), f"{ratio[part]:.1f}x"])
            rows.append([f"  … pictures differ by at most {diff['max']:.2g} (mean {diff['mean']:.2g}) in [0, 1]",
                         "", "", "", "", ""])
        parts.append(f"{machine_label(s)}: p50 ms per frame; ratio = baseline / ours (above 1: ours is faster).\n\n"
                     + _table(["comparison", "ours", "ms", "baseline", "ms", "ratio"], rows)
                     + "".join(f"\n\n_{note}_" for note in b.get("notes", [])))
    return "\n\n".join(parts) or "_Not measured in this run._"


def track_builder_part(suites: list[dict]) -> str:
    parts = []
    for s in suites:
        track = section(s, "track")
        if track:
            rows = [[name, *(f"{_ms(c['stages_ms'][k]['p50_ms'])} / {_ms(c['stages_ms'][k]['p95_ms'])}"
                             for k in ("landmarks", "fit", "filter", "total")),
                     f"{c['reprojection_error_iod']['filtered_mean']:.4f}"]
                    for name, c in track["clips"].items()]
            parts.append(f"Tracking ({machine_label(s)}, `benchmarks/{track['script']}`), ms per frame p50 / p95:\n\n" +
                         _table(["clip", "landmarks", "fit", "filter", "total", "reprojection (IOD)"], rows))
        builder = section(s, "builder")
        if builder:
            refined = builder["builds"]["refined"]
            parts.append(f"Avatar builder ({machine_label(s)}, `benchmarks/{builder['script']}`): "
                         f"{refined['seconds']:.1f} s for "
                         f"{builder['gaussians']:,} Gaussians with {builder['refine_steps']} refinement steps; source "
                         f"view PSNR {refined['source_view']['psnr_db']:.1f} dB, SSIM "
                         f"{refined['source_view']['ssim']:.3f}; turned heads all found: "
                         f"{builder['turned_heads_required_all_found']}; render at 256x256 "
                         f"{builder['render_cpu_256_ms']:.1f} ms.")
    return "\n\n".join(parts) or "_Run in the full profile only._"


def errors_part(suites: list[dict]) -> str:
    rows = [[machine_label(s), name, result["error"]] for s in suites
            for name, result in s["sections"].items() if "error" in result]
    return _table(["machine", "section", "error"], rows) if rows else ""


def _counts(xs: tuple[int, ...]) -> str:
    return ", ".join(count_label(x) for x in xs)


def _sizes(xs: tuple[int, ...]) -> str:
    return ", ".join(str(x) for x in xs)


def profiles_part() -> str:
    rows = []
    for label, cell in (
            ("render: Gaussians x sizes, frames (cap on Gaussians x pixels)",
             lambda p: f"{_counts(p.render_counts)} x {_sizes(p.render_sizes)}, {p.render_frames}"
                       + (f" ({p.render_max_cost:.0e})" if p.render_max_cost else "")),
            ("deform: Gaussians, frames", lambda p: f"{_counts(p.deform_sizes)}, {p.deform_frames}"),
            ("encode: frames at 512x512", lambda p: str(p.encode_frames)),
            ("stream: sizes, viewers, seconds, browser", lambda p: f"{_sizes(p.stream_sizes)}; "
             f"{_sizes(p.stream_viewers)}; {p.stream_seconds:g}; {'yes' if p.stream_browser else 'no'}"),
            ("stream quality: sizes, viewers, seconds, content", lambda p: f"{_sizes(p.quality_sizes)}; "
             f"{_sizes(p.quality_viewers)}; {p.quality_seconds:g}; {', '.join(p.quality_contents)}"),
            ("live loop: seconds per run", lambda p: f"{p.live_seconds:g}"),
            ("track, builder", lambda p: "yes (their own scripts)" if p.scripts else "no")):
        rows.append([label, cell(PROFILES["full"]), cell(PROFILES["quick"])])
    return _table(["", "full (default)", "--quick"], rows)


def _image(images: dict, name: str, prefix: str = "") -> str:
    return f"![{name}]({prefix}{name})" if images.get(name) else "_No data for this plot in these results._"


def load_note(suites: list[dict], name: str) -> str:
    """Which load each suite's `name` section ran under (1-minute load average before → after it)."""
    notes = [f"{machine_label(s)}: {r['run']['load_average_1m_before']:.1f} → {r['run']['load_average_1m_after']:.1f}"
             f" on {s['meta']['cpu_cores']} cores, {r['run']['seconds']:.0f} s"
             for s in suites if (r := s["sections"].get(name)) and "load_average_1m_before" in r.get("run", {})]
    return f"_Load average (1 min) while this section ran: {'; '.join(notes)}._" if notes else ""


def report_markdown(suites: list[dict], images: dict) -> str:
    """The whole report, given the suites and which plots exist ({file name: path or None})."""
    errors = errors_part(suites)
    return "\n\n".join(part for part in [
        "# Benchmark report",
        "Generated by `python -m benchmarks` (benchmarks/report.py) from the `suite_*.json` beside this file. "
        "Timings are wall-clock on the machines below; a load average above the core count means other work "
        "shared the CPU during the run, and numbers from such a run are pessimistic.",
        "## Where measured", machines_table(suites),
        *(["## Sections that failed", errors] if errors else []),
        "## Live loop (capture → landmarks → fit → deform → render → encode → network)",
        load_note(suites, "live"),
        _image(images, "live_stages.png"), live_part(suites),
        "## Rendering", load_note(suites, "render"), _image(images, "render_fps.png"), render_part(suites),
        "## Deformation backends and video encoders", _image(images, "deform_encode.png"),
        "### Deformation", load_note(suites, "deform"), deform_part(suites),
        "### Encoders", load_note(suites, "encode"), encode_part(suites),
        "## Glass-to-glass latency over loopback", load_note(suites, "stream"), _image(images, "glass_to_glass.png"),
        "Stream server with its test pattern (no avatar work), Python aiortc peers on the same machine and "
        "headless Chromium when installed; latency from the frame's capture time to the decoded frame, on the "
        "shared monotonic clock (the capture time travels beside the frame on the data channel and is matched to "
        "it by RTP timestamp; the browser's figure is the server's estimate from the capture times it echoes).",
        stream_part(suites),
        "## Stream quality and fan-out", load_note(suites, "stream_quality"), stream_quality_part(suites),
        "## Baselines (measured in the same run)", load_note(suites, "baselines"), _image(images, "baselines.png"),
        baselines_part(suites),
        "## Tracking and avatar builder", load_note(suites, "track"), load_note(suites, "builder"),
        track_builder_part(suites),
        "## Reproduce", "```\n" + REPRODUCE + "\n```", profiles_part(),
    ] if part) + "\n"


def write_report(folder: Path) -> list[Path]:
    """Plots and report.md in `folder` from its suite results; returns the files written."""
    folder = Path(folder)
    suites = load_suites(folder)
    images = plots.draw_all(suites, folder)
    path = folder / "report.md"
    path.write_text(report_markdown(suites, images))
    return [p for p in images.values() if p] + [path]


def _key_rows(suite: dict) -> list[list[str]]:
    """The README's headline numbers from one suite."""
    rows = []
    live = section(suite, "live") or {}
    for run in live.get("runs", []):
        g2g = run.get("glass_to_glass_ms")
        if "error" not in run:
            rows.append([f"live loop {live['size']}px {live['backend'].upper()}, {run['label']}",
                         f"{run['fps']:.1f} fps" + (f", glass-to-glass p50 {_ms(percentiles(g2g)[0])} ms, "
                                                    f"p95 {_ms(percentiles(g2g)[1])} ms" if g2g else "")])
    if live.get("stages"):
        rows.append([f"live loop stages in-process, one after another, {live['size']}px",
                     f"{live['stages']['frame_cpu_ms_p50_sum']} ms of CPU a frame (sum of p50s)"])
    render = section(suite, "render") or {}
    for backend in ("cpu", "cuda"):
        for r in render.get(backend, []):
            if r["size"][0] == 512 or (r["size"][0] == max(x["size"][0] for x in render[backend]) <= 512):
                rows.append([f"render {backend.upper()}, {r['gaussians']:,} Gaussians, {r['size'][0]}px",
                             f"{r['frame']['fps']:.1f} fps (p50 {_ms(r['frame']['p50_ms'])} ms)"])
    deform = section(suite, "deform")
    if deform:
        for r in deform["results"]:
            rows.append([f"deform {r['n_gaussians']:,} Gaussians (p50 ms)",
                         ", ".join(f"{b} {_ms(r[b]['frame']['p50_ms'])}" for b in deform["backends"] if b in r)])
    encode = section(suite, "encode")
    if encode:
        rows.append([f"encode {encode['size'][0]}x{encode['size'][1]} (p50 ms)",
                     ", ".join(f"{n} {_ms(r['frame']['p50_ms'])}" for n, r in encode["encoders"].items())])
    for run in (section(suite, "stream") or {}).get("runs", []):
        for peer in run["python"][:1]:
            rows.append([f"stream glass-to-glass {run['size']}px, Python peer",
                         f"p50 {_ms(percentiles(peer['glass_to_glass_ms'])[0])} ms"])
        if run.get("browser") and "glass_to_glass_ms" in run["browser"]:
            rows.append([f"stream glass-to-glass {run['size']}px, Chromium",
                         f"p50 {_ms(percentiles(run['browser']['glass_to_glass_ms'])[0])} ms"])
    quality = section(suite, "stream_quality") or {}
    for r in quality.get("psnr", []):
        rows.append([f"stream quality {r['size']}px {r['content']}, {r['codec'].upper()} at "
                     f"{_kbit(r['measured_bps'])} kbit/s", f"PSNR-Y {r['psnr_y_db']['mean']:.1f} dB "
                     f"(p5 {r['psnr_y_db']['p5']:.1f}), PSNR-RGB {r['psnr_rgb_db']['mean']:.1f} dB"])
    for r in quality.get("fanout", []):
        if r["viewers"] == max(x["viewers"] for x in quality["fanout"] if x["size"] == r["size"]):
            rows.append([f"stream fan-out {r['size']}px, {r['viewers']} viewer(s), one encode",
                         f"{r['fps_min']:.1f} fps each at least, server {r['server_cpu_ms_per_frame']:.1f} ms CPU "
                         "a frame"])
    for r in (section(suite, "baselines") or {}).get("avatar_frame", []):
        for label, ratios in r["ratios_over_ours_p50"].items():
            rows.append([f"GaussianAvatars-style frame ({r['paths'][label]}) / ours ({r['paths']['ours']}), "
                         f"{count_label(r['gaussians'])} Gaussians, {r['size'][0]}px", f"{ratios['total']:.2f}x"])
    for r in (section(suite, "baselines") or {}).get("cpu_renderer_vs_reference", []):
        rows.append([f"{r['reference']} / our CPU renderer, {count_label(r['gaussians'])} {r['size'][0]}px",
                     f"{r['ratio_reference_over_ours_p50']['total']:.1f}x"])
    return rows


def readme_section(suites: list[dict], images: dict, prefix: str) -> str:
    """README.md's performance section (markers included); image and report links start with `prefix`."""
    parts = [START, "## Performance",
             "Generated from the committed benchmark results by `python -m benchmarks --report-only --readme`; "
             f"full report with every table: [{prefix}report.md]({prefix}report.md)."]
    for s in suites:
        parts += [f"Measured on {where_measured(s)}.", _table(["what", "result"], _key_rows(s))]
    parts.append("Ratios are baseline time / our time at p50 (above 1: ours is faster). Glass-to-glass: from the "
                 "camera frame's arrival in the server (or the driver's frame) to the decoded frame at the viewer.")
    parts += [_image(images, name, prefix) for name in ("live_stages.png", "render_fps.png", "glass_to_glass.png",
                                                         "baselines.png") if images.get(name)]
    parts += ["Reproduce:", "```\n" + REPRODUCE + "\n```", END]
    return "\n\n".join(parts)


def replace_section(text: str, new_section: str) -> str:
    """`text` with the part from START to END (markers included) replaced by `new_section`, or with it appended
    when the markers are absent. ValueError when only one marker, or END before START, is found."""
    start, end = text.find(START), text.find(END)
    if start == -1 and end == -1:
        return text.rstrip("\n") + "\n\n" + new_section + "\n"
    if start == -1 or end == -1 or end < start:
        raise ValueError(f"README.md has a broken performance section: need {START} then {END}")
    return text[:start] + new_section + text[end + len(END):]


def update_readme(folder: Path, readme: Path) -> Path:
    """Rewrite the performance section of `readme` from the full-run results in `folder` (other text untouched);
    ValueError for results of a quick or smoke run."""
    folder, readme = Path(folder).resolve(), Path(readme).resolve()
    suites = load_suites(folder)
    partial = [s["machine_tag"] for s in suites if s["profile"]["name"] != "full"]
    if partial:
        raise ValueError(f"README.md's performance section comes from full runs only; {folder} holds "
                         f"{', '.join(partial)} from a {suites[0]['profile']['name']} run")
    images = {name: folder / name if (folder / name).is_file() else None for name in plots.PLOTS}
    prefix = os.path.relpath(folder, readme.parent).replace(os.sep, "/") + "/"
    readme.write_text(replace_section(readme.read_text(), readme_section(suites, images, prefix)))
    return readme
