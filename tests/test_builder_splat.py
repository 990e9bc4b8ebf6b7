"""The CPU differentiable splatting: same picture as the renderer, gradients of an independent dense reference."""

import numpy as np
import torch

from realtime.builder.splat_torch import project, rasterize, rgb_to_sh_dc, sh_dc_to_rgb
from realtime.camera import frontal_camera
from realtime.render import render


def _scene(n, seed, spread=0.05, opacity=(0.1, 1.0)):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=spread, size=(n, 3))
    quats = rng.normal(size=(n, 4))
    scales = np.exp(rng.uniform(np.log(0.001), np.log(0.006), size=(n, 3)))
    opacities = rng.uniform(*opacity, size=n)
    colors = rng.uniform(0, 1, size=(n, 3))
    return means, quats, scales, opacities, colors


def test_forward_matches_the_cpu_renderer():
    means, quats, scales, opacities, colors = _scene(3000, 0)
    camera = frontal_camera(np.zeros(3), 0.6, size=96)
    bg = np.array([0.2, 0.3, 0.4])
    sh = rgb_to_sh_dc(colors)[:, None, :]
    expected = render(*(a.astype(np.float32) for a in (means, quats, scales, opacities, sh)), camera,
                      background=bg, backend="cpu").image
    t = [torch.tensor(a, dtype=torch.float32) for a in (means, quats, scales, opacities, sh[:, 0], bg)]
    image = rasterize(t[0], t[1], t[2], t[3], sh_dc_to_rgb(t[4]), camera, t[5]).clamp(0, 1).numpy()
    assert np.abs(image - expected).max() < 1e-4


def _dense_reference(means, quats, scales, opacities, colors, camera, background):
    """Every Gaussian at every pixel in torch (no tiles, no early stop): valid while transmittance stays > 1e-4."""
    means2d, conics, depths = project(means, quats, scales, camera)
    order = torch.argsort(depths.detach())
    m, c, o, col = means2d[order], conics[order], opacities[order], colors[order]
    ys, xs = torch.meshgrid(torch.arange(camera.height, dtype=means.dtype) + 0.5,
                            torch.arange(camera.width, dtype=means.dtype) + 0.5, indexing="ij")
    dx = m[:, 0, None, None] - xs
    dy = m[:, 1, None, None] - ys
    sigma = 0.5 * (c[:, 0, None, None] * dx ** 2 + c[:, 2, None, None] * dy ** 2) + c[:, 1, None, None] * dx * dy
    alpha = torch.clamp(o[:, None, None] * torch.exp(-sigma), max=0.999)
    alpha = torch.where((sigma >= 0) & (alpha >= 1 / 255), alpha, torch.zeros_like(alpha))
    trans = torch.cumprod(torch.cat([torch.ones_like(alpha[:1]), 1 - alpha[:-1]]), 0)
    weight = alpha * trans
    assert float((trans[-1] * (1 - alpha[-1])).detach().min()) > 1e-4  # no early stop anywhere
    image = torch.einsum("nhw,nc->hwc", weight, col)
    return image + (trans[-1] * (1 - alpha[-1]))[..., None] * background


def test_gradients_match_a_dense_autograd_reference():
    means, quats, scales, opacities, colors = _scene(40, 1, spread=0.02, opacity=(0.1, 0.6))
    camera = frontal_camera(np.zeros(3), 0.5, size=24)
    weights = torch.tensor(np.random.default_rng(2).normal(size=(24, 24, 3)))
    background = torch.tensor([0.3, 0.1, 0.6], dtype=torch.float64)
    grads = []
    for draw in (rasterize, _dense_reference):
        params = [torch.tensor(a, dtype=torch.float64, requires_grad=True)
                  for a in (means, quats, scales, opacities, colors)]
        image = draw(*params, camera, background)
        (image * weights).sum().backward()
        grads.append([p.grad.numpy() for p in params] + [image.detach().numpy()])
    for ours, reference in zip(*grads):
        scale = np.abs(reference).max()
        assert scale > 0
        assert np.allclose(ours, reference, atol=1e-7 * scale + 1e-9, rtol=1e-6)


def test_colour_conversion_round_trips():
    rgb = np.random.default_rng(0).uniform(0, 1, size=(10, 3))
    assert np.allclose(sh_dc_to_rgb(torch.tensor(rgb_to_sh_dc(rgb))).numpy(), rgb)
