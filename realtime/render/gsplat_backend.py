"""The CUDA backend: gsplat 1.5.3's `rasterization` with the CPU renderer's semantics, for drawing frames or,
differentiable, for training.

gsplat is imported lazily (it is an optional extra and needs a CUDA device). `import gsplat` is not enough to
draw: gsplat 1.5.3 from PyPI builds its CUDA extension on the first import of `gsplat.cuda._backend` (minutes;
nvcc and ninja, steered by TORCH_CUDA_ARCH_LIST and MAX_JOBS), and where it finds no CUDA toolkit it leaves the
extension out (`_C` is None), so that the first rasterization dies with an AttributeError. So the backend counts
as usable only once that extension is loaded (`require_cuda_backend`, which logs while it builds) and one tiny
picture came out right (`GsplatRenderer.warm_up`): a backend that cannot draw shows when a renderer is picked,
never in the middle of a stream.

Every tensor is moved to the CUDA device before it reaches gsplat, whose CUDA ops must never see CPU tensors.
The camera and background of a frame are uploaded once and kept on the device (the most recent few of each).
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np

from realtime.camera import Camera, frontal_camera
from realtime.render.constants import EPS2D, FAR_PLANE, NEAR_PLANE, TILE_SIZE
from realtime.render.base import BackendUnavailable, RenderResult, check_inputs

log = logging.getLogger(__name__)

GSPLAT_HINT = "pip install gsplat==1.5.3 (its CUDA code compiles on first use: needs nvcc and ninja)"
EXTENSION_MODULE = "gsplat.cuda._backend"  # importing it builds (or loads the built) extension, as `_C`
PROGRESS_EVERY_S = 15.0  # how often a long extension build says it is still going
CACHED_CONSTANTS = 32    # cameras and backgrounds kept on the device, the most recently used


@functools.cache
def cuda_usable() -> bool:
    """True when torch sees a CUDA device and a tiny allocation on it works (probed once)."""
    try:
        import torch
    except ImportError:
        return False
    if not torch.cuda.is_available():
        return False
    try:
        probe = torch.ones(1, device="cuda") + 1
        torch.cuda.synchronize()
        return bool(probe.item() == 2)
    except Exception:  # noqa: BLE001 - a broken driver or runtime shows up as any error here
        return False


def import_gsplat() -> Any:
    """The gsplat module, or BackendUnavailable saying how to install it."""
    try:
        import gsplat
    except ImportError as exc:
        raise BackendUnavailable(f"the CUDA render backend needs gsplat, which does not import ({exc}); "
                                 f"{GSPLAT_HINT}") from None
    return gsplat


@contextlib.contextmanager
def progress(what: str) -> Iterator[None]:
    """Log `what` as it starts, every PROGRESS_EVERY_S seconds while the block runs, and how long it took."""
    start = time.monotonic()
    done = threading.Event()

    def beat() -> None:
        while not done.wait(PROGRESS_EVERY_S):
            log.info("%s: still going after %.0f s", what, time.monotonic() - start)

    log.info("%s ...", what)
    beater = threading.Thread(target=beat, name="progress", daemon=True)
    beater.start()
    try:
        yield
    finally:
        done.set()
        beater.join()
        log.info("%s: finished in %.1f s", what, time.monotonic() - start)


@functools.cache
def extension_problem() -> str | None:
    """Why gsplat's CUDA extension cannot be used, or None once it is loaded. Tried once per process (a build
    that failed is not tried again); the first time on a machine this is gsplat compiling its CUDA code."""
    with progress(f"gsplat: loading its CUDA extension ({EXTENSION_MODULE}; the first time on a machine it "
                  f"compiles, which takes minutes)"):
        try:
            extension = importlib.import_module(EXTENSION_MODULE)
        except Exception as exc:  # noqa: BLE001 - a failed build raises whatever the toolchain raised
            return f"gsplat's CUDA extension failed to build or load ({type(exc).__name__}: {exc})"
    if getattr(extension, "_C", None) is None:
        return ("gsplat's CUDA extension is missing: gsplat builds it on first use and found no CUDA toolkit "
                "(it needs nvcc, through CUDA_HOME or PATH, and ninja)")
    return None


def require_cuda_backend() -> Any:
    """The gsplat module, its CUDA extension loaded, when the CUDA backend can run here; BackendUnavailable
    saying what is missing."""
    if not cuda_usable():
        raise BackendUnavailable("the CUDA render backend needs a usable CUDA device, and torch finds none "
                                 "(use backend='cpu' or 'auto')")
    gsplat = import_gsplat()
    problem = extension_problem()
    if problem is not None:
        raise BackendUnavailable(f"the CUDA render backend cannot draw: {problem}; {GSPLAT_HINT}")
    return gsplat


class GsplatRenderer:
    """gsplat on one CUDA device: takes NumPy arrays or tensors anywhere, gives torch tensors on the device.

    differentiable: keep autograd's graph from the inputs to the image (for training; the image is then not
    clamped), instead of drawing under inference mode.
    """

    backend = "cuda"

    def __init__(self, device: str = "cuda", differentiable: bool = False) -> None:
        import torch

        self._torch = torch
        self._device = torch.device(device)
        if self._device.type != "cuda":
            raise BackendUnavailable(f"GsplatRenderer runs on a CUDA device, not {device!r}")
        self._gsplat = require_cuda_backend()
        self.device = str(self._device)
        self.differentiable = differentiable
        self._constants: OrderedDict[bytes, Any] = OrderedDict()
        self._warm_up_problem: str | None = None
        self._warmed_up = False

    def as_input(self, value: Any) -> Any:
        """A contiguous float32 tensor on this renderer's device, from a NumPy array or a tensor anywhere (a
        float32 tensor already there is returned as it is, its autograd graph kept)."""
        torch = self._torch
        if not isinstance(value, torch.Tensor):
            value = torch.from_numpy(np.ascontiguousarray(value, dtype=np.float32))
        return value.to(device=self._device, dtype=torch.float32).contiguous()

    def warm_up(self) -> None:
        """Draw one Gaussian at the centre of a tiny picture and wait for it (once per renderer); BackendUnavailable
        saying why when it fails or comes out blank (an extension built for another GPU, a broken driver)."""
        if not self._warmed_up and self._warm_up_problem is None:
            camera = frontal_camera(np.zeros(3), distance=1.0, size=TILE_SIZE)
            one = (np.zeros((1, 3)), np.array([[1.0, 0.0, 0.0, 0.0]]), np.full((1, 3), 0.05), np.ones(1),
                   np.ones((1, 1, 3)))
            try:
                alpha = self.render(*one, camera, with_alpha=True).numpy().alpha
            except Exception as exc:  # noqa: BLE001 - whatever the extension or the driver raised
                self._warm_up_problem = f"gsplat's first rasterization failed ({type(exc).__name__}: {exc})"
            else:
                centre = float(alpha[TILE_SIZE // 2, TILE_SIZE // 2])
                if centre > 0.5:
                    self._warmed_up = True
                else:
                    self._warm_up_problem = (f"gsplat's first rasterization drew a blank picture: expected an "
                                             f"opaque Gaussian at the centre (alpha > 0.5), got alpha {centre:.3g}")
        if self._warm_up_problem is not None:
            raise BackendUnavailable(f"the CUDA render backend cannot draw: {self._warm_up_problem}")

    def render(self, means: Any, quats: Any, scales: Any, opacities: Any, sh: Any, camera: Camera, *,
               sh_degree: int | None = None, background: Any = (0.0, 0.0, 0.0), antialiased: bool = False,
               with_alpha: bool = False) -> RenderResult:
        """Draw N Gaussians (see `realtime.render.render`): image (H, W, 3) and alpha (H, W) as float32 tensors
        on the device."""
        degree, bg = check_inputs(means, quats, scales, opacities, sh, sh_degree, background)
        means, quats, scales, opacities, sh = (self.as_input(a) for a in (means, quats, scales, opacities, sh))
        view = self._on_device(b"camera", np.concatenate([np.ravel(camera.viewmat), np.ravel(camera.K)]))
        viewmats, Ks = view[:16].view(1, 4, 4), view[16:].view(1, 3, 3)
        backgrounds = self._on_device(b"background", bg)[None]
        with contextlib.nullcontext() if self.differentiable else self._torch.inference_mode():
            colors, alphas, _ = self._gsplat.rasterization(
                means, quats, scales, opacities, sh, viewmats, Ks, camera.width, camera.height,
                near_plane=NEAR_PLANE, far_plane=FAR_PLANE, eps2d=EPS2D, sh_degree=degree, packed=False,
                tile_size=TILE_SIZE, backgrounds=backgrounds, render_mode="RGB",
                rasterize_mode="antialiased" if antialiased else "classic")
        image = colors[0] if self.differentiable else colors[0].clamp(0.0, 1.0)
        return RenderResult(image=image, alpha=alphas[0, ..., 0] if with_alpha else None)

    def _on_device(self, kind: bytes, values: np.ndarray) -> Any:
        """`values` as a float32 tensor on the device, uploaded the first time these exact values of this kind
        come, then kept (the CACHED_CONSTANTS most recently used), so a steady camera costs no copy a frame."""
        values = np.ascontiguousarray(values, dtype=np.float32)
        key = kind + values.tobytes()
        tensor = self._constants.get(key)
        if tensor is None:
            tensor = self.as_input(values)
            self._constants[key] = tensor
            if len(self._constants) > CACHED_CONSTANTS:
                self._constants.popitem(last=False)
        else:
            self._constants.move_to_end(key)
        return tensor
