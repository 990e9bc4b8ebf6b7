"""Picking the CUDA render backend probes gsplat's real CUDA extension and one real picture, and 'auto' falls back
to the CPU renderer, saying why, when gsplat cannot draw; the gsplat renderer's own plumbing (camera and
background kept on the device, the arguments `rasterization` gets) checked against the CPU renderer.

No GPU here: a fake `gsplat` package stands in (written to a folder on sys.path, so that gsplat 1.5.3's
`gsplat.cuda._backend` import is what runs), with `cuda_usable` patched to say a CUDA device is present; where
the renderer's plumbing is checked, the fake's `rasterization` draws with our CPU renderer and torch CPU tensors
stand in for the device's.
"""

import logging
import sys

import numpy as np
import pytest
import torch

from realtime.app.serve import build_live
from realtime.avatar.native import save_avatar
from realtime.avatar.synthetic import random_avatar
from realtime.camera import Camera, frontal_camera
from realtime.painter import AvatarPainter
from realtime.render import BackendUnavailable, GsplatRenderer, render, resolve_backend
from realtime.render import backend as backend_module
from realtime.render import gsplat_backend
from realtime.rig.synthetic import synthetic_rig

MISSING = "_C = None  # what gsplat 1.5.3 leaves when it finds no CUDA toolkit\n"
BUILT = "_C = object()\n"
DRAWS_ON_THE_CPU = '''
import torch

CALLS = []


def rasterization(means, quats, scales, opacities, colors, viewmats, Ks, width, height, *, backgrounds,
                  sh_degree, rasterize_mode, **options):
    from realtime.camera import Camera
    from realtime.render import render

    CALLS.append({"viewmats": viewmats, "Ks": Ks, "backgrounds": backgrounds, "sh_degree": sh_degree, **options})
    camera = Camera(K=Ks[0].double().numpy(), viewmat=viewmats[0].double().numpy(), width=width, height=height)
    out = render(*(t.numpy() for t in (means, quats, scales, opacities, colors)), camera, sh_degree=sh_degree,
                 background=backgrounds[0].numpy(), antialiased=rasterize_mode == "antialiased", backend="cpu",
                 with_alpha=True)
    return torch.from_numpy(out.image)[None], torch.from_numpy(out.alpha)[None, ..., None], {}
'''
AS_IN_GSPLAT = '''
def rasterization(*args, **kwargs):
    from .cuda._backend import _C  # gsplat's lazy CUDA functions: getattr(_C, name)(...)

    return _C.rasterize_to_pixels_fwd(*args)
'''


def _reset_caches() -> None:
    gsplat_backend.extension_problem.cache_clear()
    backend_module._renderer.cache_clear()
    backend_module._log_fallback.cache_clear()


@pytest.fixture
def fake_gsplat(tmp_path, monkeypatch):
    """Installs a fake gsplat: fake_gsplat(extension source, package source); a CUDA device 'is present'."""

    def install(extension: str, package: str = AS_IN_GSPLAT):
        root = tmp_path / "site"
        (root / "gsplat" / "cuda").mkdir(parents=True)
        (root / "gsplat" / "__init__.py").write_text(package)
        (root / "gsplat" / "cuda" / "__init__.py").write_text("")
        (root / "gsplat" / "cuda" / "_backend.py").write_text(extension)
        monkeypatch.syspath_prepend(str(root))

    for name in [m for m in sys.modules if m == "gsplat" or m.startswith("gsplat.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setattr(gsplat_backend, "cuda_usable", lambda: True)
    _reset_caches()
    yield install
    _reset_caches()
    for name in [m for m in sys.modules if m == "gsplat" or m.startswith("gsplat.")]:
        del sys.modules[name]


def fallbacks(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "falls back to the CPU renderer" in r.getMessage()]


def test_auto_falls_back_when_gsplats_extension_is_missing(fake_gsplat, caplog):
    fake_gsplat(MISSING)
    with caplog.at_level(logging.INFO, logger="realtime.render"):
        assert resolve_backend("auto") == "cpu"
        assert resolve_backend("auto") == "cpu"
    assert "gsplat: loading its CUDA extension" in caplog.text  # said before the build, which takes minutes
    [warning] = fallbacks(caplog)  # once, however often 'auto' is asked
    assert "extension is missing" in warning and "nvcc" in warning
    with pytest.raises(BackendUnavailable, match="extension is missing"):
        resolve_backend("cuda")


def test_a_failed_extension_build_is_reported_and_not_retried(fake_gsplat, caplog):
    fake_gsplat("BUILDS = 1\nraise RuntimeError(\"Error building extension 'gsplat_cuda'\")\n")
    with caplog.at_level(logging.WARNING, logger="realtime.render"):
        assert resolve_backend("auto") == "cpu"
    assert "failed to build or load (RuntimeError: Error building extension 'gsplat_cuda')" in fallbacks(caplog)[0]
    with pytest.raises(BackendUnavailable, match="Error building extension"):
        resolve_backend("cuda")
    assert "gsplat.cuda._backend" not in sys.modules


def test_a_long_extension_build_says_it_is_still_going(fake_gsplat, caplog, monkeypatch):
    fake_gsplat("import time\ntime.sleep(0.5)\n" + BUILT, DRAWS_ON_THE_CPU)
    monkeypatch.setattr(gsplat_backend, "PROGRESS_EVERY_S", 0.1)
    with caplog.at_level(logging.INFO, logger="realtime.render"):
        assert gsplat_backend.extension_problem() is None
    messages = [r.getMessage() for r in caplog.records]
    assert messages[0].startswith("gsplat: loading its CUDA extension")
    assert any("still going after" in m for m in messages[1:-1]), messages
    assert "finished in" in messages[-1]


def test_the_live_loop_with_backend_auto_and_an_unusable_gsplat_streams_on_the_cpu(fake_gsplat, tmp_path, caplog):
    """`realtime serve --driver tour --backend auto` (its wiring, without the WebRTC server) keeps producing frames."""
    fake_gsplat(MISSING)
    avatar_file = tmp_path / "avatar.rtav"
    save_avatar(random_avatar(synthetic_rig(), 500, seed=2), avatar_file)
    with caplog.at_level(logging.WARNING, logger="realtime.render"):
        pipeline, feed = build_live([str(avatar_file)], "tour", 128, "auto")
    assert pipeline.painter.backend == "cpu" and fallbacks(caplog)
    pipeline.start()
    feed.start()
    try:
        first = pipeline.wait_frame(timeout=60)
        assert first is not None, "no frame from the live loop"
        later = pipeline.wait_frame(after=first.index + 2, timeout=30)
        assert later is not None and later.image.shape == (128, 128, 3)
    finally:
        feed.stop()
        pipeline.stop()
    stats = pipeline.stats()
    assert stats.backend == "cpu" and stats.render_error is None and stats.frames >= 4


# ------------------------------------------------------------------ the renderer's plumbing, emulated on the CPU


def on_cpu_tensors() -> GsplatRenderer:
    """A GsplatRenderer of the installed fake gsplat, on torch CPU tensors standing in for the device's."""
    renderer = GsplatRenderer()
    renderer._device = torch.device("cpu")  # the one stand-in
    return renderer


@pytest.fixture
def emulated(fake_gsplat):
    """A GsplatRenderer whose gsplat draws with the CPU renderer, and the calls its `rasterization` got."""
    fake_gsplat(BUILT, DRAWS_ON_THE_CPU)
    return on_cpu_tensors(), sys.modules["gsplat"].CALLS


def _gaussians(n=200, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.normal(scale=0.05, size=(n, 3)), rng.normal(size=(n, 4)), np.full((n, 3), 0.01),
            rng.uniform(0.3, 0.9, n), rng.normal(scale=0.5, size=(n, 4, 3)))


def test_gsplat_gets_the_camera_and_background_as_the_cpu_renderer_draws_them(emulated):
    renderer, calls = emulated
    camera = frontal_camera(np.zeros(3), 0.5, size=48)
    off_centre = Camera(K=camera.K + np.array([[0, 0, 1.5], [0, 0, -2.0], [0, 0, 0]]), viewmat=camera.viewmat,
                        width=64, height=40)
    for cam in (camera, off_centre):
        got = renderer.render(*_gaussians(), cam, background=(0.1, 0.2, 0.3), with_alpha=True)
        expected = render(*_gaussians(), cam, background=(0.1, 0.2, 0.3), with_alpha=True, backend="cpu")
        np.testing.assert_allclose(got.numpy().image, expected.image, atol=1e-6)
        np.testing.assert_allclose(got.numpy().alpha, expected.alpha, atol=1e-6)
    call = calls[-1]
    assert call["viewmats"].shape == (1, 4, 4) and call["Ks"].shape == (1, 3, 3)
    assert call["backgrounds"].shape == (1, 3) and call["sh_degree"] == 1


def test_a_steady_camera_and_background_are_uploaded_once(emulated, monkeypatch):
    renderer, calls = emulated
    uploads = []
    as_input = renderer.as_input
    monkeypatch.setattr(renderer, "as_input", lambda value: uploads.append(np.shape(value)) or as_input(value))
    camera = frontal_camera(np.zeros(3), 0.5, size=32)
    inputs = [as_input(a) for a in _gaussians()]  # on the device already, as the painter passes them
    for _ in range(3):
        renderer.render(*inputs, camera, background=(0.1, 0.2, 0.3))
    same = Camera(K=camera.K.copy(), viewmat=camera.viewmat.copy(), width=32, height=32)
    renderer.render(*inputs, same, background=(0.1, 0.2, 0.3))  # another camera of equal values: no upload
    constants = [shape for shape in uploads if shape in ((25,), (3,))]
    assert constants == [(25,), (3,)], uploads
    assert calls[0]["viewmats"].data_ptr() == calls[-1]["viewmats"].data_ptr()
    renderer.render(*inputs, frontal_camera(np.zeros(3), 0.6, size=32), background=(0.1, 0.2, 0.3))
    assert [shape for shape in uploads if shape in ((25,), (3,))] == [(25,), (3,), (25,)]


def test_warm_up_draws_one_real_picture_and_says_why_it_cannot(emulated, monkeypatch):
    renderer, calls = emulated
    renderer.warm_up()
    assert len(calls) == 1
    renderer.warm_up()
    assert len(calls) == 1  # once per renderer
    blank = on_cpu_tensors()
    drawn = []
    monkeypatch.setattr(sys.modules["gsplat"], "rasterization", lambda *a, **k: drawn.append(1) or (
        torch.zeros(1, 16, 16, 3), torch.zeros(1, 16, 16, 1), {}))
    with pytest.raises(BackendUnavailable, match=r"blank picture: expected an opaque Gaussian .* got alpha 0"):
        blank.warm_up()
    with pytest.raises(BackendUnavailable, match="blank picture"):
        blank.warm_up()  # the outcome is kept: not drawn again
    assert len(drawn) == 1


def test_warm_up_catches_the_attribute_error_of_an_extension_without_its_functions(fake_gsplat):
    fake_gsplat(BUILT)  # the extension 'loads', but has none of gsplat's functions
    with pytest.raises(BackendUnavailable, match=r"first rasterization failed \(AttributeError: 'object' object"):
        on_cpu_tensors().warm_up()


def test_the_painter_built_with_auto_and_an_unusable_gsplat_draws_on_the_cpu(fake_gsplat):
    fake_gsplat(MISSING)
    avatar = random_avatar(synthetic_rig(), 300, seed=1)
    painter = AvatarPainter(avatar, frontal_camera(avatar.rig.v_template.mean(0), 0.5, size=32), backend="auto")
    assert (painter.backend, painter.deformer_backend) == ("cpu", "numba")
