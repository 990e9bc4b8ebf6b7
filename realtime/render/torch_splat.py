"""The differentiable splatter: torch tensors with autograd in, the image out, for training (the builder's
refinement) on machines without a GPU.

Autograd differentiates the projection (3D Gaussians to screen-space means and conics, `project_torch`: the
EWA projection of `project.py` in plain torch) and the degree-0 SH colour; the compositing is a
torch.autograd.Function whose forward and backward passes are numba tile kernels, like gsplat's CUDA ones.
What is not differentiated, which Gaussians each tile draws and in which order (culling, boxes, depth order),
comes from the CPU renderer's own `project` and `sort_and_bin` on the detached values, so both renderers draw
the same Gaussians in the same order. The projection and the compositing follow gsplat 1.5.3's classic
3DGS mode: EWA projection with the clamped Jacobian, 0.3 px^2 dilation, 16 px tiles, pixel centres at
(x + 0.5, y + 0.5), and per pixel, front to back,

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
from typing import Any

import numpy as np
import torch
from numba import njit, prange

from realtime.camera import Camera
from realtime.geometry import quaternion_to_matrix
from realtime.render.base import RenderError, RenderResult, check_inputs
from realtime.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FOV_MARGIN, MAX_ALPHA, MIN_TRANSMITTANCE, NEAR_PLANE, TILE_SIZE)
from realtime.render.project import project
from realtime.render.sh import SH_C0
from realtime.render.tiles import sort_and_bin

_CHUNKS = 8  # gradient buffers of the backward pass: a fixed count keeps sums identical on any number of cores


def project_torch(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, camera: Camera
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """Screen-space Gaussians, differentiable: means2d (N, 2) pixels and conics (N, 3) (a, b, c) of Σ_2d^-1.

    means: (N, 3), quats: (N, 4) (w, x, y, z) any norm, scales: (N, 3) linear, world space; float tensors of one
    dtype. Gaussians nearer than the near plane get their depth clamped here (the tile lists leave them out).
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
    return means2d, conics


def _tile_lists(means: torch.Tensor, quats: torch.Tensor, scales: torch.Tensor, opacities: torch.Tensor,
                camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Which Gaussians each tile draws, nearest first (offsets, ids as `sort_and_bin` gives them), from the CPU
    renderer's projection of the detached values in float32: the culling, boxes and depth order of the picture
    `realtime.render` draws. Tensors as `project_torch` takes them, opacities (N,)."""
    def f32(t: torch.Tensor) -> np.ndarray:
        return np.ascontiguousarray(t.detach().numpy(), dtype=np.float32)

    no_colour = np.zeros((means.shape[0], 1, 3), np.float32)  # the colours are not needed here
    screen = project(f32(means), f32(quats), f32(scales), f32(opacities), no_colour,
                     np.ascontiguousarray(camera.viewmat, dtype=np.float32),
                     np.ascontiguousarray(camera.K, dtype=np.float32), camera.width, camera.height, sh_degree=0,
                     antialiased=False)
    return sort_and_bin(screen, camera.width, camera.height)


def _dc_colors(sh_dc: torch.Tensor) -> torch.Tensor:
    """(N, 3) degree-0 SH coefficients to RGB as gsplat evaluates them (C0 dc + 0.5, clamped at 0)."""
    return (SH_C0 * sh_dc + 0.5).clamp_min(0)


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
    """Front-to-back compositing of projected Gaussians over given tile lists; numba kernels both ways."""

    @staticmethod
    def forward(ctx, means2d, conics, opacities, colors, offsets, ids, background, width, height):
        arrays = [np.ascontiguousarray(t.detach().numpy()) for t in (means2d, conics, opacities, colors)]
        bg = background.astype(arrays[0].dtype)
        image, final_t, last = _forward(offsets, ids, *arrays, bg, np.int64(width), np.int64(height),
                                        np.int64(TILE_SIZE))
        ctx.saved = (offsets, ids, arrays, bg, final_t, last)
        ctx.dtype = means2d.dtype
        return torch.from_numpy(image).to(ctx.dtype)

    @staticmethod
    def backward(ctx, grad_image):
        offsets, ids, arrays, bg, final_t, last = ctx.saved
        grad = np.ascontiguousarray(grad_image.detach().numpy().astype(np.float64))
        g_means, g_conics, g_opac, g_colors = _backward(offsets, ids, *arrays, bg, final_t, last, grad,
                                                        np.int64(TILE_SIZE), np.int64(_CHUNKS))
        out = [torch.from_numpy(g).to(ctx.dtype) for g in (g_means, g_conics, g_opac, g_colors)]
        return (*out, None, None, None, None, None)


class TorchSplatter:
    """The differentiable CPU renderer: CPU torch tensors (float32, or float64 for checks) with autograd in, the
    image (H, W, 3) out as a tensor of their dtype on their graph, not clamped. It draws what the refinement
    needs: classic mode (antialiased=False), degree-0 SH colour, no alpha."""

    backend = "cpu"
    device = "cpu"
    differentiable = True

    def as_input(self, value: Any) -> torch.Tensor:
        """A float32 CPU tensor from a NumPy array or a tensor anywhere."""
        return torch.as_tensor(value).to(device="cpu", dtype=torch.float32)

    def render(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
               sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
               with_alpha: bool = False) -> RenderResult:
        """Draw N Gaussians (shapes as `realtime.render.render` takes them; sh may hold higher bands, only the
        DC term is drawn). RenderError for anything but CPU float tensors of one dtype, sh_degree 0 (None
        picks 0 only for K = 1), antialiased=False and with_alpha=False."""
        degree, bg = check_inputs(means, quats, scales, opacities, sh, sh_degree, background)
        if degree != 0 or antialiased or with_alpha:
            raise RenderError(f"the torch splatter draws sh_degree 0, antialiased=False, with_alpha=False; got "
                              f"sh_degree={degree}, antialiased={antialiased}, with_alpha={with_alpha}")
        inputs = (means, quats, scales, opacities, sh)
        kinds = {(t.dtype, t.device.type) if isinstance(t, torch.Tensor) else type(t).__name__ for t in inputs}
        if kinds not in ({(torch.float32, "cpu")}, {(torch.float64, "cpu")}):
            raise RenderError(f"the torch splatter takes CPU float32 or float64 tensors of one dtype, got {kinds}")
        means2d, conics = project_torch(means, quats, scales, camera)
        offsets, ids = _tile_lists(means, quats, scales, opacities, camera)
        image = _Composite.apply(means2d, conics, opacities, _dc_colors(sh[:, 0]), offsets, ids, bg, camera.width,
                                 camera.height)
        return RenderResult(image=image, alpha=None)
