"""Baselines measured in the same run as our paths, reported as ratios (baseline time / our time: above 1 means
ours is faster).

1. A GaussianAvatars-style frame, deformation + render of a FLAME-sized avatar (synthetic rig, 4972 vertices,
   300 shape + 100 expression coefficients, SH degree 3, random parameters every frame):
   baseline: the FLAME forward pass and binding in plain torch ops (realtime/deform/torch_backend.py, what
   GaussianAvatars-style code does) + gsplat on CUDA; on the CPU, the same torch deformation + our CPU renderer,
   with torch's default threads and on one thread. ours: CuPy kernels + gsplat on CUDA; numba deformation + our
   CPU renderer on the CPU. The paths take turns frame by frame, so load drifts hit them alike.
2. Our CPU renderer against gsplat's own pure-torch reference (gsplat 1.5.3, gsplat/cuda/_torch_impl.py):
   its projection (`_quat_scale_to_covar_preci`, `_fully_fused_projection`), SH (`_spherical_harmonics`) and tile
   intersection (`_isect_tiles`, `_isect_offset_encode`) run on CPU tensors without compiling CUDA; its
   `_rasterize_to_pixels` calls a CUDA op (`rasterize_to_indices_in_range`, and `accumulate` needs nerfacc), so
   compositing is done by `composite_tiles` below: a plain torch tile compositor with gsplat's rules (dense over
   each tile's pixels x its depth-sorted Gaussians). Without gsplat the reference is that compositor on our
   own projection and tile lists (only the compositing stage is compared). Scene: bench_render's head scene.
   The two pictures are compared (max and mean absolute difference) to show the baseline draws the same image.

    python -m benchmarks.bench_baselines [--quick] [--backend auto|cpu|cuda]

Writes benchmarks/results/baselines_<machine>.json.
"""

from __future__ import annotations

import argparse
import importlib
import time

import numpy as np
import torch

from realtime.avatar.synthetic import random_avatar, random_params
from realtime.camera import Camera, head_and_shoulders_camera
from realtime.deform import make_deformer
from realtime.render import get_renderer
from realtime.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FAR_PLANE, MAX_ALPHA, MIN_TRANSMITTANCE, NEAR_PLANE, TILE_SIZE)
from realtime.render.cpu import rasterize
from realtime.render.tiles import sort_and_bin
from realtime.render.project import project
from realtime.render.synthetic import head_scene
from realtime.rig.synthetic import synthetic_rig

from ._meta import machine_tag, metadata, summarize_ms, write_result

WARMUP = 2


def gsplat_torch_reference():
    """gsplat's pure-torch module (gsplat.cuda._torch_impl), or None when gsplat does not import. Importing it
    compiles nothing (gsplat builds its CUDA code on the first CUDA op, which this benchmark never calls)."""
    try:
        return importlib.import_module("gsplat.cuda._torch_impl")
    except ImportError:
        return None


def composite_tiles(means2d: torch.Tensor, conics: torch.Tensor, opacities: torch.Tensor, colors: torch.Tensor,
                    offsets: torch.Tensor, ids: torch.Tensor, width: int, height: int, background: torch.Tensor,
                    max_elements: int = 1 << 22) -> torch.Tensor:
    """Front-to-back compositing of depth-sorted tile lists in plain torch ops, with gsplat 1.5.3's rules
    (pixel centres at +0.5, alpha = min(0.999, o exp(-σ)), skipped when σ < 0 or alpha < 1/255, a pixel stops
    before the Gaussian that would take its transmittance to 1e-4 or below).

    means2d: (N, 2), conics: (N, 3) (xx, xy, yy), opacities: (N,), colors: (N, 3), float32; offsets:
    (T + 1,) int64 and ids: (M,) int64, tile t (row-major 16x16 tiles) draws ids[offsets[t]:offsets[t+1]];
    background: (3,). Every tile is evaluated densely (all its pixels x all its Gaussians, padded to the longest
    list), `max_elements` pixel-Gaussian pairs at a time. Returns the image (height, width, 3) float32.
    """
    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    n = means2d.shape[0]
    counts = offsets[1:] - offsets[:-1]
    longest = max(int(counts.max()), 1)
    slot = torch.arange(longest)
    padded = torch.cat([ids, torch.tensor([n])])                            # n: a transparent dummy Gaussian
    table = padded[torch.where(slot[None] < counts[:, None], offsets[:-1, None] + slot[None], len(ids))]  # (T, L)
    means2d = torch.cat([means2d, torch.zeros(1, 2)])
    conics = torch.cat([conics, torch.zeros(1, 3)])
    opacities = torch.cat([opacities, torch.zeros(1)])
    colors = torch.cat([colors, torch.zeros(1, 3)])
    py, px = torch.meshgrid(torch.arange(TILE_SIZE), torch.arange(TILE_SIZE), indexing="ij")
    tile_index = torch.arange(tiles_x * tiles_y)
    origins = torch.stack([tile_index % tiles_x, tile_index // tiles_x], -1) * TILE_SIZE
    centres = origins[:, None, :] + torch.stack([px.flatten(), py.flatten()], -1)[None] + 0.5   # (T, 256, 2)
    out = torch.empty(tiles_x * tiles_y, TILE_SIZE * TILE_SIZE, 3)
    step = max(1, max_elements // (TILE_SIZE * TILE_SIZE * longest))
    for start in range(0, len(table), step):
        g = table[start:start + step]                                       # (t, L)
        d = centres[start:start + step, :, None, :] - means2d[g][:, None]   # (t, 256, L, 2)
        c = conics[g][:, None]                                              # (t, 1, L, 3)
        sigma = 0.5 * (c[..., 0] * d[..., 0] ** 2 + c[..., 2] * d[..., 1] ** 2) + c[..., 1] * d[..., 0] * d[..., 1]
        alpha = torch.clamp(opacities[g][:, None] * torch.exp(-sigma), max=float(MAX_ALPHA))
        alpha = torch.where((sigma < 0) | (alpha < float(ALPHA_THRESHOLD)), 0.0, alpha)
        alpha = alpha * (torch.cumprod(1 - alpha, -1) > float(MIN_TRANSMITTANCE))  # a prefix of each pixel's list
        through = torch.cumprod(1 - alpha, -1)
        before = torch.cat([torch.ones_like(through[..., :1]), through[..., :-1]], -1)
        out[start:start + step] = torch.einsum("tpl,tlc->tpc", alpha * before, colors[g]) \
            + through[..., -1:] * background
    image = out.reshape(tiles_y, tiles_x, TILE_SIZE, TILE_SIZE, 3).permute(0, 2, 1, 3, 4)
    return image.reshape(tiles_y * TILE_SIZE, tiles_x * TILE_SIZE, 3)[:height, :width].clamp(0, 1)


def _reference_frame(ref, t: dict, viewmat: torch.Tensor, K: torch.Tensor, width: int, height: int,
                     background: torch.Tensor) -> tuple[torch.Tensor, dict]:
    """One frame drawn by gsplat's torch pieces + composite_tiles; returns the image and ms per stage."""
    ms, t0 = {}, time.perf_counter()
    covars, _ = ref._quat_scale_to_covar_preci(t["quats"], t["scales"], compute_preci=False, triu=False)
    radii, means2d, depths, conics, _ = ref._fully_fused_projection(
        t["means"], covars, viewmat[None], K[None], width, height, eps2d=EPS2D, near_plane=NEAR_PLANE,
        far_plane=FAR_PLANE)
    t1 = time.perf_counter()
    campos = torch.linalg.inv(viewmat)[:3, 3]
    colors = torch.clamp_min(ref._spherical_harmonics(3, t["means"] - campos, t["sh"]) + 0.5, 0.0)
    t2 = time.perf_counter()
    tiles_x, tiles_y = -(-width // TILE_SIZE), -(-height // TILE_SIZE)
    _, isect_ids, flatten_ids = ref._isect_tiles(means2d, radii, depths, TILE_SIZE, tiles_x, tiles_y)
    starts = ref._isect_offset_encode(isect_ids, 1, tiles_x, tiles_y).flatten().long()
    offsets = torch.cat([starts, torch.tensor([len(flatten_ids)])])
    t3 = time.perf_counter()
    image = composite_tiles(means2d[0], conics[0], t["opacities"], colors, offsets, flatten_ids.long(), width,
                            height, background)
    t4 = time.perf_counter()
    for name, a, b in (("projection", t0, t1), ("sh", t1, t2), ("tile_intersection", t2, t3),
                       ("compositing", t3, t4)):
        ms[name] = (b - a) * 1e3
    return image, ms


def _our_frame(scene, viewmat: np.ndarray, K: np.ndarray, width: int, height: int, background: np.ndarray):
    """Our CPU renderer's stages on one frame, on its threads: (image, projected, offsets, ids, ms per stage)."""
    workers = get_renderer("cpu").workers
    t0 = time.perf_counter()
    projected = project(scene.means, scene.quats, scene.scales, scene.opacities, scene.sh, viewmat, K, width,
                        height, sh_degree=3, antialiased=False, workers=workers)
    t1 = time.perf_counter()
    offsets, ids = sort_and_bin(projected, width, height)
    t2 = time.perf_counter()
    image, _ = rasterize(projected, offsets, ids, width, height, background, workers)
    t3 = time.perf_counter()
    return image, projected, offsets, ids, {"projection_sh": (t1 - t0) * 1e3, "sort_bin": (t2 - t1) * 1e3,
                                            "rasterize": (t3 - t2) * 1e3}


def _summaries(rows: list[dict]) -> dict:
    keys = rows[0].keys()
    return {k: summarize_ms([r[k] for r in rows]) for k in keys} | {"total": summarize_ms([sum(r.values())
                                                                                           for r in rows])}


def cpu_renderer_vs_reference(n_gaussians: int, size: int, frames: int) -> dict:
    """Our CPU renderer against gsplat's torch reference pieces (or, without gsplat, a torch compositor on our
    projection) on the head scene at size x size; per-stage p50 times, ratios and picture agreement."""
    ref = gsplat_torch_reference()
    scene = head_scene(n_gaussians, sh_degree=3)
    camera = head_and_shoulders_camera(scene.vertices, size, size)
    viewmat, K = camera.viewmat.astype(np.float32), camera.K.astype(np.float32)
    background = np.zeros(3, np.float32)
    tensors = {k: torch.from_numpy(getattr(scene, k)) for k in ("means", "quats", "scales", "opacities", "sh")}
    ours_rows, ref_rows = [], []
    for i in range(WARMUP + frames):  # each side in its own loop: torch's idle threads must not slow numba's
        ours_image, projected, offsets, ids, ours_ms = _our_frame(scene, viewmat, K, size, size, background)
        if i >= WARMUP:
            ours_rows.append(ours_ms)
    with torch.inference_mode():
        for i in range(1 + frames):  # plain torch ops: one warm-up frame is enough
            if ref is not None:
                ref_image, ref_ms = _reference_frame(ref, tensors, torch.from_numpy(viewmat), torch.from_numpy(K),
                                                     size, size, torch.from_numpy(background))
            else:
                t0 = time.perf_counter()
                ref_image = composite_tiles(*(torch.from_numpy(a) for a in (
                    projected.means2d, projected.conics, projected.opacities, projected.colors)),
                    torch.from_numpy(offsets), torch.from_numpy(ids.astype(np.int64)), size, size,
                    torch.from_numpy(background))
                ref_ms = {"compositing": (time.perf_counter() - t0) * 1e3}
            if i >= 1:
                ref_rows.append(ref_ms)
    ours, reference = _summaries(ours_rows), _summaries(ref_rows)
    difference = np.abs(ref_image.numpy() - ours_image)
    ratios = {"total": reference["total"]["p50_ms"] / ours["total"]["p50_ms"],
              "compositing_vs_rasterize": reference["compositing"]["p50_ms"] / ours["rasterize"]["p50_ms"]}
    if ref is not None:
        ratios["projection_sh"] = ((reference["projection"]["p50_ms"] + reference["sh"]["p50_ms"])
                                   / ours["projection_sh"]["p50_ms"])
        ratios["tile_intersection_vs_sort_bin"] = (reference["tile_intersection"]["p50_ms"]
                                                   / ours["sort_bin"]["p50_ms"])
    return {"gaussians": n_gaussians, "size": [size, size],
            "reference": "gsplat 1.5.3 torch reference (projection, SH, tile intersection) + torch tile compositor"
                         if ref is not None else "torch tile compositor on our projection and tile lists "
                                                 "(gsplat not installed)",
            "ours_ms": ours, "reference_ms": reference, "ratio_reference_over_ours_p50": ratios,
            "image_abs_difference": {"max": float(difference.max()), "mean": float(difference.mean())}}


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


class _OneThread:
    """A torch deformer whose calls run on one CPU thread (torch's OpenMP threads are restored after each)."""

    def __init__(self, deformer) -> None:
        self.deformer = deformer

    def deform(self, params):
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return self.deformer.deform(params)
        finally:
            torch.set_num_threads(threads)


def avatar_frame_paths(n_gaussians: int, size: int, frames: int, device: str) -> dict:
    """Deformation + render per frame: torch deformation (baseline) vs ours (numba on the CPU, CuPy on CUDA),
    both drawn by the renderer of `device` ('cpu': our CPU renderer, 'cuda': gsplat)."""
    rig = synthetic_rig(n_rings=72, n_segments=70, n_shape=300, n_expr=100, seed=1)
    avatar = random_avatar(rig, n_gaussians, seed=0, sh_degree=3)
    params = [random_params(avatar, seed=s, angle=0.15) for s in range(8)]
    vertices = make_deformer(avatar, "numpy").deform(params[0]).vertices
    camera: Camera = head_and_shoulders_camera(np.asarray(vertices, np.float64), size, size)
    renderer = get_renderer(device)
    opacities, sh = avatar.opacities.astype(np.float32), avatar.sh.astype(np.float32)
    if device == "cuda":
        opacities, sh = torch.from_numpy(opacities).cuda(), torch.from_numpy(sh).cuda()
    renderer_name = "gsplat" if device == "cuda" else "our CPU renderer"
    torch_deformer = make_deformer(avatar, "torch", device=device)
    paths = {"ours": make_deformer(avatar, "cupy" if device == "cuda" else "numba",
                                   device=device if device == "cuda" else None),
             "baseline_torch": torch_deformer}
    descriptions = {"ours": f"{'CuPy kernels' if device == 'cuda' else 'numba deformation'} + {renderer_name}",
                    "baseline_torch": f"torch deformation + {renderer_name}"}
    if device == "cpu":
        paths["baseline_torch_1_thread"] = _OneThread(torch_deformer)
        descriptions["baseline_torch_1_thread"] = f"torch deformation on 1 thread + {renderer_name}"
        descriptions["baseline_torch"] += f" (torch's default {torch.get_num_threads()} threads)"
    result = {"gaussians": n_gaussians, "size": [size, size], "device": device, "paths": descriptions}
    times = {label: ([], []) for label in paths}  # (deform ms, render ms) per path
    for i in range(WARMUP + frames):  # the paths take turns frame by frame: both see the same load over time
        for label, deformer in paths.items():
            _sync(device)
            t0 = time.perf_counter()
            g = deformer.deform(params[i % len(params)])
            _sync(device)
            t1 = time.perf_counter()
            renderer.render(g.means, g.quats, g.scales, opacities, sh, camera)
            _sync(device)
            t2 = time.perf_counter()
            if i >= WARMUP:
                times[label][0].append((t1 - t0) * 1e3)
                times[label][1].append((t2 - t1) * 1e3)
    for label, (deform_ms, render_ms) in times.items():
        result[label] = {"deform": summarize_ms(deform_ms), "render": summarize_ms(render_ms),
                         "total": summarize_ms([a + b for a, b in zip(deform_ms, render_ms)])}
    result["ratios_over_ours_p50"] = {
        label: {part: result[label][part]["p50_ms"] / result["ours"][part]["p50_ms"]
                for part in ("deform", "render", "total")} for label in paths if label != "ours"}
    return result


def run(quick: bool = False, devices: tuple[str, ...] = ("cpu",), smoke: bool = False) -> dict:
    """Every baseline for the given devices ('cpu', and 'cuda' when measured). quick/smoke: fewer and smaller."""
    if smoke:
        frame_cases, frame_count, render_cases, render_frames = [(5_000, 256)], 2, [(2_000, 128)], 1
    elif quick:
        frame_cases, frame_count, render_cases, render_frames = [(40_000, 256)], 6, [(10_000, 256)], 2
    else:
        frame_cases = [(40_000, 256), (100_000, 512)]
        frame_count, render_cases, render_frames = 20, [(10_000, 256), (40_000, 512)], 3
    cuda_cases = [(100_000, 512), (1_000_000, 512)] if not (quick or smoke) else [(100_000, 512)]
    report = {"avatar_frame": [], "cpu_renderer_vs_reference": []}
    for device in devices:
        for n, size in (frame_cases if device == "cpu" else cuda_cases):
            report["avatar_frame"].append(avatar_frame_paths(n, size, frame_count, device))
    for n, size in render_cases:
        report["cpu_renderer_vs_reference"].append(cpu_renderer_vs_reference(n, size, render_frames))
    report["gsplat_torch_reference"] = gsplat_torch_reference() is not None
    report["notes"] = [
        "GaussianAvatars-style frames: the paths take turns frame by frame. On the CPU torch runs with its default "
        "threads (OpenMP) and, as a second baseline, on one thread: on this 2-core VM torch's two OpenMP threads "
        "often stall for hundreds of milliseconds next to other thread pools, one thread does not.",
        "gsplat's torch rasterization (_rasterize_to_pixels) calls a CUDA op and cannot run on CPU tensors: "
        "compositing in the reference is our plain torch tile compositor with gsplat's rules.",
        "gsplat's torch _isect_tiles loops over Gaussians and tiles in Python: it dominates the reference's time.",
    ]
    if not report["gsplat_torch_reference"]:
        report["notes"].append("gsplat is not installed here: only the compositing stage has a reference "
                               "(pip install gsplat==1.5.3 to add its torch projection, SH and tile intersection).")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(prog=f"python -m {__spec__.name}", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--backend", choices=("auto", "cpu", "cuda"), default="auto")
    args = parser.parse_args()
    from realtime.render import resolve_backend
    devices = ("cpu",) if args.backend == "cpu" else ("cpu", "cuda") if resolve_backend(args.backend) == "cuda" \
        else ("cpu",)
    report = {"benchmark": "baselines", "meta": metadata(), **run(args.quick, devices)}
    for row in report["avatar_frame"]:
        print(row["device"], row["gaussians"], row["size"], "baseline/ours p50:", row["ratios_over_ours_p50"])
    for row in report["cpu_renderer_vs_reference"]:
        print("cpu renderer", row["gaussians"], row["size"], row["ratio_reference_over_ours_p50"],
              row["image_abs_difference"])
    print("wrote", write_result(f"baselines_{machine_tag()}", report))


if __name__ == "__main__":
    main()
