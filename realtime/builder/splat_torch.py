"""Differentiable Gaussian splatting on the CPU, for refinement on machines without a GPU.

The projection (3D Gaussians to screen-space ellipses) is plain torch, so autograd differentiates
it; the compositing is a torch.autograd.Function whose forward and backward passes are numba tile
kernels, like gsplat's CUDA ones. Both follow gsplat 1.5.3's classic 3DGS mode as
`realtime.render` draws it: EWA projection with the clamped Jacobian, 0.3 px^2 dilation, 16 px tiles,
pixel centres at (x + 0.5, y + 0.5), and per pixel, front to back,

    σ = 0.5 (a dx^2 + c dy^2) + b dx dy,  dx = u - x_c            conic (a, b, c)
    α = min(0.999, o exp(-σ)), skipped when σ < 0 or α < 1/255
    stop before a Gaussian that would take T to 1e-4 or less; else C += c α T, T *= 1 - α
    image = C + T background

The backward pass walks each pixel's contributors back to front, recovering T_i = T_(i+1) / (1 - α_i):

    dL/dc_i = α_i T_i v,   dL/dα_i = v · (c_i T_i - (S_i + T_final background) / (1 - α_i))

with v = dL/dimage at the pixel and S_i the colour the Gaussians behind i added. Gradients of
clamped alphas (0.999) stop at α. Tiles are dealt to a fixed number of gradient buffers, summed at the
end (no races, and the same sums whatever the number of threads).
"""

from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange

from realtime.camera import Camera
from realtime.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FOV_MARGIN, MAX_ALPHA, MAX_EXTENT_SIGMAS, MIN_TRANSMITTANCE, NEAR_PLANE, TILE_SIZE)
from realtime.render.cpu import sort_and_bin
from realtime.render.project import Projected

_SH_C0 = 0.5 / math.sqrt(math.pi)  # the degree-0 SH basis constant
_CHUNKS = 8  # gradient buffers of the backward pass: a fixed count keeps sums identical on any number of cores


def quaternion_to_matrix(quats: torch.Tensor) -> torch.Tensor:
    """(N, 4) quaternions (w, x, y, z), any norm, to (N, 3, 3) rotation matrices."""
    w, x, y, z = torch.nn.functional.normalize(quats, dim=-1).unbind(-1)
    rows = [1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]
    return torch.stack(rows, -1).reshape(-1, 3, 3)


def project(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, camera: Camera
            ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Screen-space Gaussians: means2d (N, 2) pixels, conics (N, 3) (a, b, c) of Σ_2d^-1, depths (N,).

    means: (N, 3), quats: (N, 4), scales: (N, 3) linear, world space; float tensors. Gaussians nearer than
    the near plane get their depth clamped here; `rasterize` culls them.
    """
    dtype = means.dtype
    view = torch.as_tensor(camera.viewmat, dtype=dtype)
    fx, fy, cx, cy = (float(camera.K[0, 0]), float(camera.K[1, 1]), float(camera.K[0, 2]), float(camera.K[1, 2]))
    cam = means @ view[:3, :3].T + view[:3, 3]
    x, y, z_raw = cam.unbind(-1)
    z = z_raw.clamp_min(NEAR_PLANE)
    w, h = camera.width, camera.height
    lim_x = ((w - cx) / fx + FOV_MARGIN * 0.5 * w / fx, cx / fx + FOV_MARGIN * 0.5 * w / fx)
    lim_y = ((h - cy) / fy + FOV_MARGIN * 0.5 * h / fy, cy / fy + FOV_MARGIN * 0.5 * h / fy)
    tx = z * (x / z).clamp(-lim_x[1], lim_x[0])
    ty = z * (y / z).clamp(-lim_y[1], lim_y[0])
    zeros = torch.zeros_like(z)
    jac = torch.stack([torch.stack([fx / z, zeros, -fx * tx / z ** 2], -1),
                       torch.stack([zeros, fy / z, -fy * ty / z ** 2], -1)], -2)  # (N, 2, 3)
    m = view[:3, :3] @ quaternion_to_matrix(quats) * scales[:, None, :]  # V R S
    a = jac @ m
    cov = a @ a.transpose(1, 2)
    c00, c01, c11 = cov[:, 0, 0] + EPS2D, cov[:, 0, 1], cov[:, 1, 1] + EPS2D
    det = c00 * c11 - c01 * c01
    conics = torch.stack([c11 / det, -c01 / det, c00 / det], -1)
    means2d = torch.stack([fx * x / z + cx, fy * y / z + cy], -1)
    return means2d, conics, z_raw


def _radii(means2d: np.ndarray, conics: np.ndarray, depths: np.ndarray, opacities: np.ndarray, width: int,
           height: int) -> np.ndarray:
    """(N, 2) int32 pixel half-sizes of the boxes gsplat bins, (0, 0) for culled Gaussians."""
    a, b, c = conics[:, 0].astype(np.float64), conics[:, 1].astype(np.float64), conics[:, 2].astype(np.float64)
    det = a * c - b * b
    ok = (depths >= NEAR_PLANE) & (det > 0) & (opacities >= ALPHA_THRESHOLD) & np.all(np.isfinite(means2d), 1)
    safe_det = np.where(ok, det, 1.0)
    extent = np.minimum(MAX_EXTENT_SIGMAS, np.sqrt(2 * np.log(np.maximum(opacities, ALPHA_THRESHOLD)
                                                               / ALPHA_THRESHOLD)))
    rx = np.ceil(extent * np.sqrt(np.maximum(c / safe_det, 0)))
    ry = np.ceil(extent * np.sqrt(np.maximum(a / safe_det, 0)))
    u, v = means2d[:, 0], means2d[:, 1]
    ok &= (u + rx > 0) & (u - rx < width) & (v + ry > 0) & (v - ry < height) & ((rx > 0) | (ry > 0))
    return np.where(ok[:, None], np.stack([rx, ry], 1), 0).astype(np.int32)


@njit(parallel=True, cache=True)
def _forward(offsets, ids, means2d, conics, opacities, colors, background, width, height, tile_size):
    tiles_x = (width + tile_size - 1) // tile_size
    n_tiles = offsets.shape[0] - 1
    image = np.empty((height, width, 3), means2d.dtype)
    final_t = np.empty((height, width), np.float64)
    last = np.empty((height, width), np.int64)
    for tile in prange(n_tiles):
        px0 = (tile % tiles_x) * tile_size
        py0 = (tile // tiles_x) * tile_size
        for py in range(py0, min(py0 + tile_size, height)):
            for px in range(px0, min(px0 + tile_size, width)):
                t = 1.0
                r = 0.0
                gr = 0.0
                bl = 0.0
                end = offsets[tile]
                for k in range(offsets[tile], offsets[tile + 1]):
                    g = ids[k]
                    dx = means2d[g, 0] - (px + 0.5)
                    dy = means2d[g, 1] - (py + 0.5)
                    sigma = 0.5 * (conics[g, 0] * dx * dx + conics[g, 2] * dy * dy) + conics[g, 1] * dx * dy
                    alpha = min(MAX_ALPHA, opacities[g] * math.exp(-sigma))
                    if sigma < 0.0 or alpha < ALPHA_THRESHOLD:
                        continue
                    next_t = t * (1.0 - alpha)
                    if next_t <= MIN_TRANSMITTANCE:
                        break
                    w = alpha * t
                    r += colors[g, 0] * w
                    gr += colors[g, 1] * w
                    bl += colors[g, 2] * w
                    t = next_t
                    end = k + 1
                image[py, px, 0] = r + t * background[0]
                image[py, px, 1] = gr + t * background[1]
                image[py, px, 2] = bl + t * background[2]
                final_t[py, px] = t
                last[py, px] = end
    return image, final_t, last


@njit(parallel=True, cache=True)
def _backward(offsets, ids, means2d, conics, opacities, colors, background, final_t, last, grad_image, tile_size,
              n_chunks):
    height, width = final_t.shape
    n = means2d.shape[0]
    tiles_x = (width + tile_size - 1) // tile_size
    n_tiles = offsets.shape[0] - 1
    g_means = np.zeros((n_chunks, n, 2))
    g_conics = np.zeros((n_chunks, n, 3))
    g_opac = np.zeros((n_chunks, n))
    g_colors = np.zeros((n_chunks, n, 3))
    for chunk in prange(n_chunks):
        for tile in range(chunk, n_tiles, n_chunks):
            px0 = (tile % tiles_x) * tile_size
            py0 = (tile // tiles_x) * tile_size
            for py in range(py0, min(py0 + tile_size, height)):
                for px in range(px0, min(px0 + tile_size, width)):
                    t_end = final_t[py, px]
                    t = t_end
                    v0, v1, v2 = grad_image[py, px, 0], grad_image[py, px, 1], grad_image[py, px, 2]
                    behind = v0 * background[0] + v1 * background[1] + v2 * background[2]
                    behind *= t_end  # v · (S + T_final background), S (colour from behind) starts at 0
                    for k in range(last[py, px] - 1, offsets[tile] - 1, -1):
                        g = ids[k]
                        dx = means2d[g, 0] - (px + 0.5)
                        dy = means2d[g, 1] - (py + 0.5)
                        a, b, c = conics[g, 0], conics[g, 1], conics[g, 2]
                        sigma = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
                        gauss = math.exp(-sigma)
                        raw = opacities[g] * gauss
                        alpha = min(MAX_ALPHA, raw)
                        if sigma < 0.0 or alpha < ALPHA_THRESHOLD:
                            continue
                        t = t / (1.0 - alpha)
                        w = alpha * t
                        g_colors[chunk, g, 0] += w * v0
                        g_colors[chunk, g, 1] += w * v1
                        g_colors[chunk, g, 2] += w * v2
                        vc = v0 * colors[g, 0] + v1 * colors[g, 1] + v2 * colors[g, 2]
                        d_alpha = vc * t - behind / (1.0 - alpha)
                        behind += vc * w
                        if raw < MAX_ALPHA:
                            g_opac[chunk, g] += d_alpha * gauss
                            d_sigma = -d_alpha * alpha
                            g_conics[chunk, g, 0] += d_sigma * 0.5 * dx * dx
                            g_conics[chunk, g, 1] += d_sigma * dx * dy
                            g_conics[chunk, g, 2] += d_sigma * 0.5 * dy * dy
                            g_means[chunk, g, 0] += d_sigma * (a * dx + b * dy)
                            g_means[chunk, g, 1] += d_sigma * (b * dx + c * dy)
    return g_means.sum(0), g_conics.sum(0), g_opac.sum(0), g_colors.sum(0)


class _Composite(torch.autograd.Function):
    """Front-to-back compositing of projected Gaussians; numba kernels both ways."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, depths, background, width, height):
        dtype = means2d.dtype
        arrays = [np.ascontiguousarray(t.detach().cpu().numpy()) for t in (means2d, conics, opacities, colors)]
        depth = depths.detach().cpu().numpy()
        bg = np.ascontiguousarray(background.detach().cpu().numpy().astype(arrays[0].dtype))
        radii = _radii(arrays[0], arrays[1], depth, arrays[2], width, height)
        projected = Projected(means2d=arrays[0].astype(np.float32), conics=arrays[1], depths=depth.astype(np.float32),
                              radii=radii, opacities=arrays[2], colors=arrays[3])
        offsets, ids = sort_and_bin(projected, width, height)
        image, final_t, last = _forward(offsets, ids, *arrays, bg, np.int64(width), np.int64(height),
                                        np.int64(TILE_SIZE))
        ctx.saved = (offsets, ids, arrays, bg, final_t, last)
        ctx.dtype = dtype
        return torch.from_numpy(image).to(dtype)

    @staticmethod
    def backward(ctx, grad_image):
        offsets, ids, arrays, bg, final_t, last = ctx.saved
        grad = np.ascontiguousarray(grad_image.detach().cpu().numpy().astype(np.float64))
        g_means, g_conics, g_opac, g_colors = _backward(offsets, ids, *arrays, bg, final_t, last, grad,
                                                        np.int64(TILE_SIZE), np.int64(_CHUNKS))
        out = [torch.from_numpy(g).to(ctx.dtype) for g in (g_means, g_conics, g_opac, g_colors)]
        return (*out, None, None, None, None)


def rasterize(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
              colors: torch.Tensor, camera: Camera, background: torch.Tensor) -> torch.Tensor:
    """Differentiable render of N Gaussians: image (H, W, 3), not clamped.

    means: (N, 3), quats: (N, 4), scales: (N, 3) linear, opacities: (N,) in [0, 1], colors: (N, 3) RGB
    (already evaluated, e.g. `sh_dc_to_rgb`), background: (3,); CPU float32 or float64 tensors.
    """
    means2d, conics, depths = project(means, quats, scales, camera)
    return _Composite.apply(means2d, conics, opacities, colors, depths, background, camera.width, camera.height)


def sh_dc_to_rgb(sh_dc: torch.Tensor) -> torch.Tensor:
    """(N, 3) degree-0 SH coefficients to RGB as gsplat evaluates them (C0 dc + 0.5, clamped at 0)."""
    return (_SH_C0 * sh_dc + 0.5).clamp_min(0)


def rgb_to_sh_dc(rgb):
    """Inverse of `sh_dc_to_rgb` for colours >= 0 (NumPy arrays or tensors)."""
    return (rgb - 0.5) / _SH_C0
