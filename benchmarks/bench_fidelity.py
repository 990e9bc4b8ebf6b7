"""Expression-transfer fidelity measured from outside: does the avatar do what the face does?

For each driving clip the demo avatar is rendered driven by it (`realtime render --driver CLIP`, the offline twin
of the live loop: tracking, then deform and splat at `size` px), MediaPipe reads both videos, and per face signal
(realtime.face.signals: mouth opening, eye opening L/R, brow height L/R, mouth width, gaze x/y, head yaw, pitch,
roll) the avatar's Pearson r with the driver and its amplitude (5-95 % spread over the driver's) are reported.
The avatar's own reach is measured the same way on its expression tour (`realtime render --driver tour`).

Clips: ../shared/clips/d0.mp4 and d3.mp4 when present (real talking and expressive faces), and always a made
clip: the demo avatar with another head shape performing the tour after a second at rest (known blinks,
smiles, brows, gaze and head turns). Targets (the fidelity issue): every exercised signal r >= 0.9 and amplitude
within 0.75-1.33; on the tour lips closed <= 0.03, jaw open >= 0.45, eyes closed <= 0.03 and wide >= 0.26 (inter-
ocular units), mouth width from <= 0.75 to >= 1.05, gaze x spanning >= 0.25 eye widths.

    python -m benchmarks.bench_fidelity [--clips PATH ...] [--size 256] [--limit FRAMES]

Writes benchmarks/results/fidelity_<machine>.json and, per clip, fidelity_<clip>.png (driver and avatar signals
over time).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np

from realtime.app.fidelity import (TransferReport, measure_transfer, other_identity, render_motion, signal_range,
                                   video_landmarks)
from realtime.app.library import demo_avatar
from realtime.app.motions import tour, with_lead_in
from realtime.app.offline import render_to_file
from realtime.face.signals import SIGNALS, face_signals

from ._meta import RESULTS, ROOT, machine_tag, metadata, write_result

SHARED_CLIPS = (ROOT.parent / "shared" / "clips" / "d0.mp4", ROOT.parent / "shared" / "clips" / "d3.mp4")
MADE_CLIP = "demo_other_identity_tour.mp4"
TARGETS = {"r_min": 0.9, "amplitude": (0.75, 1.33), "lips_closed_max": 0.03, "jaw_open_min": 0.45,
           "eyes_closed_max": 0.03, "eyes_wide_min": 0.26, "mouth_width_low_max": 0.75,
           "mouth_width_high_min": 1.05, "gaze_x_span_min": 0.25}


def plot_signals(report: TransferReport, title: str, path: Path) -> Path:
    """Driver and avatar signals over time, one panel per signal, r and amplitude in each title; a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(SIGNALS), 1, figsize=(10, 1.6 * len(SIGNALS)), sharex=True)
    for ax, name in zip(axes, SIGNALS):
        ax.plot(report.driver[name], lw=1, label="driver")
        ax.plot(report.avatar[name], lw=1, label="avatar")
        got = report.signals.get(name)
        ax.set_title(f"{name}: r {got.r:.2f}, amplitude {got.amplitude:.2f}" if got else f"{name}: not exercised",
                     fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    axes[0].legend(fontsize=7, loc="upper right")
    axes[-1].set_xlabel("frame")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


def tour_reach(signals: dict[str, np.ndarray]) -> dict[str, float]:
    """The avatar's own reach on its tour, in the issue's terms (see TARGETS)."""
    rng = signal_range(signals)
    eyes = np.fmin(signals["eye_left"], signals["eye_right"])
    return {"lips_closed": rng["mouth_open"]["min"], "jaw_open": rng["mouth_open"]["max"],
            "eyes_closed": float(np.nanmin(eyes)), "eyes_wide": float(np.nanmax(np.fmax(signals["eye_left"],
                                                                                          signals["eye_right"]))),
            "mouth_width_min": rng["mouth_width"]["min"], "mouth_width_max": rng["mouth_width"]["max"],
            "gaze_x_span": rng["gaze_x"]["max"] - rng["gaze_x"]["min"]}


def run(clips: list[Path] | None = None, size: int = 256, limit: int | None = None, out_dir: Path | None = None,
        work: Path | None = None) -> dict:
    """Measure fidelity on `clips` (default: the shared clips present) and the made clip, and the tour's reach.
    Videos are written to `work` (a temporary folder by default), plots to `out_dir` (default: where write_result
    writes). Returns the JSON-able report."""
    avatar, _ = demo_avatar()
    clips = [p for p in SHARED_CLIPS if p.is_file()] if clips is None else [Path(p) for p in clips]
    out_dir = Path(out_dir or os.environ.get("REALTIME_BENCH_RESULTS") or RESULTS)
    out_dir.mkdir(parents=True, exist_ok=True)
    report = {"benchmark": "fidelity", **metadata(), "avatar": avatar.name, "size": size, "targets": TARGETS,
              "clips": {}}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(work or scratch)
        other = other_identity(avatar)
        made = render_motion(other, with_lead_in(tour(other.rig, other.shape), other.rig, other.shape),
                             work / MADE_CLIP, size=size)
        for clip in [*clips, made]:
            start = time.perf_counter()
            rendered = work / f"avatar_{clip.stem}.mp4"
            notes = []
            render_to_file(avatar, str(clip), rendered, size=size, backend="cpu", progress=False, report=notes.append)
            measured = measure_transfer(clip, rendered, limit=limit)
            plot = plot_signals(measured, f"{clip.name} driving the {avatar.name} avatar at {size} px",
                                out_dir / f"fidelity_{clip.stem}.png")
            report["clips"][clip.name] = {**measured.summary(), "notes": notes, "plot": plot.name,
                                          "seconds": time.perf_counter() - start}
        tour_video = render_to_file(avatar, "tour", work / "tour.mp4", size=size, backend="cpu", progress=False)
        tour_signals = face_signals(video_landmarks(work / "tour.mp4"))
        report["tour"] = {"frames": tour_video, "reach": tour_reach(tour_signals), "range": signal_range(tour_signals)}
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="*", type=Path, default=None,
                        help="driving videos (default: the shared clips)")
    parser.add_argument("--size", type=int, default=256, help="avatar video size in pixels")
    parser.add_argument("--limit", type=int, default=None, help="measure at most this many frames of each clip")
    args = parser.parse_args()
    report = run(args.clips, size=args.size, limit=args.limit)
    path = write_result(f"fidelity_{machine_tag()}", report)
    for name, clip in report["clips"].items():
        cells = " ".join(f"{k} {v['r']:.2f}/{v['amplitude']:.2f}" for k, v in clip["signals"].items())
        print(f"{name}: r/amplitude {cells}")
    reach = report["tour"]["reach"]
    print("tour reach: " + " ".join(f"{k} {v:.3f}" for k, v in reach.items()))
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
