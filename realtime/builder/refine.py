"""Photometric refinement of a built avatar against its portrait, with the layout held fixed.

The binding and the number of Gaussians never change (no densification or pruning, as
SpatialAvatar-0 refines per subject); what moves is each Gaussian's colour, opacity, local
offset, scale and rotation, by Adam on

    L1(render, portrait) over the loss mask
    + spike:  relu(log(max scale / min scale) - log(max_ratio))^2     (no needles)
    + growth: relu(log_scale - initial log_scale - log(max_growth))^2  (no blobs)
    + anchor: |local offset moved|^2                                    (stay on the triangle)

The render is drawn at the portrait's view with the mesh posed as the portrait shows it, by the render
package's differentiable renderer for the backend (`get_renderer(backend, differentiable=True)`): gsplat on
a CUDA device, the torch splatter on the CPU (at the resolution of the target given, low there).

Only the Gaussians the portrait sees are drawn, and of those only the ones it sees well (their triangle
faces the camera at more than `min_facing`) change: one photo cannot tell what an edge-on Gaussian
looks like from the front, and fitting it to the few pixels it covers paints streaks that show when
the head turns.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import torch

from realtime.avatar.binding import triangle_frames
from realtime.avatar.gaussians import Avatar
from realtime.builder.raster import project_points, zbuffer
from realtime.camera import Camera
from realtime.deform.reference import deform
from realtime.geometry import matrix_to_quaternion, quaternion_multiply, quaternion_normalize
from realtime.render import Renderer, get_renderer
from realtime.rig.model import RigParams


@dataclass(frozen=True)
class RefineSettings:
    """Learning rates (Adam) per attribute and the regulariser weights and limits."""

    lr_color: float = 0.05        # SH DC units (colour = 0.28 dc + 0.5)
    lr_opacity: float = 0.05      # logits
    lr_means: float = 0.01        # triangle units
    lr_scales: float = 0.01       # log units
    lr_quats: float = 0.01
    max_ratio: float = 10.0       # largest over smallest scale of one Gaussian
    max_growth: float = 2.0       # scale over its initial value
    spike_weight: float = 1.0
    growth_weight: float = 1.0
    anchor_weight: float = 0.01
    min_facing: float = 0.3       # Gaussians seen more edge-on than this (cosine) are drawn but not refined


@dataclass
class RefineTarget:
    """What the avatar should look like: image (H, W, 3) float32 in [0, 1] seen by `camera` (H x W),
    mask (H, W) float32 loss weight (1 inside the region to match, 0 to ignore), background (3,)."""

    image: np.ndarray
    mask: np.ndarray
    camera: Camera
    background: np.ndarray


def gaussian_visibility(avatar: Avatar, params: RigParams, camera: Camera, depth_margin: float = 0.01,
                        pixel_margin: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """How the camera sees each Gaussian of the avatar posed by `params`.

    Returns visible (N,) bool: the centre is in (or within `pixel_margin` pixels of) the view and not more
    than `depth_margin` metres behind the mesh's z-buffer there (the others cannot show through the opaque
    surface in front of them); and facing (N,): the cosine between the Gaussian's triangle normal and the
    direction to the camera (near 0: seen edge-on).
    """
    posed = deform(avatar, params, dtype=np.float64)
    depth, _ = zbuffer(posed.vertices, avatar.rig.faces, camera)
    means = posed.gaussians.means
    uv, z = project_points(means, camera)
    h, w = depth.shape
    near = (uv[:, 0] > -pixel_margin) & (uv[:, 0] < w + pixel_margin) & (uv[:, 1] > -pixel_margin) & \
        (uv[:, 1] < h + pixel_margin) & (z > 0)
    px = np.clip(np.floor(uv[:, 0]).astype(np.int64), 0, w - 1)
    py = np.clip(np.floor(uv[:, 1]).astype(np.int64), 0, h - 1)
    normals = triangle_frames(posed.vertices, avatar.rig.faces).rotations[avatar.binding][:, :, 1]
    to_camera = -camera.viewmat[:3, :3].T @ camera.viewmat[:3, 3] - means
    facing = np.sum(normals * to_camera, axis=1) / np.linalg.norm(to_camera, axis=1)
    return near & (z <= depth[py, px] + depth_margin), facing


class _BoundGaussians(torch.nn.Module):
    """Trainable per-Gaussian attributes of a subset of the avatar's Gaussians on fixed triangle frames
    of the mesh posed by `params`."""

    def __init__(self, avatar: Avatar, params: RigParams, subset: np.ndarray, frozen: np.ndarray,
                 device: torch.device) -> None:
        super().__init__()
        frames = triangle_frames(deform(avatar, params, dtype=np.float64).vertices, avatar.rig.faces)
        b = avatar.binding[subset]

        def const(a: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(np.ascontiguousarray(a), dtype=torch.float32, device=device)

        self.rot, self.k, self.center = const(frames.rotations[b]), const(frames.scales[b]), const(frames.centers[b])
        self.frame_quat = const(matrix_to_quaternion(frames.rotations[b]))
        self.local_means = torch.nn.Parameter(const(avatar.local_means[subset]))
        self.local_quats = torch.nn.Parameter(const(avatar.local_quats[subset]))
        self.log_scales = torch.nn.Parameter(const(avatar.log_scales[subset]))
        self.opacity_logits = torch.nn.Parameter(const(avatar.opacity_logits[subset]))
        self.sh_dc = torch.nn.Parameter(const(avatar.sh[subset, 0]))
        self.initial_means = const(avatar.local_means[subset])
        self.initial_log_scales = const(avatar.log_scales[subset])
        keep = torch.as_tensor(~frozen, device=device)
        for p in self.parameters():  # frozen Gaussians are drawn but never move (zero gradient, zero Adam step)
            p.register_hook(lambda g, keep=keep: g * keep.view(-1, *([1] * (g.dim() - 1))))

    def world(self) -> tuple[torch.Tensor, ...]:
        """World means (N, 3), unit quats (N, 4), scales (N, 3), opacities (N,), SH DC (N, 3)."""
        means = self.k[:, None] * torch.einsum("nab,nb->na", self.rot, self.local_means) + self.center
        quats = quaternion_normalize(quaternion_multiply(self.frame_quat, quaternion_normalize(self.local_quats)))
        scales = torch.exp(self.log_scales) * self.k[:, None]
        return means, quats, scales, torch.sigmoid(self.opacity_logits), self.sh_dc

    def regularizer(self, settings: RefineSettings) -> torch.Tensor:
        ls = self.log_scales
        spike = torch.relu(ls.max(1).values - ls.min(1).values - np.log(settings.max_ratio)) ** 2
        growth = torch.relu(ls - self.initial_log_scales - np.log(settings.max_growth)) ** 2
        anchor = ((self.local_means - self.initial_means) ** 2).sum(1)
        return (settings.spike_weight * spike.mean() + settings.growth_weight * growth.sum(1).mean()
                + settings.anchor_weight * anchor.mean())


def _draw(renderer: Renderer, model: _BoundGaussians, target: RefineTarget) -> torch.Tensor:
    """The differentiable render (H, W, 3) of the model at the target's view."""
    means, quats, scales, opacities, dc = model.world()
    return renderer.render(means, quats, scales, opacities, dc[:, None, :], target.camera,
                           background=target.background).image


def refine(avatar: Avatar, target: RefineTarget, steps: int, backend: str = "auto", params: RigParams | None = None,
           settings: RefineSettings = RefineSettings()) -> tuple[Avatar, list[float]]:
    """Refine `avatar` (degree-0 SH) against `target` for `steps` Adam steps.

    params: the pose of the mesh the target shows (default: the avatar's neutral parameters).
    backend: 'auto' (gsplat on CUDA when usable, else the torch CPU splatting), 'cpu' or 'cuda'.
    Returns the refined avatar (same rig, binding, camera and count) and the photometric loss per step.
    """
    if avatar.sh_degree != 0:
        raise ValueError(f"refinement takes degree-0 SH avatars, got degree {avatar.sh_degree}")
    if steps < 0:
        raise ValueError(f"refine steps must be >= 0, got {steps}")
    h, w = target.camera.height, target.camera.width
    if target.image.shape != (h, w, 3) or target.mask.shape != (h, w):
        raise ValueError(f"target image {target.image.shape} and mask {target.mask.shape} must match the camera "
                         f"({h}, {w})")
    if steps == 0:
        return avatar, []
    renderer = get_renderer(backend, differentiable=True)
    device = torch.device(renderer.device)
    if params is None:
        params = RigParams(shape=avatar.shape, expr=np.zeros(avatar.rig.n_expr, np.float32))
    visible, facing = gaussian_visibility(avatar, params, target.camera)
    subset = np.flatnonzero(visible)
    model = _BoundGaussians(avatar, params, subset, facing[subset] < settings.min_facing, device)
    image = renderer.as_input(target.image)
    mask = renderer.as_input(target.mask)[..., None]
    norm = 3 * mask.sum().clamp_min(1.0)
    optimizer = torch.optim.Adam([
        {"params": [model.sh_dc], "lr": settings.lr_color},
        {"params": [model.opacity_logits], "lr": settings.lr_opacity},
        {"params": [model.local_means], "lr": settings.lr_means},
        {"params": [model.log_scales], "lr": settings.lr_scales},
        {"params": [model.local_quats], "lr": settings.lr_quats},
    ], eps=1e-15)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad(set_to_none=True)
        rendered = _draw(renderer, model, target)
        photometric = (mask * (rendered - image).abs()).sum() / norm
        (photometric + model.regularizer(settings)).backward()
        optimizer.step()
        losses.append(float(photometric.detach()))

    def out(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().numpy().astype(np.float32)

    values = {name: getattr(avatar, name).copy() for name in
              ("local_means", "local_quats", "log_scales", "opacity_logits", "sh")}
    for name in ("local_means", "local_quats", "log_scales", "opacity_logits"):
        values[name][subset] = out(getattr(model, name))
    values["sh"][subset, 0] = out(model.sh_dc)
    return replace(avatar, **values), losses
