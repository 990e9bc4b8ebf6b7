"""The CPU splatting renderer: gsplat 1.5.3's tile rasterizer, compiled with numba.

Steps for one frame: project every Gaussian (`project.py`), sort the visible ones by camera
depth and bin them into 16x16 tiles (`tiles.py`), and composite each tile front to back (tiles shared
among threads).

Compositing, per pixel with centre (x + 0.5, y + 0.5) and per Gaussian in depth order:

    d = mean_2d - centre,  σ = 0.5 (a dx^2 + c dy^2) + b dx dy       conic (a, b, c)
    α = min(0.999, opacity exp(-σ));  skipped when σ < 0 or α < 1/255
    if T (1 - α) <= 1e-4 the pixel is finished (this Gaussian is not added)
    else  C += colour α T,  T *= 1 - α
    image = C + T background,  alpha = 1 - T

Within a tile each Gaussian only visits the pixels of the rows and row spans where
opacity exp(-σ) >= 1/255 can hold (solved from the conic, with a small margin), which skips
exactly the pixels the test above would skip; finished pixels are tracked as a bit mask per row,
so spans over finished pixels are skipped whole, and a tile stops when all its pixels are finished.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from numba import njit

from realtime.camera import Camera
from realtime.render.base import RenderResult, check_inputs
from realtime.render.constants import ALPHA_THRESHOLD, FASTMATH, MAX_ALPHA, MIN_TRANSMITTANCE, TILE_SIZE
from realtime.render.project import Projected, project
from realtime.render.tiles import sort_and_bin
from realtime.render.workers import INLINE, Workers, default_threads

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_SPAN_MARGIN = 0.01  # pixels of slack on every row span, far above float32 rounding


def rasterize(projected: Projected, offsets: np.ndarray, ids: np.ndarray, width: int, height: int,
              background: np.ndarray, workers: Workers = INLINE) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gaussians binned by `sort_and_bin`, tiles shared among `workers`. background: (3,) float32.
    Returns image (H, W, 3) clamped to [0, 1] and alpha (H, W), both float32."""
    image = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    starts, tiles = _share_tiles(offsets, np.int64(workers.parts))
    jobs = [(tiles[starts[p]:starts[p + 1]], offsets, ids, projected.means2d, projected.conics,
             projected.opacities, projected.colors, np.int64(width), np.int64(height), np.int64(TILE_SIZE),
             background, image, alpha) for p in range(workers.parts) if starts[p + 1] > starts[p]]
    workers.run(_draw_tiles, jobs)
    return image, alpha


@njit(nogil=True, cache=True)
def _share_tiles(offsets, n_parts):
    """Tiles cut into `n_parts` parts of about equal cost (the tile's entries plus a fixed share for its
    pixels), costliest tile first into the cheapest part. Part p is tiles[starts[p]:starts[p + 1]]."""
    n_tiles = offsets.shape[0] - 1
    cost = np.empty(n_tiles, np.int64)
    for t in range(n_tiles):
        cost[t] = offsets[t + 1] - offsets[t] + 32
    load = np.zeros(n_parts, np.int64)
    owner = np.empty(n_tiles, np.int64)
    for t in np.argsort(-cost, kind="mergesort"):
        p = np.argmin(load)
        owner[t] = p
        load[p] += cost[t]
    starts = np.zeros(n_parts + 1, np.int64)
    for t in range(n_tiles):
        starts[owner[t] + 1] += 1
    for p in range(n_parts):
        starts[p + 1] += starts[p]
    tiles = np.empty(n_tiles, np.int64)
    cursor = starts[:-1].copy()
    for t in range(n_tiles):
        tiles[cursor[owner[t]]] = t
        cursor[owner[t]] += 1
    return starts, tiles


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _draw_tiles(tiles, offsets, ids, means2d, conics, opacities, colors, width, height, tile_size, background,
                image, alpha_out):
    """Composite the listed tiles into `image` (H, W, 3) and `alpha_out` (H, W)."""
    tiles_x = (width + tile_size - 1) // tile_size
    for tile in tiles:
        _draw_tile(tile, offsets, ids, means2d, conics, opacities, colors, width, height, tile_size, tiles_x,
                   background, image, alpha_out)


@njit(cache=True, fastmath=FASTMATH)
def _draw_tile(tile, offsets, ids, means2d, conics, opacities, colors, width, height, tile_size, tiles_x,
               background, image, alpha_out):
    """Composite one tile's Gaussians into its pixels of `image` (H, W, 3) and `alpha_out` (H, W)."""
    px0 = (tile % tiles_x) * tile_size
    py0 = (tile // tiles_x) * tile_size
    tw = min(tile_size, width - px0)
    th = min(tile_size, height - py0)
    trans = np.ones((th, tw), np.float32)
    live = np.full(th, (1 << tw) - 1, np.int64)  # bit ix of row iy set: pixel (ix, iy) is unfinished (tw <= 62)
    acc = np.zeros((th, tw, 3), np.float32)
    n_live = th * tw
    for k in range(offsets[tile], offsets[tile + 1]):
        g = ids[k]
        u, v = means2d[g, 0], means2d[g, 1]
        ca, cb, cc = conics[g, 0], conics[g, 1], conics[g, 2]
        opacity = opacities[g]
        r, gr, b = colors[g, 0], colors[g, 1], colors[g, 2]
        # opacity exp(-σ) >= 1/255  <=>  σ <= level; σ as a quadratic in dx for fixed dy
        level = math.log(float(opacity) / float(ALPHA_THRESHOLD))
        a64, b64 = float(ca), float(cb)
        det = a64 * float(cc) - b64 * b64
        if not (level > 0.0 and det > 0.0 and a64 > 0.0):
            continue
        half_rows = math.sqrt(2.0 * level * a64 / det) + _SPAN_MARGIN
        row0 = max(0, int(math.floor(v - 0.5 - half_rows)) - py0)
        row1 = min(th - 1, int(math.ceil(v - 0.5 + half_rows)) - py0)
        for iy in range(row0, row1 + 1):
            if live[iy] == 0:  # rows (and below, row spans) without unfinished pixels are skipped
                continue
            dy = v - (np.float32(py0 + iy) + _HALF)
            dy64 = float(dy)
            disc = 2.0 * level * a64 - dy64 * dy64 * det
            if disc < 0.0:
                continue
            root = math.sqrt(disc) / a64
            centre = float(u) - 0.5 + b64 * dy64 / a64  # x where σ is smallest on this row
            col0 = max(0, int(math.floor(centre - root - _SPAN_MARGIN)) - px0)
            col1 = min(tw - 1, int(math.ceil(centre + root + _SPAN_MARGIN)) - px0)
            if col1 < col0 or (live[iy] >> col0) & ((2 << (col1 - col0)) - 1) == 0:
                continue
            for ix in range(col0, col1 + 1):
                if (live[iy] >> ix) & 1 == 0:
                    continue
                dx = u - (np.float32(px0 + ix) + _HALF)
                sigma = _HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                alpha = min(MAX_ALPHA, opacity * math.exp(-sigma))
                if sigma < _F0 or alpha < ALPHA_THRESHOLD:
                    continue
                t = trans[iy, ix]
                next_t = t * (_F1 - alpha)
                if next_t <= MIN_TRANSMITTANCE:
                    live[iy] &= ~(1 << ix)
                    n_live -= 1
                    continue
                w = alpha * t
                acc[iy, ix, 0] += r * w
                acc[iy, ix, 1] += gr * w
                acc[iy, ix, 2] += b * w
                trans[iy, ix] = next_t
        if n_live == 0:
            break
    for iy in range(th):
        for ix in range(tw):
            t = trans[iy, ix]
            for c in range(3):
                image[py0 + iy, px0 + ix, c] = min(_F1, max(_F0, acc[iy, ix, c] + t * background[c]))
            alpha_out[py0 + iy, px0 + ix] = _F1 - t


class CpuRenderer:
    """The CPU renderer (NumPy arrays in and out). Its state: its threads (numba's compiled kernels are cached on
    disk across processes).

    threads: how many threads draw (None: one per core).
    """

    backend = "cpu"
    device = "cpu"
    differentiable = False

    def __init__(self, threads: int | None = None) -> None:
        self.workers = Workers(default_threads() if threads is None else threads)

    def as_input(self, value: Any) -> np.ndarray:
        """A C-contiguous float32 NumPy copy (or view) of an array or a torch tensor on any device."""
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        return np.ascontiguousarray(value, dtype=np.float32)

    def render(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
               sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
               with_alpha: bool = False) -> RenderResult:
        """Draw N Gaussians (NumPy arrays or CPU/GPU torch tensors, see `realtime.render.render`).
        Returns NumPy image (H, W, 3) and, when asked, alpha (H, W), float32."""
        degree, bg = check_inputs(means, quats, scales, opacities, sh, sh_degree, background)
        means, quats, scales, opacities, sh = (self.as_input(a) for a in (means, quats, scales, opacities, sh))
        viewmat = np.ascontiguousarray(camera.viewmat, dtype=np.float32)
        K = np.ascontiguousarray(camera.K, dtype=np.float32)
        projected = project(means, quats, scales, opacities, sh, viewmat, K, camera.width, camera.height,
                            sh_degree=degree, antialiased=antialiased, workers=self.workers)
        offsets, ids = sort_and_bin(projected, camera.width, camera.height)
        image, alpha = rasterize(projected, offsets, ids, camera.width, camera.height, bg, self.workers)
        return RenderResult(image=image, alpha=alpha if with_alpha else None)

    def warm_up(self) -> float:
        """Compile (or load from numba's cache) every kernel by drawing one tiny scene; returns seconds taken."""
        start = time.perf_counter()
        camera = Camera(K=np.array([[16.0, 0, 8], [0, 16, 8], [0, 0, 1]]), viewmat=np.eye(4), width=16,
                        height=16)
        self.render(np.array([[0, 0, 1]]), np.array([[1, 0, 0, 0]]), np.full((1, 3), 0.1), np.ones(1),
                    np.ones((1, 1, 3)), camera)
        return time.perf_counter() - start
