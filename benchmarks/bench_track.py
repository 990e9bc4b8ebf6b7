"""Tracking per frame on this CPU: MediaPipe landmarks, the rig fit, the filter, and the whole track() call.

Also the quality checks of the tracking issue on real faces: the fitted rig's landmarks' reprojection error
(mean, in units of the inter-ocular distance) for the raw fit and the filtered output, and the jitter of the
filtered output on a still input (the astronaut photo repeated: a perfectly still face).

Clips: ../shared/clips/d3.mp4 and d0.mp4 when present (512x512 crops of talking faces), else a synthetic clip
of the astronaut photo sliding and zooming. The first frames calibrate the identity and field of view; they are
timed separately. The first clip runs twice: with the tracker's own largest-face follower (FaceMesh following one
face, the face detector looking for a larger one every `face_check_every` frames) and, as the baseline in the same
run, with MediaPipe asked for two faces and the larger kept (its face detector then runs on every frame).

    python -m benchmarks.bench_track [--clips PATH ...] [--still-frames 90]

Writes benchmarks/results/track_<machine>.json.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from realtime.face.detector import LandmarkDetector
from realtime.rig.builtin import builtin_rig
from realtime.track.sources import Frame, ImageSource, VideoFileSource
from realtime.track.tracker import Tracker, TrackerSettings, interocular_distance

from ._meta import ROOT, machine_tag, metadata, summarize_ms, write_result

SHARED_CLIPS = (ROOT.parent / "shared" / "clips" / "d3.mp4", ROOT.parent / "shared" / "clips" / "d0.mp4")
TARGETS_MS = {"total_p95": 4.0, "fit_p95": 1.0}
TARGET_REPROJECTION_IOD = 0.03
TARGET_JITTER_IOD = 0.003


def synthetic_clip(n_frames: int = 150) -> tuple[list[np.ndarray], float]:
    """The astronaut photo sliding, zooming and tilting slowly: (frames, fps)."""
    import cv2
    from skimage.data import astronaut

    photo = astronaut()
    frames = []
    for t in range(n_frames):
        angle = 6.0 * np.sin(t / 20.0)
        scale = 1.0 + 0.08 * np.sin(t / 33.0)
        m = cv2.getRotationMatrix2D((256.0, 200.0), angle, scale)
        m[:, 2] += (12.0 * np.sin(t / 25.0), 8.0 * np.cos(t / 30.0))
        frames.append(cv2.warpAffine(photo, m, (512, 512), borderMode=cv2.BORDER_REFLECT))
    return frames, 30.0


def load_clip(path: Path) -> tuple[list[np.ndarray], float]:
    with VideoFileSource(path) as source:
        return [f.image for f in source], source.fps


def track_clip(rig, images: list[np.ndarray], fps: float, settings: TrackerSettings, detector=None) -> dict:
    """Track every frame; per-stage times after calibration, reprojection errors of raw and filtered fits. Then
    the fit alone again over the recorded landmarks (no MediaPipe threads running in between)."""
    stages = {"landmarks": [], "fit": [], "filter": [], "total": []}
    calibration_ms, raw_errors, filtered_errors, missed, recorded = [], [], [], 0, []
    with Tracker(rig, detector=detector, settings=settings) as tracker:
        for index, image in enumerate(images):
            was_calibrated = tracker.calibrated
            result = tracker.track(Frame(image, index, 0, media_time=index / fps))
            recorded.append(result.landmarks)
            if not result.face_found:
                missed += 1
                continue
            if not was_calibrated:
                calibration_ms.append(result.timings["fit"])
                continue
            for stage in stages:
                stages[stage].append(result.timings[stage])
            points = result.landmarks
            iod = interocular_distance(points)
            observed = points[tracker.basis.ids, :2]
            raw_errors.append(np.linalg.norm(observed - tracker.project(result.raw_params), axis=1).mean() / iod)
            filtered_errors.append(np.linalg.norm(observed - tracker.project(result.params), axis=1).mean() / iod)
        fov = float(np.degrees(2 * np.arctan(0.5 * tracker.camera.width / tracker.camera.K[0, 0])))
    height, width = images[0].shape[:2]
    alone = []
    with Tracker(rig, detector=object(), settings=settings) as tracker:
        for index, points in enumerate(recorded):
            result = tracker.track_landmarks(points, index / fps, (width, height))
            if tracker.calibrated and result.face_found and index >= settings.calibration_frames:
                alone.append(result.timings["fit"])
    return {"frames": len(images), "fps": fps, "frames_without_face": missed,
            "calibration_frames_fit_ms": calibration_ms, "calibrated_fov_x_deg": fov,
            "stages_ms": {k: summarize_ms(v) for k, v in stages.items() if v},
            "fit_alone_ms": summarize_ms(alone),
            "reprojection_error_iod": {"raw_fit_mean": float(np.mean(raw_errors)),
                                       "raw_fit_p95": float(np.percentile(raw_errors, 95)),
                                       "filtered_mean": float(np.mean(filtered_errors))}}


def still_jitter(rig, n_frames: int, settings: TrackerSettings) -> dict:
    """The astronaut photo repeated at 30 fps: spread of MediaPipe's landmarks, the raw fit and the filtered fit
    about their means (frames after the first 30), in units of the inter-ocular distance."""
    from skimage.data import astronaut

    with Tracker(rig, settings=settings) as tracker:
        results = [tracker.track(frame) for frame in ImageSource(astronaut(), repeat=n_frames, fps=30.0)]
    steady = results[30:]
    iod = interocular_distance(steady[-1].landmarks)

    def spread(points: np.ndarray) -> float:
        return float(np.mean(np.linalg.norm(points - points.mean(0), axis=2)) / iod)

    return {"frames": n_frames, "frames_measured": len(steady),
            "mediapipe_jitter_iod": spread(np.array([r.landmarks[tracker.basis.ids, :2] for r in steady])),
            "raw_fit_jitter_iod": spread(np.array([tracker.project(r.raw_params) for r in steady])),
            "filtered_jitter_iod": spread(np.array([tracker.project(r.params) for r in steady])),
            "reprojection_error_iod_mean": float(np.mean([r.error_iod for r in steady]))}


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--clips", nargs="*", type=Path, default=None, help="video files (default: the shared clips)")
    parser.add_argument("--still-frames", type=int, default=90)
    args = parser.parse_args()
    report = {"benchmark": "track", **metadata(), "targets": {**TARGETS_MS, "reprojection_iod": TARGET_REPROJECTION_IOD,
                                                               "still_jitter_iod": TARGET_JITTER_IOD}}
    rig = builtin_rig()
    settings = TrackerSettings()
    report["rig"] = {"name": rig.name, "n_expr": rig.n_expr, "n_shape": rig.n_shape}
    report["tracker_settings"] = {"face_check_every": settings.face_check_every,
                                  "fit_iterations": settings.fit.iterations,
                                  "calibration_frames": settings.calibration_frames}
    paths = args.clips if args.clips is not None else [p for p in SHARED_CLIPS if p.is_file()]
    clips = {}
    for k, path in enumerate(paths):
        images, fps = load_clip(path)
        clips[path.name] = track_clip(rig, images, fps, settings)
        if k == 0:  # the baseline: MediaPipe's detector on every frame, looking for a second face
            clips[f"{path.name}@mediapipe_max_faces=2"] = track_clip(
                rig, images, fps, settings, detector=LandmarkDetector(static_image_mode=False, max_faces=2))
    if not clips:
        images, fps = synthetic_clip()
        clips["astronaut_synthetic_motion"] = track_clip(rig, images, fps, settings)
    report["clips"] = clips
    report["still"] = still_jitter(rig, args.still_frames, settings)
    path = write_result(f"track_{machine_tag()}", report)
    for name, clip in clips.items():
        s = clip["stages_ms"]
        print(f"{name}: landmarks p50 {s['landmarks']['p50_ms']:.2f} p95 {s['landmarks']['p95_ms']:.2f} ms | "
              f"fit p50 {s['fit']['p50_ms']:.3f} p95 {s['fit']['p95_ms']:.3f} ms "
              f"(alone p50 {clip['fit_alone_ms']['p50_ms']:.3f} p95 {clip['fit_alone_ms']['p95_ms']:.3f}) | "
              f"total p50 {s['total']['p50_ms']:.2f} p95 {s['total']['p95_ms']:.2f} ms | "
              f"reprojection raw {clip['reprojection_error_iod']['raw_fit_mean']:.4f} "
              f"filtered {clip['reprojection_error_iod']['filtered_mean']:.4f} IOD | fov {clip['calibrated_fov_x_deg']:.0f}")
    st = report["still"]
    print(f"still: jitter mediapipe {st['mediapipe_jitter_iod']:.5f} raw {st['raw_fit_jitter_iod']:.5f} "
          f"filtered {st['filtered_jitter_iod']:.5f} IOD")
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
