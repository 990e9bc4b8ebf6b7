"""The one-shot builder on the demo portrait (skimage's astronaut): build time, self-reconstruction, turned heads.

* build: `build_avatar` with the demo settings, timed, before refinement (refine_steps=0) and after;
* self-reconstruction at the source view: the avatar drawn by its default camera with neutral parameters
  (what `realtime render --driver still` shows) against the portrait cropped the same way, PSNR and
  SSIM (scikit-image, 7x7 windows, averaged) inside the face region (the convex hull of MediaPipe's
  face-oval points detected in the photo);
* turned heads: MediaPipe (static-image mode) must find one face in renders at yaw +-30 and pitch +-15
  degrees (and we also try +-45 yaw and +-15 roll);
* render speed of the result: the CPU renderer at 256x256 (median of 30 frames after warm-up).

    python -m benchmarks.bench_builder [--backend cpu] [--gaussians N] [--refine-steps K] [--save-images DIR]

Writes benchmarks/results/builder_<backend>_<machine>.json.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import cv2
import numpy as np

from realtime.builder.build import DEMO_SETTINGS, build_avatar, crop_image
from realtime.builder.fit_portrait import portrait_camera
from realtime.deform.reference import deform
from realtime.face.detector import LandmarkDetector
from realtime.face.landmark_ids import FACE_OVAL
from realtime.render import render
from realtime.rig.model import RigParams

from ._meta import machine_tag, metadata, write_result

TURNS = {"yaw+30": (0, 30, 0), "yaw-30": (0, -30, 0), "pitch+15": (15, 0, 0), "pitch-15": (-15, 0, 0),
         "yaw+45": (0, 45, 0), "yaw-45": (0, -45, 0), "roll+15": (0, 0, 15), "roll-15": (0, 0, -15)}
REQUIRED = ("yaw+30", "yaw-30", "pitch+15", "pitch-15")


def draw(avatar, degrees=(0.0, 0.0, 0.0), camera=None) -> np.ndarray:
    """(H, W, 3) uint8: the avatar with neutral parameters and the head turned by (pitch, yaw, roll) degrees."""
    params = RigParams.neutral(avatar.rig)
    params.shape = avatar.shape
    params.rotation = np.radians(np.asarray(degrees, np.float32))
    g = deform(avatar, params).gaussians
    image = render(g.means, g.quats, g.scales, avatar.opacities, avatar.sh, camera or avatar.camera,
                   background=(1.0, 1.0, 1.0), backend="cpu").image
    return np.round(image * 255).astype(np.uint8)


def face_scores(rendered: np.ndarray, reference: np.ndarray, mask: np.ndarray) -> dict:
    """PSNR (dB) and mean SSIM of `rendered` vs `reference` ((H, W, 3) uint8) inside mask (H, W) bool."""
    from skimage.metrics import structural_similarity

    a = rendered.astype(np.float64) / 255
    b = reference.astype(np.float64) / 255
    mse = float(np.mean((a[mask] - b[mask]) ** 2))
    ssim_map = structural_similarity(a, b, channel_axis=2, data_range=1.0, win_size=7, full=True)[1]
    return {"psnr_db": 10 * np.log10(1.0 / mse), "ssim": float(ssim_map.mean(axis=2)[mask].mean()),
            "pixels": int(mask.sum())}


def source_view(avatar, portrait: np.ndarray, detector: LandmarkDetector) -> tuple[np.ndarray, np.ndarray]:
    """The portrait cropped as the avatar's default camera sees it ((S, S, 3) uint8) and the face mask there."""
    photo = portrait_camera(portrait.shape[1], portrait.shape[0])
    x0, y0 = np.round(photo.K[:2, 2] - avatar.camera.K[:2, 2]).astype(int)
    side = avatar.camera.width
    crop = crop_image(portrait.astype(np.float32), x0, y0, side, side).astype(np.uint8)
    oval = detector.detect(portrait)[0].points[list(FACE_OVAL), :2] - [x0, y0]
    mask = np.zeros((side, side), np.uint8)
    cv2.fillConvexPoly(mask, np.round(cv2.convexHull(oval.astype(np.float32))).astype(np.int32), 1)
    return crop, mask > 0


def render_ms(avatar, size: int = 256, frames: int = 30) -> float:
    """Median CPU render time (ms) of the avatar at size x size (deformation excluded)."""
    params = RigParams.neutral(avatar.rig)
    params.shape = avatar.shape
    g = deform(avatar, params).gaussians
    args = [np.ascontiguousarray(a, dtype=np.float32) for a in (g.means, g.quats, g.scales, avatar.opacities,
                                                                 avatar.sh)]
    camera = avatar.camera.resized(size, size)
    for _ in range(3):
        render(*args, camera, backend="cpu")
    times = []
    for _ in range(frames):
        start = time.perf_counter()
        render(*args, camera, backend="cpu")
        times.append(1000 * (time.perf_counter() - start))
    return float(np.median(times))


def main() -> None:
    from skimage import data

    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="cpu")
    parser.add_argument("--gaussians", type=int, default=DEMO_SETTINGS.n_gaussians)
    parser.add_argument("--refine-steps", type=int, default=DEMO_SETTINGS.refine_steps)
    parser.add_argument("--save-images", type=Path, help="write the renders (PNG) to this folder")
    args = parser.parse_args()

    portrait = data.astronaut()
    report = {"meta": metadata(), "portrait": "skimage.data.astronaut() 512x512", "backend": args.backend,
              "gaussians": args.gaussians, "refine_steps": args.refine_steps, "builds": {}}
    avatars = {}
    for label, steps in (("unrefined", 0), ("refined", args.refine_steps)):
        lines = []
        start = time.perf_counter()
        avatars[label] = build_avatar(portrait, n_gaussians=args.gaussians, refine_steps=steps,
                                      backend=args.backend, seed=DEMO_SETTINGS.seed, log=lines.append)
        report["builds"][label] = {"seconds": time.perf_counter() - start, "log": lines}
        print(f"{label}: {report['builds'][label]['seconds']:.1f} s", *lines, sep="\n  ")

    with LandmarkDetector(static_image_mode=True, max_faces=2) as detector:
        reference, mask = source_view(avatars["refined"], portrait, detector)
        for label, avatar in avatars.items():
            rendered = draw(avatar)
            report["builds"][label]["source_view"] = face_scores(rendered, reference, mask)
            print(label, report["builds"][label]["source_view"])
            if args.save_images:
                args.save_images.mkdir(parents=True, exist_ok=True)
                cv2.imwrite(str(args.save_images / f"{label}_source.png"), rendered[..., ::-1])
        turned = {}
        for name, degrees in TURNS.items():
            rendered = draw(avatars["refined"], degrees)
            faces = detector.detect(rendered)
            turned[name] = {"degrees_pitch_yaw_roll": list(degrees), "faces_found": len(faces)}
            if args.save_images:
                cv2.imwrite(str(args.save_images / f"turn_{name}.png"), rendered[..., ::-1])
        report["turned_heads"] = turned
        report["turned_heads_required_all_found"] = all(turned[n]["faces_found"] == 1 for n in REQUIRED)
        print("turned heads:", {n: t["faces_found"] for n, t in turned.items()})
        if args.save_images:
            cv2.imwrite(str(args.save_images / "portrait_crop.png"), reference[..., ::-1])
    report["render_cpu_256_ms"] = render_ms(avatars["refined"])
    print(f"render 256x256 on the CPU: {report['render_cpu_256_ms']:.1f} ms")
    path = write_result(f"builder_{args.backend}_{machine_tag()}", report)
    print("wrote", path)


if __name__ == "__main__":
    main()
