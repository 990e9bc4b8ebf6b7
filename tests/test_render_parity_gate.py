"""The render parity gate (tests/render_checks.py) rejects the wrong pictures a PSNR-only gate at 40 dB let through,
on the scene and camera the GPU parity test uses, and two independent implementations of the same semantics pass
it (our torch splatter against the CPU renderer), so it is a gate a right renderer can meet."""

import numpy as np
import pytest
import torch

from render_checks import SCENE, psnr, same_picture, turned
from realtime.camera import Camera, head_and_shoulders_camera
from realtime.render import get_renderer, render
from realtime.render.synthetic import head_scene

OPTIONS = {"background": (0.1, 0.2, 0.3)}


@pytest.fixture(scope="module")
def scene():
    scene = head_scene(SCENE["n"], sh_degree=SCENE["sh_degree"], seed=SCENE["seed"])
    centre = (scene.vertices.min(0) + scene.vertices.max(0)) / 2
    return scene, turned(head_and_shoulders_camera(scene.vertices, 512, 512), centre)


def draw(scene, camera, sh=None):
    return render(scene.means, scene.quats, scene.scales, scene.opacities, scene.sh if sh is None else sh, camera,
                  backend="cpu", **OPTIONS).image


def test_band_1_sh_signs_flipped_fails_the_gate(scene):
    scene, camera = scene
    flipped = scene.sh.copy()
    flipped[:, 1:4] *= -1
    expected, wrong = draw(scene, camera), draw(scene, camera, flipped)
    assert psnr(wrong, expected) > 40.0  # what the old gate let through
    ok, figures = same_picture(wrong, expected)
    assert not ok, figures


def test_a_principal_point_half_a_pixel_off_fails_the_gate(scene):
    scene, camera = scene
    K = camera.K.copy()
    K[0, 2] += 0.5
    expected = draw(scene, camera)
    wrong = draw(scene, Camera(K=K, viewmat=camera.viewmat, width=camera.width, height=camera.height))
    assert psnr(wrong, expected) > 40.0
    ok, figures = same_picture(wrong, expected)
    assert not ok, figures


def test_an_independent_splatter_of_the_same_semantics_passes_the_gate(scene):
    scene, camera = scene
    dc = scene.sh[:, :1]  # the torch splatter draws SH degree 0
    expected = draw(scene, camera, dc)
    inputs = [torch.from_numpy(np.ascontiguousarray(a, np.float32))
              for a in (scene.means, scene.quats, scene.scales, scene.opacities, dc)]
    got = get_renderer("cpu", differentiable=True).render(*inputs, camera, **OPTIONS).numpy().image
    ok, figures = same_picture(np.clip(got, 0.0, 1.0), expected)
    assert ok, figures


def test_pictures_of_different_sizes_fail_the_gate():
    ok, figures = same_picture(np.zeros((4, 4, 3)), np.zeros((4, 5, 3)))
    assert not ok and "expected (4, 5, 3), got (4, 4, 3)" in figures
    assert same_picture(np.full((4, 4, 3), 7, np.uint8), np.full((4, 4, 3), 9, np.uint8))[0] is False
    assert same_picture(np.full((4, 4, 3), 7, np.uint8), np.full((4, 4, 3), 7, np.uint8))[0] is True
