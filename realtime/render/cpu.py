"""The CPU splatting renderer: gsplat 1.5.3's tile rasterizer, compiled with numba.

Steps for one frame: project every Gaussian (`project.py`), sort the visible ones by camera
depth and bin them into 16x16 tiles (`tiles.py`), pack each Gaussian's screen-space values into one
record (`pack_splats`), and composite each tile front to back (tiles shared among threads).

Compositing, per pixel with centre (x + 0.5, y + 0.5) and per Gaussian in depth order:

    d = mean_2d - centre,  σ = 0.5 (a dx^2 + c dy^2) + b dx dy       conic (a, b, c)
    α = min(0.999, opacity exp(-σ));  skipped when σ < 0 or α < 1/255
    if T (1 - α) <= 1e-4 the pixel is finished (this Gaussian is not added)
    else  C += colour α T,  T *= 1 - α
    image = C + T background,  alpha = 1 - T

How a tile is walked: its pixels are held as 4x4 blocks. A Gaussian visits only the blocks that the
bounding box of its footprint touches (the ellipse where opacity exp(-σ) >= 1/255 can hold, with a
small margin), and the 16 pixels of a block are composited together by one branch-free loop that
the compiler turns into SIMD code (the exponential is `exp_neg`, a polynomial, so that it
vectorizes). A pixel outside the footprint fails the α test, so evaluating it changes nothing: the
picture is the one per-pixel evaluation draws. A finished pixel's transmittance is set aside and
its working transmittance set to 0, so later Gaussians add nothing to it; blocks without
unfinished pixels are skipped, and a tile stops when all its pixels are finished.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.extending import intrinsic

from realtime.camera import Camera
from realtime.render.base import RenderResult, check_inputs
from realtime.render.constants import ALPHA_THRESHOLD, FASTMATH, MAX_ALPHA, MIN_TRANSMITTANCE, TILE_SIZE
from realtime.render.project import Projected, project
from realtime.render.tiles import sort_and_bin
from realtime.render.workers import INLINE, Workers, default_threads

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_HALF = np.float32(0.5)
_FOOTPRINT_MARGIN = 0.01  # pixels of slack on every footprint extent, far above float32 rounding

BLOCK = 4  # pixels per side of a block, the unit composited at once
BLOCKS = TILE_SIZE // BLOCK  # blocks per tile side
LANES = BLOCK * BLOCK  # pixels per block

# one packed record per Gaussian, the values a tile reads: columns of `pack_splats`' output
U, V, CONIC_A, CONIC_B, CONIC_C, OPACITY, RED, GREEN, BLUE, REACH_X, REACH_Y = range(11)
SPLAT_FIELDS = 12  # 11 used, padded to 48 bytes


# ---------------------------------------------------------------- exp(-s), vectorizable

@intrinsic
def _float32_from_bits(typingctx, bits):
    """The float32 whose bit pattern is the int32 `bits`."""
    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], ir.FloatType())
    return types.float32(types.int32), codegen


_LOG2E = np.float32(1.4426950408889634)
_LN2_HI = np.float32(0.693359375)  # ln 2 in two parts (Cody and Waite): the high part is exact in 9 bits
_LN2_LO = np.float32(-2.12194440e-4)
# Cephes' expf polynomial for (exp(r) - 1 - r) / r^2 on |r| <= ln(2) / 2
_EXP_POLY = tuple(np.float32(c) for c in (1.9875691500e-4, 1.3981999507e-3, 8.3334519073e-3, 4.1665795894e-2,
                                          1.6666665459e-1, 5.0000001201e-1))
_EXP_MAX_S = np.float32(87.0)  # exp(-87) is still a normal float32


@njit(cache=True, fastmath={"contract"})
def exp_neg(s):
    """exp(-s) for a float32 s >= -87 (an s above 87 gives exp(-87)), within about one float32 ulp, as NumPy's exp
    would give it: -s = k ln 2 + r with |r| <= ln(2) / 2, exp(-s) = 2^k exp(r), exp(r) from Cephes' polynomial and
    2^k built from its bits. Plain arithmetic without calls, so that a loop calling it vectorizes. Compiled without
    reassociation (inlined, it keeps its own flags), which would fold the two parts of ln 2 back into one."""
    x = -min(s, _EXP_MAX_S)
    k = np.floor(x * _LOG2E + _HALF)
    r = x - k * _LN2_HI - k * _LN2_LO
    p = _EXP_POLY[0]
    p = p * r + _EXP_POLY[1]
    p = p * r + _EXP_POLY[2]
    p = p * r + _EXP_POLY[3]
    p = p * r + _EXP_POLY[4]
    p = p * r + _EXP_POLY[5]
    return (p * r * r + r + _F1) * _float32_from_bits((np.int32(k) + np.int32(127)) << np.int32(23))


# ---------------------------------------------------------------- per-Gaussian records

def pack_splats(projected: Projected) -> np.ndarray:
    """(N, SPLAT_FIELDS) float32: per Gaussian, its mean (U, V), conic, opacity, colour and the half extents of its
    footprint (REACH_X, REACH_Y: how far from the mean, in pixels, opacity exp(-σ) >= 1/255 can hold, plus a
    margin; -1 for a Gaussian that cannot reach 1/255 anywhere), so that a tile reads one record per Gaussian.
    On the calling thread: it costs less than handing it to threads."""
    n = projected.opacities.shape[0]
    out = np.zeros((n, SPLAT_FIELDS), np.float32)
    _pack(projected.means2d, projected.conics, projected.opacities, projected.colors, projected.radii, out)
    return out


@njit(nogil=True, cache=True)
def _pack(means2d, conics, opacities, colors, radii, out):
    """The records of `pack_splats` into `out` (culled Gaussians, radius 0, are never drawn and stay zero).

    The footprint {σ <= L}, L = ln(255 opacity), is an ellipse; its half extents are sqrt(2 L Σ_xx) and
    sqrt(2 L Σ_yy) with Σ = conic^-1, computed in float64."""
    for g in range(out.shape[0]):
        if radii[g, 0] <= 0 or radii[g, 1] <= 0:
            continue
        a, b, c = np.float64(conics[g, 0]), np.float64(conics[g, 1]), np.float64(conics[g, 2])
        level = math.log(np.float64(opacities[g]) / np.float64(ALPHA_THRESHOLD))
        det = a * c - b * b
        reach_x = reach_y = -1.0
        if level > 0.0 and det > 0.0 and a > 0.0 and c > 0.0:
            reach_x = math.sqrt(2.0 * level * c / det) + _FOOTPRINT_MARGIN
            reach_y = math.sqrt(2.0 * level * a / det) + _FOOTPRINT_MARGIN
        out[g, U], out[g, V] = means2d[g, 0], means2d[g, 1]
        out[g, CONIC_A], out[g, CONIC_B], out[g, CONIC_C] = conics[g, 0], conics[g, 1], conics[g, 2]
        out[g, OPACITY] = opacities[g]
        out[g, RED], out[g, GREEN], out[g, BLUE] = colors[g, 0], colors[g, 1], colors[g, 2]
        out[g, REACH_X], out[g, REACH_Y] = reach_x, reach_y


# ---------------------------------------------------------------- compositing

def rasterize(projected: Projected, offsets: np.ndarray, ids: np.ndarray, width: int, height: int,
              background: np.ndarray, workers: Workers = INLINE) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gaussians binned by `sort_and_bin`, tiles shared among `workers`. background: (3,) float32.
    Returns image (H, W, 3) clamped to [0, 1] and alpha (H, W), both float32."""
    splats = pack_splats(projected)
    image = np.empty((height, width, 3), np.float32)
    alpha = np.empty((height, width), np.float32)
    starts = _share_tiles(offsets, np.int64(workers.parts))
    jobs = [(starts[p], starts[p + 1], offsets, ids, splats, np.int64(width), np.int64(height), background, image,
             alpha) for p in range(workers.parts) if starts[p + 1] > starts[p]]
    workers.run(_draw_tiles, jobs)
    return image, alpha


@njit(nogil=True, cache=True)
def _share_tiles(offsets, n_parts):
    """(n_parts + 1,) int64 starts: tiles (row-major) cut into `n_parts` runs of about equal cost (the tile's entries
    plus a fixed share for its pixels); part p is tiles starts[p]..starts[p + 1] - 1. A run is a band of the image,
    so a thread drawing it reads the records of neighbouring Gaussians, not of Gaussians from all over the image."""
    n_tiles = offsets.shape[0] - 1
    total = offsets[n_tiles] - offsets[0] + 32 * n_tiles
    starts = np.full(n_parts + 1, n_tiles, np.int64)
    starts[0] = 0
    cost = 0
    p = 1
    for t in range(n_tiles):
        cost += offsets[t + 1] - offsets[t] + 32
        while p < n_parts and cost * n_parts >= p * total:
            starts[p] = t + 1
            p += 1
    return starts


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _draw_tiles(first, stop, offsets, ids, splats, width, height, background, image, alpha_out):
    """Composite tiles first..stop - 1 into `image` (H, W, 3) and `alpha_out` (H, W)."""
    tiles_x = (width + TILE_SIZE - 1) // TILE_SIZE
    for tile in range(first, stop):
        _draw_tile(tile, offsets, ids, splats, width, height, tiles_x, background, image, alpha_out)


@njit(cache=True, fastmath=FASTMATH)
def _draw_tile(tile, offsets, ids, splats, width, height, tiles_x, background, image, alpha_out):
    """Composite one tile's Gaussians into its pixels of `image` (H, W, 3) and `alpha_out` (H, W).

    state[:, b, j] is pixel j (row-major) of block b (row-major) of the tile: working transmittance (0 once the pixel
    is finished, and for pixels outside the image), the transmittance it finished with, and colour r, g, b."""
    px0 = (tile % tiles_x) * TILE_SIZE
    py0 = (tile // tiles_x) * TILE_SIZE
    tw = min(TILE_SIZE, width - px0)
    th = min(TILE_SIZE, height - py0)
    state = np.zeros((5, BLOCKS * BLOCKS, LANES), np.float32)
    block_live = np.zeros(BLOCKS * BLOCKS, np.int64)  # unfinished pixels per block
    for iy in range(th):
        for ix in range(tw):
            b = (iy // BLOCK) * BLOCKS + ix // BLOCK
            state[0, b, (iy % BLOCK) * BLOCK + ix % BLOCK] = _F1
            block_live[b] += 1
    n_live = th * tw
    for k in range(offsets[tile], offsets[tile + 1]):
        g = ids[k]
        reach_x, reach_y = splats[g, REACH_X], splats[g, REACH_Y]
        if reach_x < _F0:
            continue
        u, v = splats[g, U], splats[g, V]
        row0 = max(0, int(np.floor(v - _HALF - reach_y)) - py0)
        row1 = min(th - 1, int(np.ceil(v - _HALF + reach_y)) - py0)
        col0 = max(0, int(np.floor(u - _HALF - reach_x)) - px0)
        col1 = min(tw - 1, int(np.ceil(u - _HALF + reach_x)) - px0)
        if row1 < row0 or col1 < col0:
            continue
        for by in range(row0 // BLOCK, row1 // BLOCK + 1):
            for bx in range(col0 // BLOCK, col1 // BLOCK + 1):
                b = by * BLOCKS + bx
                if block_live[b] == 0:
                    continue
                if _composite_block(state, b, px0 + bx * BLOCK, py0 + by * BLOCK, splats, g):
                    live = _live_pixels(state, b)
                    n_live -= block_live[b] - live
                    block_live[b] = live
        if n_live == 0:
            break
    for iy in range(th):
        for ix in range(tw):
            b = (iy // BLOCK) * BLOCKS + ix // BLOCK
            j = (iy % BLOCK) * BLOCK + ix % BLOCK
            t = state[0, b, j] + state[1, b, j]
            for c in range(3):
                image[py0 + iy, px0 + ix, c] = min(_F1, max(_F0, state[2 + c, b, j] + t * background[c]))
            alpha_out[py0 + iy, px0 + ix] = _F1 - t


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _composite_block(state, b, x0, y0, splats, g):
    """Composite Gaussian g (its record in `splats`, see `pack_splats`) over the 16 pixels of block b of `state`
    (see `_draw_tile`), whose top-left pixel is (x0, y0) in the image; returns whether it finished any of them. Every
    pixel is evaluated without branches (a finished one has transmittance 0, so nothing is added to it), which is
    what lets the loop vectorize; a flag costs less there than a count."""
    u, v = splats[g, U], splats[g, V]
    ca, cb, cc = splats[g, CONIC_A], splats[g, CONIC_B], splats[g, CONIC_C]
    opacity = splats[g, OPACITY]
    red, green, blue = splats[g, RED], splats[g, GREEN], splats[g, BLUE]
    finished = False
    for j in range(LANES):
        dx = u - (np.float32(x0 + j % BLOCK) + _HALF)
        dy = v - (np.float32(y0 + j // BLOCK) + _HALF)
        sigma = _HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
        alpha = min(MAX_ALPHA, opacity * exp_neg(sigma))
        t = state[0, b, j]
        next_t = t * (_F1 - alpha)
        hit = sigma >= _F0 and alpha >= ALPHA_THRESHOLD
        stop = hit and next_t <= MIN_TRANSMITTANCE
        w = alpha * t if hit and not stop else _F0
        state[2, b, j] += red * w
        state[3, b, j] += green * w
        state[4, b, j] += blue * w
        state[1, b, j] += t if stop else _F0
        state[0, b, j] = _F0 if stop else (next_t if hit else t)
        finished |= stop and t > _F0
    return finished


@njit(cache=True, inline="always")
def _live_pixels(state, b):
    """How many pixels of block b of `state` (see `_draw_tile`) are unfinished."""
    live = 0
    for j in range(LANES):
        live += state[0, b, j] > _F0
    return live


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
