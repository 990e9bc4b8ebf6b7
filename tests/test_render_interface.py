"""Every renderer behind one interface; which renderer (and which deformer beside it) a backend name gets."""

import numpy as np
import pytest
import torch

from realtime import painter as painter_module
from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.deform.reference import deform
from realtime.painter import DEFORMER_FOR, AvatarPainter, drawing_backends, to_uint8
from realtime.render import BACKENDS, CpuRenderer, RenderResult, get_renderer, render
from realtime.render.torch_splat import TorchSplatter
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig


def _gaussians(n=50, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=0.03, size=(n, 3)), rng.normal(size=(n, 4)), np.full((n, 3), 0.004),
            rng.uniform(0.3, 0.9, n), rng.normal(scale=0.5, size=(n, 1, 3)))


@pytest.mark.parametrize("renderer", [CpuRenderer(threads=1), TorchSplatter()], ids=["cpu", "torch"])
def test_every_cpu_renderer_declares_itself_and_takes_its_own_inputs(renderer):
    assert renderer.backend in BACKENDS[1:] and renderer.device == "cpu"
    assert isinstance(renderer.differentiable, bool)
    camera = frontal_camera(np.zeros(3), 0.4, size=32)
    inputs = [renderer.as_input(a) for a in _gaussians()]
    assert all(str(a.dtype).endswith("float32") for a in inputs)
    result = renderer.render(*inputs, camera, background=(0.1, 0.2, 0.3))
    expected = render(*_gaussians(), camera, background=(0.1, 0.2, 0.3), backend="cpu").image
    np.testing.assert_allclose(np.clip(result.numpy().image, 0, 1), expected, atol=1e-4)
    assert result.alpha is None


def test_get_renderer_gives_one_renderer_per_backend_and_kind():
    assert isinstance(get_renderer("cpu"), CpuRenderer) and not get_renderer("cpu").differentiable
    assert isinstance(get_renderer("cpu", differentiable=True), TorchSplatter)
    assert get_renderer("cpu") is get_renderer("cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        get_renderer("vulkan", differentiable=True)


def test_a_result_comes_back_as_numpy_detached_and_off_the_device():
    image = torch.ones((2, 3, 3), requires_grad=True) * 0.5
    out = RenderResult(image=image, alpha=None).numpy()
    assert isinstance(out.image, np.ndarray) and out.image.shape == (2, 3, 3) and out.alpha is None
    both = RenderResult(image=np.zeros((2, 3, 3)), alpha=torch.zeros(2, 3)).numpy()
    assert isinstance(both.alpha, np.ndarray)


def test_one_place_pairs_each_render_backend_with_its_deformer(monkeypatch):
    assert set(DEFORMER_FOR) == set(BACKENDS[1:])
    deformer, renderer = drawing_backends("cpu")
    assert (deformer, renderer) == ("numba", get_renderer("cpu"))

    class Gpu:
        backend, device = "cuda", "cuda:0"

    gpu = Gpu()
    monkeypatch.setattr(painter_module, "get_renderer", lambda backend: gpu)
    assert drawing_backends("cuda") == ("auto", gpu)  # CuPy kernels (torch without CuPy), on gsplat's device


def test_the_painter_draws_what_the_reference_deformation_and_the_renderer_draw():
    avatar = random_avatar(synthetic_rig(), 500, seed=2)
    camera = frontal_camera(avatar.rig.v_template.mean(0), distance=0.5, size=48)
    painter = AvatarPainter(avatar, camera, backend="cpu", background=(0.2, 0.1, 0.0))
    assert painter.backend == "cpu"
    params = RigParams.neutral(avatar.rig)
    g = deform(avatar, params, np.float32).gaussians
    expected = to_uint8(render(g.means, g.quats, g.scales, avatar.opacities, avatar.sh, camera,
                               background=(0.2, 0.1, 0.0), backend="cpu").image)
    got = painter.draw(params, {})
    assert np.abs(got.astype(int) - expected).max() <= 1
