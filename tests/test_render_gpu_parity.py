"""gsplat (CUDA) and the CPU renderer draw the same picture of a head-like avatar scene, and gsplat with autograd
and the torch splatter train with the same gradients (needs a CUDA device)."""

import numpy as np
import pytest

from realtime.camera import Camera, head_and_shoulders_camera, output_size
from realtime.geometry import axis_angle_to_matrix
from realtime.render import GsplatRenderer, get_renderer, render, resolve_backend
from realtime.render.synthetic import head_scene

pytestmark = pytest.mark.gpu
torch = pytest.importorskip("torch")
pytest.importorskip("gsplat", reason="the CUDA backend needs gsplat: pip install -e '.[gpu]'")


@pytest.fixture(scope="module")
def scene():
    return head_scene(30_000, sh_degree=3, seed=1)


def turned(camera: Camera, centre: np.ndarray, yaw_deg: float) -> Camera:
    """The camera orbited about the vertical axis through `centre`, so higher SH bands show."""
    turn = np.eye(4)
    R = axis_angle_to_matrix(np.array([0.0, np.radians(yaw_deg), 0.0]))
    turn[:3, :3], turn[:3, 3] = R, centre - R @ centre
    return Camera(K=camera.K, viewmat=camera.viewmat @ turn, width=camera.width, height=camera.height)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def attrs(scene):
    return scene.means, scene.quats, scene.scales, scene.opacities, scene.sh


@pytest.mark.parametrize("antialiased", [False, True])
@pytest.mark.parametrize("size", ["512", "512x288", "256"])
def test_gsplat_matches_the_cpu_renderer(scene, size, antialiased):
    width, height = output_size(size)
    centre = (scene.vertices.min(0) + scene.vertices.max(0)) / 2
    cam = turned(head_and_shoulders_camera(scene.vertices, width, height), centre, 25.0)
    options = dict(background=(0.1, 0.2, 0.3), antialiased=antialiased, with_alpha=True)
    gpu = render(*attrs(scene), cam, backend="cuda", **options)
    cpu = render(*attrs(scene), cam, backend="cpu", **options)
    assert gpu.image.shape == cpu.image.shape == (height, width, 3)
    assert (cpu.alpha > 0.5).mean() > 0.1  # the head really covers the frame
    assert psnr(gpu.image, cpu.image) >= 40.0
    assert psnr(gpu.alpha, cpu.alpha) >= 40.0


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
    assert resolve_backend("auto") == "cuda"
