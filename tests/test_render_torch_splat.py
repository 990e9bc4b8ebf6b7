"""The differentiable torch splatter: same picture as the CPU renderer, gradients of an independent dense reference."""

import numpy as np
import pytest
import torch

from realtime.camera import frontal_camera
from realtime.render import RenderError, get_renderer, render
from realtime.render.sh import rgb_to_sh_dc
from realtime.render.torch_splat import TorchSplatter, project_torch

SH_C0 = 0.5 / np.sqrt(np.pi)  # Y_0^0


def _scene(n, seed, spread=0.05, opacity=(0.1, 1.0), colour=(0.0, 1.0)):
    rng = np.random.default_rng(seed)
    means = rng.normal(scale=spread, size=(n, 3))
    quats = rng.normal(size=(n, 4))
    scales = np.exp(rng.uniform(np.log(0.001), np.log(0.006), size=(n, 3)))
    opacities = rng.uniform(*opacity, size=n)
    colors = rng.uniform(*colour, size=(n, 3))
    return means, quats, scales, opacities, colors


def test_forward_matches_the_cpu_renderer():
    means, quats, scales, opacities, colors = _scene(3000, 0)
    camera = frontal_camera(np.zeros(3), 0.6, size=96)
    bg = np.array([0.2, 0.3, 0.4])
    sh = rgb_to_sh_dc(colors)[:, None, :]
    expected = render(*(a.astype(np.float32) for a in (means, quats, scales, opacities, sh)), camera,
                      background=bg, backend="cpu").image
    t = [torch.tensor(a, dtype=torch.float32) for a in (means, quats, scales, opacities, sh)]
    image = TorchSplatter().render(*t, camera, background=bg).image.clamp(0, 1).numpy()
    assert np.abs(image - expected).max() < 1e-4


def _dense_reference(means, quats, scales, opacities, sh, camera, background):
    """Every Gaussian at every pixel in torch (no tiles, no early stop): valid while transmittance stays > 1e-4."""
    means2d, conics = project_torch(means, quats, scales, camera)
    view = torch.as_tensor(camera.viewmat, dtype=means.dtype)
    order = torch.argsort((means.detach() @ view[2, :3] + view[2, 3]))
    m, c, o = means2d[order], conics[order], opacities[order]
    col = SH_C0 * sh[order, 0] + 0.5  # colours stay > 0 here: no clamp
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
    return image + (trans[-1] * (1 - alpha[-1]))[..., None] * torch.as_tensor(background, dtype=means.dtype)


def test_gradients_match_a_dense_autograd_reference():
    means, quats, scales, opacities, colors = _scene(40, 1, spread=0.02, opacity=(0.1, 0.6), colour=(0.05, 1.0))
    camera = frontal_camera(np.zeros(3), 0.5, size=24)
    weights = torch.tensor(np.random.default_rng(2).normal(size=(24, 24, 3)))
    background = np.array([0.25, 0.125, 0.625])  # exact in float32, as the renderers take it
    sh = ((colors - 0.5) / SH_C0)[:, None, :]
    grads = []
    for draw in (lambda *a: TorchSplatter().render(*a[:-1], background=a[-1]).image, _dense_reference):
        params = [torch.tensor(a, dtype=torch.float64, requires_grad=True)
                  for a in (means, quats, scales, opacities, sh)]
        image = draw(*params, camera, background)
        (image * weights).sum().backward()
        grads.append([p.grad.numpy() for p in params] + [image.detach().numpy()])
    for ours, reference in zip(*grads):
        scale = np.abs(reference).max()
        assert scale > 0
        assert np.allclose(ours, reference, atol=1e-7 * scale + 1e-9, rtol=1e-6)


def test_it_is_the_differentiable_cpu_renderer_and_says_what_it_cannot_draw():
    splatter = get_renderer("cpu", differentiable=True)
    assert isinstance(splatter, TorchSplatter) and splatter.differentiable and splatter.device == "cpu"
    means, quats, scales, opacities, colors = _scene(10, 3)
    sh = np.concatenate([rgb_to_sh_dc(colors)[:, None, :], np.zeros((10, 3, 3))], 1)
    t = [torch.tensor(a, dtype=torch.float32) for a in (means, quats, scales, opacities, sh)]
    camera = frontal_camera(np.zeros(3), 0.5, size=16)
    dc_only = splatter.render(*t[:4], t[4][:, :1], camera).image
    assert torch.equal(splatter.render(*t, camera, sh_degree=0).image, dc_only)  # higher bands are not drawn
    for options in ({}, {"sh_degree": 0, "antialiased": True}, {"sh_degree": 0, "with_alpha": True}):
        with pytest.raises(RenderError, match="sh_degree 0, antialiased=False, with_alpha=False"):
            splatter.render(*t, camera, **options)
    with pytest.raises(RenderError, match="CPU float32 or float64 tensors of one dtype"):
        splatter.render(*t[:4], t[4][:, :1].double(), camera)
    with pytest.raises(RenderError, match="CPU float32 or float64 tensors of one dtype"):
        splatter.render(*(a.numpy() for a in t[:4]), t[4][:, :1].numpy(), camera)


def test_dc_coefficients_give_back_the_colour():
    rgb = np.random.default_rng(0).uniform(0, 1, size=(10, 3))
    assert np.allclose(SH_C0 * rgb_to_sh_dc(rgb) + 0.5, rgb)
    assert torch.allclose(SH_C0 * rgb_to_sh_dc(torch.tensor(rgb)) + 0.5, torch.tensor(rgb))
