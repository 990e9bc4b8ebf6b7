"""The CPU splatting renderer against closed forms and an independent dense reference (gsplat 1.5.3 semantics)."""

import sys

import numpy as np
import pytest
import torch

from realtime.camera import Camera, OUTPUT_SIZES, head_and_shoulders_camera, look_at, output_size
from realtime.geometry import quaternion_to_matrix
from realtime.render import BackendUnavailable, CpuRenderer, RenderError, cuda_usable, render, resolve_backend
from realtime.render import backend as backend_module
from realtime.render import gsplat_backend

F = 80.0
SH_C0 = 0.5 / np.sqrt(np.pi)  # Y_0^0
SH_C1 = np.sqrt(3 / (4 * np.pi))  # Y_1 bands: C1 * (-y, z, -x)


def camera(width=64, height=64, f=F, viewmat=None):
    """A pinhole at the origin looking along +z (identity view) unless a viewmat is given."""
    K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]])
    return Camera(K=K, viewmat=np.eye(4) if viewmat is None else viewmat, width=width, height=height)


def gaussians(means, scales, opacities, colors=None, quats=None, sh=None):
    """float32 arrays for N Gaussians; colours (N, 3) in [0, 1] become degree-0 SH."""
    means = np.asarray(means, np.float64).reshape(-1, 3)
    n = len(means)
    if sh is None:
        colors = np.ones((n, 3)) if colors is None else np.asarray(colors, np.float64).reshape(n, 3)
        sh = ((colors - 0.5) / SH_C0)[:, None, :]
    quats = np.tile([1.0, 0, 0, 0], (n, 1)) if quats is None else np.asarray(quats).reshape(n, 4)
    scales = np.broadcast_to(np.asarray(scales, np.float64), (n, 3))
    opacities = np.broadcast_to(np.asarray(opacities, np.float64), (n,))
    return tuple(np.ascontiguousarray(a, np.float32) for a in (means, quats, scales, opacities, sh))


def on_pixel(px, py, z, cam):
    """World point (camera at the origin) that projects onto the centre of pixel (px, py) at depth z."""
    K = cam.K
    return [(px + 0.5 - K[0, 2]) * z / K[0, 0], (py + 0.5 - K[1, 2]) * z / K[1, 1], z]


def covariance_2d(mean, quat, scale, cam):
    """EWA: J W Σ W^T J^T + 0.3 I in float64, for a Gaussian well inside the view (no clamping)."""
    R = quaternion_to_matrix(np.asarray(quat, np.float64))
    cov = R @ np.diag(np.asarray(scale, np.float64) ** 2) @ R.T
    W = cam.viewmat[:3, :3]
    x, y, z = W @ np.asarray(mean, np.float64) + cam.viewmat[:3, 3]
    fx, fy = cam.K[0, 0], cam.K[1, 1]
    J = np.array([[fx / z, 0, -fx * x / z**2], [0, fy / z, -fy * y / z**2]])
    raw = J @ W @ cov @ W.T @ J.T
    center = np.array([fx * x / z + cam.K[0, 2], fy * y / z + cam.K[1, 2]])
    return raw, raw + 0.3 * np.eye(2), center


def footprint(cov2d, center, px, py):
    d = center - np.array([px + 0.5, py + 0.5])
    return np.exp(-0.5 * d @ np.linalg.inv(cov2d) @ d)


# ---------------------------------------------------------------- an independent dense reference


def sh_reference(sh, dirs):
    """Colour + 0.5 clamped at 0 from the textbook real SH (Condon-Shortley signs as 3DGS), degrees 0..3."""
    x, y, z = dirs.T
    pi = np.pi
    basis = [np.full_like(x, 0.5 / np.sqrt(pi)),
             -np.sqrt(3 / (4 * pi)) * y, np.sqrt(3 / (4 * pi)) * z, -np.sqrt(3 / (4 * pi)) * x,
             0.5 * np.sqrt(15 / pi) * x * y, -0.5 * np.sqrt(15 / pi) * y * z, 0.25 * np.sqrt(5 / pi) * (3 * z * z - 1),
             -0.5 * np.sqrt(15 / pi) * x * z, 0.25 * np.sqrt(15 / pi) * (x * x - y * y),
             -0.25 * np.sqrt(35 / (2 * pi)) * y * (3 * x * x - y * y), 0.5 * np.sqrt(105 / pi) * x * y * z,
             -0.25 * np.sqrt(21 / (2 * pi)) * y * (5 * z * z - 1), 0.25 * np.sqrt(7 / pi) * z * (5 * z * z - 3),
             -0.25 * np.sqrt(21 / (2 * pi)) * x * (5 * z * z - 1), 0.25 * np.sqrt(105 / pi) * z * (x * x - y * y),
             -0.25 * np.sqrt(35 / (2 * pi)) * x * (x * x - 3 * y * y)]
    k = sh.shape[1]
    color = np.einsum("kn,nkc->nc", np.stack(basis[:k]), sh.astype(np.float64))
    return np.maximum(color + 0.5, 0.0)


def reference_render(means, quats, scales, opacities, sh, cam, background=(0, 0, 0), antialiased=False):
    """Per-pixel, per-Gaussian float64 evaluation of the whole image, no tiles, no bounding boxes.
    Returns image (H, W, 3), alpha (H, W), which pixels stopped on the transmittance rule and which met a
    Gaussian within float32 rounding of the alpha or transmittance thresholds."""
    W = cam.viewmat[:3, :3]
    p = means.astype(np.float64) @ W.T + cam.viewmat[:3, 3]
    campos = -W.T @ cam.viewmat[:3, 3]
    dirs = means - campos
    colors = sh_reference(sh, dirs / np.linalg.norm(dirs, axis=1, keepdims=True))
    fx, fy, cx, cy = cam.K[0, 0], cam.K[1, 1], cam.K[0, 2], cam.K[1, 2]
    lim = np.array([[cx / fx + 0.15 * cam.width / fx, (cam.width - cx) / fx + 0.15 * cam.width / fx],
                    [cy / fy + 0.15 * cam.height / fy, (cam.height - cy) / fy + 0.15 * cam.height / fy]])
    ys, xs = np.mgrid[0:cam.height, 0:cam.width] + 0.5
    trans = np.ones((cam.height, cam.width))
    done = np.zeros_like(trans, dtype=bool)
    unsure = np.zeros_like(done)
    out = np.zeros((cam.height, cam.width, 3))
    for i in np.argsort(p[:, 2], kind="stable"):
        x, y, z = p[i]
        if not 0.01 <= z <= 1e10:
            continue
        tx = z * np.clip(x / z, -lim[0, 0], lim[0, 1])
        ty = z * np.clip(y / z, -lim[1, 0], lim[1, 1])
        J = np.array([[fx / z, 0, -fx * tx / z**2], [0, fy / z, -fy * ty / z**2]])
        R = quaternion_to_matrix(quats[i].astype(np.float64))
        cov = J @ W @ R @ np.diag(scales[i].astype(np.float64) ** 2) @ R.T @ W.T @ J.T
        blurred = cov + 0.3 * np.eye(2)
        opacity = opacities[i] * (np.sqrt(np.linalg.det(cov) / np.linalg.det(blurred)) if antialiased else 1.0)
        conic = np.linalg.inv(blurred)
        dx, dy = fx * x / z + cx - xs, fy * y / z + cy - ys
        sigma = 0.5 * (conic[0, 0] * dx * dx + conic[1, 1] * dy * dy) + conic[0, 1] * dx * dy
        alpha = np.minimum(0.999, opacity * np.exp(-sigma))
        next_t = trans * (1 - alpha)
        # float32 rounding may decide these two tests either way
        unsure |= ~done & ((np.abs(alpha * 255 - 1) < 1e-4) | (np.abs(next_t * 1e4 - 1) < 1e-4))
        use = ~done & (sigma >= 0) & (alpha >= 1 / 255)
        finish = use & (next_t <= 1e-4)
        done |= finish
        use &= ~finish
        out += np.where(use[..., None], colors[i] * (alpha * trans)[..., None], 0.0)
        trans = np.where(use, next_t, trans)
    return out + trans[..., None] * np.asarray(background), 1 - trans, done, unsure


def random_scene(n, sh_degree, seed, cam, cover=1.0):
    """Gaussians in front of the camera, some straddling the image border, some nearly transparent;
    their centres fill the left `cover` fraction of the image width."""
    rng = np.random.default_rng(seed)
    z = rng.uniform(1.0, 3.0, size=n)
    u = rng.uniform(-8, cover * cam.width + 8, size=n)
    v = rng.uniform(-8, cam.height + 8, size=n)
    means = np.stack([(u - cam.K[0, 2]) * z / cam.K[0, 0], (v - cam.K[1, 2]) * z / cam.K[1, 1], z], 1)
    scales = np.exp(rng.uniform(np.log(0.005), np.log(0.3), size=(n, 3)))
    opacities = rng.uniform(0.002, 1.0, size=n) ** 0.25
    sh = rng.normal(scale=0.4, size=(n, (sh_degree + 1) ** 2, 3))
    return gaussians(means, scales, opacities, quats=rng.normal(size=(n, 4)), sh=sh)


# ---------------------------------------------------------------- closed forms


def test_one_gaussian_matches_its_analytic_footprint():
    cam = camera(70, 50)
    mean = [0.21, -0.12, 2.3]  # off axis: the Jacobian's third column matters
    quat = np.array([0.9, 0.2, -0.3, 0.25])
    scale = [0.15, 0.05, 0.1]  # a few pixels across
    color = np.array([0.9, 0.4, 0.1])
    g = gaussians(mean, scale, 0.8, color, quats=quat)
    image = render(*g, cam, backend="cpu").image
    _, cov2d, center = covariance_2d(mean, quat, scale, cam)
    for px, py in [(int(center[0]), int(center[1])), (int(center[0]) + 3, int(center[1]) - 2),
                   (int(center[0]) - 5, int(center[1]) + 4), (int(center[0]) + 1, int(center[1]) + 6)]:
        alpha = min(0.999, 0.8 * footprint(cov2d, center, px, py))
        assert alpha > 1 / 255
        np.testing.assert_allclose(image[py, px], color * alpha, rtol=2e-5, atol=1e-6)
    assert image[0, 0].max() == 0.0  # far outside the footprint


def test_antialiased_mode_scales_opacity_by_the_dilation_compensation():
    cam = camera()
    mean, scale = on_pixel(30, 33, 2.0, cam), [0.004, 0.007, 0.01]  # a small splat: strong compensation
    g = gaussians(mean, scale, 0.9)
    raw, blurred, center = covariance_2d(mean, [1, 0, 0, 0], scale, cam)
    compensation = np.sqrt(np.linalg.det(raw) / np.linalg.det(blurred))
    assert compensation < 0.8
    classic = render(*g, cam, backend="cpu").image
    aa = render(*g, cam, antialiased=True, backend="cpu").image
    for px, py in [(30, 33), (31, 33), (30, 34)]:
        fp = footprint(blurred, center, px, py)
        np.testing.assert_allclose(classic[py, px, 0], 0.9 * fp, rtol=2e-5)
        np.testing.assert_allclose(aa[py, px, 0], 0.9 * compensation * fp, rtol=2e-5)


def test_two_gaussians_composite_front_to_back():
    cam = camera()
    red, blue = [1.0, 0, 0], [0, 0, 1.0]
    px, py = 31, 29
    front, back = on_pixel(px, py, 2.0, cam), on_pixel(px, py, 3.0, cam)
    bg = np.array([0.2, 0.7, 0.3])
    scene = gaussians([front, back], [[0.04] * 3, [0.06] * 3], [0.6, 0.7], [red, blue])
    image = render(*scene, cam, background=bg, backend="cpu").image
    a1, a2 = 0.6, 0.7  # both centred on the pixel: exp(0) = 1
    expected = a1 * np.array(red) + (1 - a1) * a2 * np.array(blue) + (1 - a1) * (1 - a2) * bg
    np.testing.assert_allclose(image[py, px], expected, rtol=1e-5)
    assert image[py, px, 0] > image[py, px, 2]

    swapped = gaussians([back, front], [[0.04] * 3, [0.06] * 3], [0.6, 0.7], [red, blue])  # red now behind
    image2 = render(*swapped, cam, background=bg, backend="cpu").image
    a1, a2 = 0.7, 0.6
    expected2 = a1 * np.array(blue) + (1 - a1) * a2 * np.array(red) + (1 - a1) * (1 - a2) * bg
    np.testing.assert_allclose(image2[py, px], expected2, rtol=1e-5)
    assert image2[py, px, 2] > image2[py, px, 0]

    reordered = tuple(a[::-1].copy() for a in scene)  # input order does not matter, depth does
    np.testing.assert_array_equal(render(*reordered, cam, background=bg, backend="cpu").image, image)


def test_a_pixel_stops_before_transmittance_falls_to_1e_4():
    cam = camera()
    px, py = 20, 40
    colors = np.eye(3)[[0, 1, 2, 0, 1]] * 0.9 + 0.05
    means = [on_pixel(px, py, z, cam) for z in (1.0, 1.5, 2.0, 2.5, 3.0)]
    g = gaussians(means, 0.05, 0.95, colors)
    result = render(*g, cam, background=(1, 1, 1), with_alpha=True, backend="cpu")
    # T: 1, 0.05, 0.0025, 1.25e-4; a fourth layer would leave 6.25e-6 <= 1e-4, so it and the fifth are not added
    weights = np.array([0.95, 0.05 * 0.95, 0.0025 * 0.95])
    expected = weights @ colors[:3] + 1.25e-4
    np.testing.assert_allclose(result.image[py, px], expected, rtol=1e-5)
    np.testing.assert_allclose(result.alpha[py, px], 1 - 1.25e-4, rtol=1e-6)


def test_degree_three_with_only_dc_equals_degree_zero():
    cam = camera()
    g0 = random_scene(40, 0, seed=3, cam=cam)
    sh3 = np.zeros((40, 16, 3), np.float32)
    sh3[:, 0] = g0[4][:, 0]
    g3 = g0[:4] + (sh3,)
    np.testing.assert_array_equal(render(*g3, cam, backend="cpu").image, render(*g0, cam, backend="cpu").image)
    rich = g3[:4] + (np.random.default_rng(0).normal(size=(40, 16, 3)).astype(np.float32),)
    rich[4][:, 0] = sh3[:, 0]
    np.testing.assert_array_equal(render(*rich, cam, sh_degree=0, backend="cpu").image,
                                  render(*g0, cam, backend="cpu").image)


@pytest.mark.parametrize("coeff, basis", [
    (2, lambda d: SH_C1 * d[2]),  # Y_1^0 = C1 z
    (6, lambda d: 0.25 * np.sqrt(5 / np.pi) * (3 * d[2] ** 2 - 1)),  # Y_2^0
    (12, lambda d: 0.25 * np.sqrt(7 / np.pi) * d[2] * (5 * d[2] ** 2 - 3)),  # Y_3^0
    (13, lambda d: -0.25 * np.sqrt(21 / (2 * np.pi)) * d[0] * (5 * d[2] ** 2 - 1)),  # Y_3^1
])
def test_higher_bands_change_colour_with_the_view_direction(coeff, basis):
    # one Gaussian at the origin seen from two directions; its colour follows the basis function at the
    # unit direction from the camera to the Gaussian
    sh = np.zeros((1, 16, 3))
    sh[:, 0] = [-0.3, -0.1, 0.0]
    sh[:, coeff] = [0.5, -0.5, 0.3]  # keeps every channel inside (0, 1)
    g = gaussians([0.0, 0.0, 0.0], 0.05, 1.0, sh=sh)
    colors = []
    for eye in (np.array([0.0, 0.0, 2.0]), np.array([1.4, -0.6, -1.2])):
        viewmat = look_at(eye, np.zeros(3))
        cam = Camera(K=np.array([[F, 0, 32.5], [0, F, 32.5], [0, 0, 1]]), viewmat=viewmat, width=64, height=64)
        image = render(*g, cam, backend="cpu").image  # the Gaussian is centred on pixel (32, 32)
        d = -eye / np.linalg.norm(eye)
        expected = SH_C0 * sh[0, 0] + basis(d) * sh[0, coeff] + 0.5
        assert np.all((expected > 0) & (expected < 1))
        np.testing.assert_allclose(image[32, 32], 0.999 * expected, rtol=1e-5, atol=1e-6)
        colors.append(expected)
    assert np.abs(colors[0] - colors[1]).max() > 0.05  # the view direction really changed the colour


def test_background_and_alpha():
    cam = camera()
    empty = gaussians(np.zeros((0, 3)), np.zeros((0, 3)), np.zeros(0))
    result = render(*empty, cam, background=(0.1, 0.5, 0.9), with_alpha=True, backend="cpu")
    np.testing.assert_allclose(result.image, np.broadcast_to([0.1, 0.5, 0.9], (64, 64, 3)), rtol=1e-6)
    np.testing.assert_array_equal(result.alpha, 0.0)

    px, py = 10, 12
    g = gaussians(on_pixel(px, py, 2.0, cam), 0.03, 0.7, [0.2, 0.4, 0.6])
    result = render(*g, cam, background=(1, 1, 1), with_alpha=True, backend="cpu")
    np.testing.assert_allclose(result.alpha[py, px], 0.7, rtol=1e-6)
    np.testing.assert_allclose(result.image[py, px], 0.7 * np.array([0.2, 0.4, 0.6]) + 0.3, rtol=1e-6)
    assert render(*g, cam, backend="cpu").alpha is None
    assert result.image.dtype == np.float32 and result.alpha.dtype == np.float32
    assert result.image.shape == (64, 64, 3) and result.alpha.shape == (64, 64)


def test_gaussians_behind_or_too_near_the_camera_are_culled():
    cam = camera()
    visible = on_pixel(32, 32, 2.0, cam)
    behind = [0.0, 0.0, -2.0]
    too_near = [0.0, 0.0, 0.005]
    for mean in (behind, too_near):
        image = render(*gaussians(mean, 0.5, 1.0, [1, 0, 0]), cam, backend="cpu").image
        assert image.max() == 0.0
    image = render(*gaussians([visible, behind, too_near], 0.05, 1.0, [[0, 1, 0], [1, 0, 0], [1, 0, 0]]), cam,
                   backend="cpu").image
    np.testing.assert_allclose(image[32, 32], [0, 0.999, 0], atol=1e-6)


@pytest.mark.parametrize("antialiased", [False, True])
def test_matches_a_dense_reference_on_a_random_scene(antialiased):
    cam = Camera(K=np.array([[60.0, 0, 37], [0, 55, 22], [0, 0, 1]]),
                 viewmat=look_at(np.array([0.1, 0.05, -0.2]), np.array([0.0, 0.0, 2.0]), np.array([0, -1.0, 0])),
                 width=75, height=45)  # edge tiles are partial
    g = random_scene(600, 3, seed=11, cam=camera(75, 45, 60), cover=0.6)
    result = render(*g, cam, background=(0.3, 0.2, 0.1), antialiased=antialiased, with_alpha=True, backend="cpu")
    ref_image, ref_alpha, finished, unsure = reference_render(*g, cam, background=(0.3, 0.2, 0.1),
                                                              antialiased=antialiased)
    assert finished.sum() > 300 and ref_alpha.min() < 0.5  # some pixels saturate and stop early, some stay clear
    assert unsure.sum() < 0.01 * unsure.size
    sure = ~unsure
    np.testing.assert_allclose(result.image[sure], np.clip(ref_image, 0, 1)[sure], atol=2e-5)
    np.testing.assert_allclose(result.alpha[sure], ref_alpha[sure], atol=2e-5)


def test_rendering_is_deterministic_and_takes_torch_tensors():
    cam = camera(96, 80)
    g = random_scene(500, 3, seed=5, cam=cam)
    first = render(*g, cam, background=(0.5, 0.5, 0.5), backend="cpu").image
    np.testing.assert_array_equal(render(*g, cam, background=(0.5, 0.5, 0.5), backend="cpu").image, first)
    one_thread = CpuRenderer(threads=1).render(*g, cam, background=(0.5, 0.5, 0.5)).image
    np.testing.assert_array_equal(one_thread, first)
    tensors = [torch.from_numpy(a) for a in g]
    np.testing.assert_array_equal(render(*tensors, cam, background=(0.5, 0.5, 0.5), backend="cpu").image, first)
    as_float64 = [a.astype(np.float64) for a in g]
    np.testing.assert_array_equal(render(*as_float64, cam, background=(0.5, 0.5, 0.5), backend="cpu").image, first)


# ---------------------------------------------------------------- errors and backend selection


@pytest.mark.parametrize("index, bad, message", [
    (0, np.zeros((3, 2)), "means"),
    (1, np.zeros((3, 3)), "quats"),
    (2, np.zeros((4, 3)), "scales"),
    (3, np.zeros((3, 1)), "opacities"),
    (4, np.zeros((3, 5, 3)), "1, 4, 9 or 16"),
    (4, np.zeros((3, 4)), "sh"),
    (0, [[0, 0, 1]] * 3, "NumPy array or a torch tensor"),
])
def test_bad_shapes_raise_clear_errors(index, bad, message):
    g = list(gaussians([[0, 0, 1.0]] * 3, 0.1, 0.5))
    g[index] = bad
    with pytest.raises(RenderError, match=message):
        render(*g, camera(), backend="cpu")


def test_bad_options_raise_clear_errors():
    g = gaussians([0, 0, 1.0], 0.1, 0.5)
    with pytest.raises(ValueError, match="threads"):
        CpuRenderer(threads=0)
    with pytest.raises(RenderError, match="background"):
        render(*g, camera(), background=(1, 1), backend="cpu")
    with pytest.raises(RenderError, match="sh_degree"):
        render(*g, camera(), sh_degree=1, backend="cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        render(*g, camera(), backend="vulkan")


def test_auto_picks_cuda_only_when_gsplat_can_draw(monkeypatch):
    for problem, expected in [("no CUDA device", "cpu"), ("gsplat's CUDA extension is missing", "cpu"), (None, "cuda")]:
        monkeypatch.setattr(backend_module, "cuda_backend_problem", lambda p=problem: p)
        assert resolve_backend("auto") == expected
    assert resolve_backend("cpu") == "cpu"


def test_missing_gsplat_gives_a_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "gsplat", None)  # makes `import gsplat` fail
    with pytest.raises(BackendUnavailable, match="gsplat==1.5.3"):
        gsplat_backend.import_gsplat()
    monkeypatch.setattr(gsplat_backend, "cuda_usable", lambda: True)
    with pytest.raises(BackendUnavailable, match="needs gsplat"):
        resolve_backend("cuda")


@pytest.mark.skipif(cuda_usable(), reason="this machine has a usable CUDA device")
def test_cuda_backend_without_a_device_fails_cleanly():
    with pytest.raises(BackendUnavailable, match="CUDA device"):
        render(*gaussians([0, 0, 1.0], 0.1, 0.5), camera(), backend="cuda")
    assert resolve_backend("auto") == "cpu"


# ---------------------------------------------------------------- framing and output sizes


@pytest.mark.parametrize("name", ["256", "512x288", "1024"])
def test_head_and_shoulders_framing_puts_the_head_in_the_upper_middle(name):
    rng = np.random.default_rng(0)
    vertices = rng.normal(size=(2000, 3)) * [0.08, 0.11, 0.09] + [0.01, 0.02, -0.03]
    width, height = output_size(name)
    cam = head_and_shoulders_camera(vertices, width, height, fill=0.5, top_margin=0.1)
    p = vertices @ cam.viewmat[:3, :3].T + cam.viewmat[:3, 3]
    uv = (p @ cam.K.T)[:, :2] / p[:, 2:]
    assert np.all(p[:, 2] > 0)
    top, bottom = uv[:, 1].min() / height, uv[:, 1].max() / height
    assert 0.5 * 0.9 < bottom - top < 0.5 * 1.1  # about half the frame's height (perspective bends it a little)
    assert 0.07 < top < 0.13
    np.testing.assert_allclose(uv[:, 0].mean() / width, 0.5 + 0.01 * cam.K[0, 0] / p[:, 2].mean() / width,
                               atol=0.02)
    np.testing.assert_allclose(cam.viewmat[:3, :3] @ [0, 1, 0], [0, -1, 0], atol=1e-12)  # level: rig up is image up


def test_output_sizes():
    assert output_size("512") == (512, 512)
    assert output_size("1024x576") == (1024, 576)
    assert all(w % 2 == 0 and h % 2 == 0 and 128 <= w <= 1024 for w, h in OUTPUT_SIZES.values())
    assert all(w == h or abs(w / h - 16 / 9) < 1e-9 for w, h in OUTPUT_SIZES.values())
    with pytest.raises(ValueError, match="known sizes"):
        output_size("500")


def test_depth_order_is_a_stable_sort_of_the_visible():
    from realtime.render.tiles import depth_order

    rng = np.random.default_rng(3)
    depths = rng.uniform(0.2, 3.0, 5000).astype(np.float32)
    depths[::5] = depths[7]                                         # many equal depths: ties go by id
    depths[1::97] = np.float32(1e-3) * np.arange(len(depths[1::97]))  # tiny ones, every bit pattern byte in play
    radii = rng.integers(0, 4, (5000, 2)).astype(np.int32)          # a radius of 0 culls
    visible = np.flatnonzero((radii > 0).all(axis=1))
    expected = visible[np.lexsort((visible, depths[visible]))]
    np.testing.assert_array_equal(depth_order(depths.view(np.uint32), radii), expected)
    assert depth_order(depths.view(np.uint32), np.zeros((5000, 2), np.int32)).shape == (0,)


# ---------------------------------------------------------------- the fast paths against their references


def test_exp_neg_is_numpy_exp_within_about_an_ulp():
    from numba import njit

    from realtime.render.constants import FASTMATH
    from realtime.render.cpu import exp_neg

    @njit(fastmath=FASTMATH)  # as the compositor calls it: inlined into a loop compiled with fast-math
    def in_a_loop(s):
        out = np.empty_like(s)
        for i in range(s.shape[0]):
            out[i] = exp_neg(s[i])
        return out

    s = np.concatenate([np.linspace(-80.0, 87.0, 400_001), np.random.default_rng(0).uniform(0.0, 6.0, 100_000),
                        [0.0, 1e-30, np.log(255.0)]]).astype(np.float32)
    expected = np.exp(-s.astype(np.float64))
    ulps = np.abs(in_a_loop(s) - expected) / np.spacing(expected.astype(np.float32))
    assert ulps.max() <= 1.5, ulps.max()
    np.testing.assert_array_equal(in_a_loop(np.array([87.0, 1e4, np.inf], np.float32)), np.float32(np.exp(-87.0)))


def test_footprint_extents_hold_every_pixel_a_gaussian_reaches_and_little_more():
    from realtime.render.cpu import REACH_X, REACH_Y, pack_splats
    from realtime.render.project import project

    cam = camera(96, 80)
    g = random_scene(300, 0, seed=9, cam=cam)
    projected = project(*g, np.eye(4, dtype=np.float32), np.asarray(cam.K, np.float32), cam.width, cam.height,
                        sh_degree=0, antialiased=False)
    splats = pack_splats(projected)
    step = 0.025  # pixels between the sampled offsets from the mean
    drawn = np.flatnonzero((projected.radii > 0).all(axis=1) & (projected.radii <= 12).all(axis=1))
    assert len(drawn) > 40
    for i in drawn[:40]:
        rx, ry = projected.radii[i] + 1  # the box of radii holds the footprint
        dx, dy = np.meshgrid(np.arange(-rx, rx + step / 2, step), np.arange(-ry, ry + step / 2, step))
        a, b, c = projected.conics[i].astype(np.float64)
        reached = projected.opacities[i] * np.exp(-(0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy)) >= 1 / 255
        if not reached.any():
            assert splats[i, REACH_X] < 0
            continue
        reach_x, reach_y = np.abs(dx[reached]).max(), np.abs(dy[reached]).max()
        assert reach_x <= splats[i, REACH_X] <= reach_x + step + 0.015
        assert reach_y <= splats[i, REACH_Y] <= reach_y + step + 0.015


def bin_reference(projected, width, height):
    """Tile lists from first principles: every visible Gaussian (both radii > 0) in each tile its box of radii
    touches (gsplat's float32 rule), tiles listing them by depth, ties by id."""
    tiles_x, tiles_y = -(-width // 16), -(-height // 16)
    lists = [[] for _ in range(tiles_x * tiles_y)]
    visible = np.flatnonzero((projected.radii > 0).all(axis=1))
    for g in visible[np.lexsort((visible, projected.depths[visible]))]:
        u, v = projected.means2d[g] / np.float32(16)
        ru, rv = projected.radii[g].astype(np.float32) / np.float32(16)
        x0, x1 = (min(max(0, int(f)), tiles_x) for f in (np.floor(u - ru), np.ceil(u + ru)))
        y0, y1 = (min(max(0, int(f)), tiles_y) for f in (np.floor(v - rv), np.ceil(v + rv)))
        for ty in range(y0, y1):
            for tx in range(x0, x1):
                lists[ty * tiles_x + tx].append(g)
    return np.cumsum([0] + [len(t) for t in lists]), np.array([g for t in lists for g in t], np.int32)


def test_tile_lists_match_a_reference_binning():
    from realtime.render.project import project
    from realtime.render.tiles import sort_and_bin

    cam = Camera(K=np.array([[60.0, 0, 37], [0, 55, 22], [0, 0, 1]]), viewmat=np.eye(4), width=75, height=45)
    g = random_scene(800, 0, seed=4, cam=camera(75, 45, 60))
    g[0][::7, 2] = g[0][0, 2]  # equal depths: ties go by id
    projected = project(*g, np.eye(4, dtype=np.float32), np.asarray(cam.K, np.float32), cam.width, cam.height,
                        sh_degree=0, antialiased=False)
    offsets, ids = sort_and_bin(projected, cam.width, cam.height)
    expected_offsets, expected_ids = bin_reference(projected, cam.width, cam.height)
    np.testing.assert_array_equal(offsets, expected_offsets)
    np.testing.assert_array_equal(ids, expected_ids)
    assert len(ids) > 2 * (projected.radii > 0).all(axis=1).sum()  # many Gaussians in several tiles


def test_large_splats_over_many_tiles_and_blocks_match_the_dense_reference():
    cam = camera(70, 54)  # partial tiles at the right and the bottom
    g = random_scene(60, 1, seed=2, cam=cam)
    g[2][:] *= 3.0  # most cover many tiles, and blocks of every tile
    result = render(*g, cam, background=(0.1, 0.4, 0.2), with_alpha=True, backend="cpu")
    ref_image, ref_alpha, _, unsure = reference_render(*g, cam, background=(0.1, 0.4, 0.2))
    sure = ~unsure
    assert unsure.sum() < 0.01 * unsure.size
    np.testing.assert_allclose(result.image[sure], np.clip(ref_image, 0, 1)[sure], atol=2e-5)
    np.testing.assert_allclose(result.alpha[sure], ref_alpha[sure], atol=2e-5)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_to_uint8_rounds_as_its_numpy_reference(dtype):
    from realtime.painter import to_uint8, to_uint8_reference

    rng = np.random.default_rng(1)
    image = rng.uniform(-0.3, 1.3, (64, 48, 3)).astype(dtype)
    image.reshape(-1)[:512] = ((np.arange(512) // 2) / 255.0 - 0.5 / 255.0).astype(dtype)  # on rounding boundaries
    image.reshape(-1)[512:1024] = np.nextafter(image.reshape(-1)[:512], dtype(2.0))  # and just above them
    np.testing.assert_array_equal(to_uint8(image), to_uint8_reference(image))
    np.testing.assert_array_equal(to_uint8(image[:, ::2]), to_uint8_reference(image[:, ::2]))  # not contiguous
    assert to_uint8(image).dtype == np.uint8 and to_uint8(image).shape == image.shape


def test_tiles_are_shared_as_bands_of_about_equal_cost():
    from realtime.render.cpu import _share_tiles

    rng = np.random.default_rng(5)
    counts = rng.integers(0, 400, 1024) * (rng.random(1024) < 0.6)  # many empty tiles, as around a head
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    starts = _share_tiles(offsets, np.int64(8))
    assert starts[0] == 0 and starts[-1] == 1024 and np.all(np.diff(starts) >= 0)
    cost = np.array([offsets[b] - offsets[a] + 32 * (b - a) for a, b in zip(starts[:-1], starts[1:])])
    assert cost.max() - cost.min() <= 2 * (counts.max() + 32)  # equal up to a tile at each end
    two = np.array([0, 10, 20], np.int64)  # two tiles of equal cost: one part each, the other parts empty
    np.testing.assert_array_equal(_share_tiles(two, np.int64(8)), [0, 1, 1, 1, 1, 2, 2, 2, 2])
