"""gsplat (CUDA) and the CPU renderer draw the same picture of a head-like avatar scene (the gate of
tests/render_checks.py); the painter draws the same picture on CuPy + gsplat as on numba + the CPU renderer; and
gsplat with autograd and the torch splatter train with the same gradients (needs a CUDA device)."""

import numpy as np
import pytest

from render_checks import SCENE, assert_same_picture, psnr, turned
from realtime.avatar.synthetic import random_avatar, random_params
from realtime.camera import head_and_shoulders_camera, output_size
from realtime.painter import AvatarPainter, to_uint8
from realtime.render import GsplatRenderer, cuda_backend_problem, get_renderer, render, resolve_backend
from realtime.render.synthetic import head_scene
from realtime.rig.synthetic import synthetic_rig

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
pytest.importorskip("gsplat", reason="the CUDA backend needs gsplat: pip install -e '.[gpu]'")


@pytest.fixture(scope="module")
def scene():
    return head_scene(SCENE["n"], sh_degree=SCENE["sh_degree"], seed=SCENE["seed"])


def attrs(scene):
    return scene.means, scene.quats, scene.scales, scene.opacities, scene.sh


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("size", ["512", "512x288", "256"])
def test_gsplat_matches_the_cpu_renderer(scene, size, antialiased):
    width, height = output_size(size)
    centre = (scene.vertices.min(0) + scene.vertices.max(0)) / 2
    cam = turned(head_and_shoulders_camera(scene.vertices, width, height), centre)
    options = dict(background=(0.1, 0.2, 0.3), antialiased=antialiased, with_alpha=True)
    gpu = render(*attrs(scene), cam, backend="cuda", **options)
    cpu = render(*attrs(scene), cam, backend="cpu", **options)
    assert gpu.image.shape == cpu.image.shape == (height, width, 3)
    assert (cpu.alpha > 0.5).mean() > 0.1  # the head really covers the frame
    assert_same_picture(gpu.image, cpu.image, "image")
    assert_same_picture(gpu.alpha, cpu.alpha, "alpha")


def test_gsplat_gives_tensors_on_the_device_and_takes_any_input(scene):
    renderer = GsplatRenderer()
    cam = head_and_shoulders_camera(scene.vertices, 256, 256)
    on_gpu = [torch.from_numpy(a).cuda() for a in attrs(scene)]
    result = renderer.render(*on_gpu, cam, with_alpha=True)
    assert result.image.is_cuda and tuple(result.image.shape) == (256, 256, 3)
    assert result.alpha.is_cuda and tuple(result.alpha.shape) == (256, 256)
    from_numpy = renderer.render(*attrs(scene), cam).numpy().image
    from_cpu_tensors = render(*[torch.from_numpy(a) for a in attrs(scene)], cam, backend="cuda").image
    np.testing.assert_array_equal(result.image.cpu().numpy(), from_numpy)
    np.testing.assert_array_equal(from_cpu_tensors, from_numpy)


def test_gsplat_with_autograd_trains_as_the_torch_splatter():
    small = head_scene(3000, sh_degree=0, seed=2)
    cam = head_and_shoulders_camera(small.vertices, 64, 64)
    weights = torch.from_numpy(np.random.default_rng(0).normal(size=(64, 64, 3)).astype(np.float32))
    images, grads = [], []
    for backend, device in (("cuda", "cuda"), ("cpu", "cpu")):
        renderer = get_renderer(backend, differentiable=True)
        assert renderer.differentiable and renderer.device.startswith(device)
        params = [torch.tensor(a, device=device, requires_grad=True) for a in attrs(small)]
        image = renderer.render(*params, cam, background=(0.1, 0.2, 0.3)).image
        (image * weights.to(device)).sum().backward()
        images.append(image.detach().cpu().numpy())
        grads.append([p.grad.cpu().numpy() for p in params])
    assert psnr(np.clip(images[0], 0, 1), np.clip(images[1], 0, 1)) >= 40.0
    for name, ours, theirs in zip(("means", "quats", "scales", "opacities", "sh"), grads[1], grads[0]):
        assert np.linalg.norm(ours - theirs) <= 0.05 * np.linalg.norm(theirs), name


def test_auto_picks_cuda_here():
    assert cuda_backend_problem() is None
    assert resolve_backend("auto") == "cuda"


def test_the_picture_converts_to_uint8_on_the_device_as_on_the_host(scene):
    cam = head_and_shoulders_camera(scene.vertices, 256, 256)
    image = GsplatRenderer().render(*attrs(scene), cam).image
    on_device = to_uint8(image)
    assert isinstance(on_device, np.ndarray) and on_device.dtype == np.uint8 and on_device.shape == (256, 256, 3)
    np.testing.assert_array_equal(on_device, to_uint8(image.cpu().numpy()))
    again = to_uint8(image * 0.5)
    assert not np.array_equal(again, on_device)  # a later picture never overwrites an earlier one
    np.testing.assert_array_equal(on_device, to_uint8(image.cpu().numpy()))


def test_the_painter_draws_the_same_picture_on_cupy_and_gsplat_as_on_the_cpu():
    pytest.importorskip("cupy", reason="the CuPy kernels need CuPy: pip install -e '.[gpu]'")
    avatar = random_avatar(synthetic_rig(), 20_000, seed=3)
    camera = avatar.camera.resized(384, 384)
    background = (0.1, 0.2, 0.3)
    gpu = AvatarPainter(avatar, camera, backend="cuda", background=background)
    cpu = AvatarPainter(avatar, camera, backend="cpu", background=background)
    assert (gpu.backend, gpu.deformer_backend) == ("cuda", "cupy")  # the fast path, no fallback
    empty = to_uint8(np.array([[background]]))[0, 0]
    for seed in range(3):
        params = random_params(avatar, seed=seed, angle=0.3)
        timings: dict[str, float] = {}
        picture = gpu.draw(params, timings)
        reference = cpu.draw(params, {})
        assert (reference != empty).any(axis=-1).mean() > 0.05  # the avatar covers the frame
        assert_same_picture(picture, reference, f"painter picture {seed}")
        assert timings["deform"] > 0 and timings["render"] > 0
