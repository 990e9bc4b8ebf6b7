"""Every renderer behind one interface; which renderer (and which deformer beside it) a backend name gets; the
painter's uint8 picture and its stage laps."""

import time

import numpy as np
import pytest
import torch

from realtime import painter as painter_module
from realtime.avatar.synthetic import random_avatar
from realtime.camera import frontal_camera
from realtime.deform.reference import deform
from realtime.painter import DEFORMER_FOR, AvatarPainter, drawing_backends, stage_end, to_uint8
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


def test_to_uint8_rounds_tensors_as_it_rounds_arrays():
    image = np.random.default_rng(0).uniform(-0.2, 1.2, size=(16, 24, 3)).astype(np.float32)
    image[0, :4, 0] = [0.5 / 255, 1.5 / 255, 254.5 / 255, 1.0]
    expected = to_uint8(image)
    assert expected.dtype == np.uint8 and expected.shape == (16, 24, 3)
    with torch.inference_mode():  # as the gsplat renderer draws
        tensor = torch.from_numpy(image.copy())
    np.testing.assert_array_equal(to_uint8(tensor), expected)
    np.testing.assert_array_equal(to_uint8(torch.from_numpy(image).requires_grad_()), expected)


class FakeStream:
    def __init__(self, device, waits, wait_s=0.0):
        self.device, self.waits, self.wait_s = device, waits, wait_s

    def synchronize(self):
        time.sleep(self.wait_s)
        self.waits.append(self.device)


def test_a_stage_on_a_cuda_device_ends_when_its_stream_is_done(monkeypatch):
    waits = []
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: FakeStream(device, waits))
    stage_end("cuda:1")()
    assert waits == ["cuda:1"]
    stage_end("cpu")()
    assert waits == ["cuda:1"]  # nothing to wait for on the CPU


def test_the_deform_lap_lasts_until_the_device_has_done_the_work(monkeypatch):
    """A deformer on CUDA returns once its kernels are queued; the painter's lap waits for them."""
    waits = []
    monkeypatch.setattr(painter_module, "stage_end", lambda device: FakeStream(device, waits, 0.05).synchronize)
    avatar = random_avatar(synthetic_rig(), 200, seed=2)
    painter = AvatarPainter(avatar, frontal_camera(avatar.rig.v_template.mean(0), 0.5, size=16), backend="cpu")
    timings = {}
    painter.draw(RigParams.neutral(avatar.rig), timings)
    assert waits == ["cpu"] and timings["deform"] >= 50.0
