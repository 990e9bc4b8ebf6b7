"""Deformation in custom CUDA kernels (kernels/*.cu through cupy.RawModule), writing into torch tensors.

Per frame: one packed parameter upload (a pinned host slot, one async copy on torch's current stream) and
three launches on that stream: `rig_frame` (one block: joints, rotations, pose feature, skinning transforms),
`skin_vertices` (blend shapes + pose correctives + LBS, one vertex per lane) and `bind_gaussians` (one thread
per Gaussian: its triangle's frame from the 3 posed vertices, then mean, quaternion and scale). No host
synchronisation and no allocation per frame; the outputs are torch tensors over buffers allocated once and
handed to CuPy by DLPack, so gsplat reads them without a copy.

Identity is baked once per avatar: template + static offset + shape blend, and the joints of that mesh.
A frame whose `shape` differs from the avatar's adds the difference through the shape directions.

The host-side packing and the launch plan are plain functions so that they can be checked without a GPU;
CuPy is imported only when a deformer is built. A deformer that cannot be built here (no CuPy, no CUDA device,
kernels that do not compile, say without NVRTC, or do not run) raises CupyUnavailable, on which
`realtime.deform.make_deformer('auto')` falls back to the torch deformer on the same device.

Streams: a frame runs on whatever stream is current when `deform` is called. Every stream a deformer has run
on is recorded on its device buffers (`Tensor.record_stream`), so that when the deformer is freed while work of
its last frames is still queued on a side stream, torch's caching allocator does not hand those buffers to a
new tensor before that work is done.
"""

from __future__ import annotations

import importlib.resources
from dataclasses import dataclass

import numpy as np
import torch

from realtime.avatar.gaussians import Avatar
from realtime.deform.base import DeformedGaussians
from realtime.rig.model import Rig, RigParams

KERNELS = {"rig_frame": "rig_deform.cu", "skin_vertices": "rig_deform.cu", "bind_gaussians": "bind_gaussians.cu"}
# No --use_fast_math (approximate division, square root and transcendentals): the kernels are held to the
# float64 NumPy reference at 1e-5. CuPy itself adds -ftz=true to every compile (cupy.cuda.compiler), so float32
# denormals (magnitudes below 1.2e-38) flush to zero: a flush moves a value by less than that, and the kernels'
# quantities (metres, unit vectors, blend weights) live far above it.
COMPILE_OPTIONS = ("--std=c++17",)
PARAM_HEADER = 18       # pose (5 x 3) + translation (3), then expression and shape delta
RIG_FRAME_THREADS = 256
SKIN_LANES, SKIN_SLICES = 32, 8
BIND_THREADS = 256
STAGING_SLOTS = 4       # pinned parameter slots: the host waits only if the GPU is this many frames behind


def kernel_source(filename: str) -> str:
    """Text of a CUDA source shipped in the package (realtime/kernels, the repository's kernels/ folder)."""
    return importlib.resources.files("realtime").joinpath("kernels", filename).read_text()


@dataclass(frozen=True)
class Launch:
    """One kernel launch: grid and block sizes; args are buffer names (str) or np.int32 scalars, in order."""

    kernel: str
    grid: tuple[int, ...]
    block: tuple[int, ...]
    args: tuple


def pack_avatar(avatar: Avatar) -> dict[str, np.ndarray]:
    """The constant device buffers of an avatar, C-contiguous float32 / int32 (layouts in kernels/*.cu).

    template (3, V), dirs (E + P + S, 3, V), j_template (5, 3), j_dirs (15, E + S), parents (5,), weights (5, V),
    faces (F, 3), binding (N,), local_means (N, 3), local_quats (N, 4) unit, local_scales (N, 3) linear.
    """
    rig = avatar.rig
    f64 = lambda a: np.asarray(a, dtype=np.float64)  # noqa: E731
    template = f64(rig.v_template) + f64(avatar.static_offset) + np.einsum(
        "vck,k->vc", f64(rig.shape_dirs), f64(avatar.shape))
    blend_dirs = np.concatenate([f64(rig.expr_dirs), f64(rig.shape_dirs)], axis=2)   # (V, 3, E + S)
    dirs = np.concatenate([f64(rig.expr_dirs), f64(rig.pose_dirs), f64(rig.shape_dirs)], axis=2)
    quats = f64(avatar.local_quats)
    arrays = {
        "template": template.T,
        "dirs": dirs.transpose(2, 1, 0),
        "j_template": f64(rig.j_regressor) @ template,
        "j_dirs": np.einsum("jv,vck->jck", f64(rig.j_regressor), blend_dirs).reshape(3 * rig.n_joints, -1),
        "weights": f64(rig.weights).T,
        "local_means": f64(avatar.local_means),
        "local_quats": quats / np.linalg.norm(quats, axis=1, keepdims=True),
        "local_scales": np.exp(f64(avatar.log_scales)),
    }
    packed = {name: np.ascontiguousarray(a, dtype=np.float32) for name, a in arrays.items()}
    for name, a in (("parents", rig.parents), ("faces", rig.faces), ("binding", avatar.binding)):
        packed[name] = np.ascontiguousarray(a, dtype=np.int32)
    return packed


def frame_buffers(avatar: Avatar) -> dict[str, tuple[int, ...]]:
    """Shapes of the float32 buffers written every frame: the upload, the scratch and the outputs."""
    rig, n = avatar.rig, avatar.n_gaussians
    return {
        "params": (PARAM_HEADER + rig.n_expr + rig.n_shape,),
        "coeffs": (rig.n_expr + rig.pose_dirs.shape[2] + rig.n_shape,),
        "transforms": (rig.n_joints, 12),
        "vertices": (rig.n_vertices, 3),
        "means": (n, 3),
        "quats": (n, 4),
        "scales": (n, 3),
    }


def pack_params(params: RigParams, rig: Rig, baked_shape: np.ndarray, out: np.ndarray) -> bool:
    """Write one frame's parameters into `out` (PARAM_HEADER + E + S,) float32; True when the frame's
    shape differs from `baked_shape` (S,) float64, so the shape delta must be blended in.

    Checks sizes and finiteness as RigParams.check does (and raises its error), at a fraction of its cost.
    """
    n_expr = rig.n_expr
    layout = (("rotation", 0, 3), ("neck_pose", 3, 3), ("jaw_pose", 6, 3), ("eyes_pose", 9, 6),
              ("translation", 15, 3), ("expr", PARAM_HEADER, n_expr))
    if np.shape(params.shape) != (rig.n_shape,) or rig.n_joints != 5 or any(
            np.shape(getattr(params, name)) != (size,) for name, _, size in layout):
        params.check(rig)
    for name, start, size in layout:
        out[start:start + size] = getattr(params, name)
    delta = np.asarray(params.shape, dtype=np.float64) - baked_shape
    shape_active = bool(delta.any())
    if shape_active:
        out[PARAM_HEADER + n_expr:] = delta
    if not np.isfinite(out[:out.shape[0] if shape_active else PARAM_HEADER + n_expr]).all():
        params.check(rig)
    return shape_active


def launch_plan(rig: Rig, n_gaussians: int, shape_active: bool) -> list[Launch]:
    """The three launches of one frame, in stream order."""
    i32 = np.int32
    n_v, n_expr, n_shape, n_pose = rig.n_vertices, rig.n_expr, rig.n_shape, rig.pose_dirs.shape[2]
    n_shape_active = n_shape if shape_active else 0
    blocks = lambda n, per: (-(-n // per),)  # noqa: E731
    return [
        Launch("rig_frame", (1,), (RIG_FRAME_THREADS,),
               ("params", "j_template", "j_dirs", "parents", i32(n_expr), i32(n_shape), i32(n_shape_active),
                i32(n_pose), "coeffs", "transforms")),
        Launch("skin_vertices", blocks(n_v, SKIN_LANES), (SKIN_LANES, SKIN_SLICES),
               ("template", "dirs", "coeffs", i32(n_expr + n_pose + n_shape_active), "weights", "transforms",
                i32(n_v), "vertices")),
        Launch("bind_gaussians", blocks(n_gaussians, BIND_THREADS), (BIND_THREADS,),
               ("vertices", "faces", "binding", "local_means", "local_quats", "local_scales", i32(n_gaussians),
                "means", "quats", "scales")),
    ]


class CupyUnavailable(RuntimeError):
    """The CuPy deformation backend cannot run here (says what is missing or what failed)."""


def _import_cupy():
    try:
        import cupy
    except ImportError as error:
        raise CupyUnavailable("the cupy deformation backend needs CuPy: pip install 'realtime-avatar[gpu]' "
                              "(cupy-cuda13x) on a machine with CUDA") from error
    return cupy


def compile_kernels(cupy) -> dict:
    """Every kernel of KERNELS, compiled by NVRTC for CuPy's current device (CuPy keeps the binaries in its disk
    cache); CupyUnavailable saying why when they cannot be (no NVRTC library, a compile error)."""
    try:
        modules = {f: cupy.RawModule(code=kernel_source(f), options=COMPILE_OPTIONS)
                   for f in sorted(set(KERNELS.values()))}
        return {name: modules[f].get_function(name) for name, f in KERNELS.items()}
    except Exception as error:  # noqa: BLE001 - CompileException, RuntimeError (NVRTC missing), CUDA errors
        raise CupyUnavailable(f"the cupy deformation kernels did not compile with CuPy {cupy.__version__}: "
                              f"{type(error).__name__}: {error}") from error


class CupyDeformer:
    """The avatar on one CUDA device; `deform` queues a frame on torch's current stream and returns at once."""

    backend = "cupy"

    def __init__(self, avatar: Avatar, device: str | torch.device | int | None = None):
        cupy = _import_cupy()
        if not torch.cuda.is_available():
            raise CupyUnavailable("the cupy deformation backend needs a CUDA device; torch sees none")
        device = torch.device("cuda" if device is None else device)
        if device.type != "cuda":
            raise ValueError(f"the cupy deformation backend runs on CUDA devices, not {device}")
        self.device = torch.device("cuda", torch.cuda.current_device() if device.index is None else device.index)
        self._cupy = cupy
        self._rig = avatar.rig
        self._baked_shape = np.asarray(avatar.shape, dtype=np.float64)
        self._cupy_device = cupy.cuda.Device(self.device.index)
        with self._cupy_device:
            kernels = compile_kernels(cupy)
            self.buffers = {name: self._upload(a) for name, a in pack_avatar(avatar).items()}
            for name, shape in frame_buffers(avatar).items():
                self.buffers[name] = torch.empty(shape, dtype=torch.float32, device=self.device)
            arrays = {name: cupy.from_dlpack(t) for name, t in self.buffers.items()}
        self._plans = {active: [(kernels[lc.kernel], lc.grid, lc.block,
                                 tuple(arrays[a] if isinstance(a, str) else a for a in lc.args))
                                for lc in launch_plan(avatar.rig, avatar.n_gaussians, active)]
                       for active in (False, True)}
        self._staging = torch.empty((STAGING_SLOTS,) + frame_buffers(avatar)["params"], dtype=torch.float32,
                                    pin_memory=True)
        self._staging_host = self._staging.numpy()
        self._staged = [torch.cuda.Event() for _ in range(STAGING_SLOTS)]
        self._frame = 0
        self._streams: dict[int, object] = {}
        t = self.buffers
        self._output = DeformedGaussians(means=t["means"], quats=t["quats"], scales=t["scales"],
                                         vertices=t["vertices"])
        self._check_a_frame(avatar)

    def _check_a_frame(self, avatar: Avatar) -> None:
        """Run one frame of the neutral pose and wait for it: CupyUnavailable when the compiled kernels do not
        launch or run on this device, so that it shows now and not on the first frame of a stream."""
        params = RigParams.neutral(self._rig, np.float32)
        params.shape = np.asarray(avatar.shape, dtype=np.float32)
        try:
            self.deform(params)
            torch.cuda.current_stream(self.device).synchronize()
        except Exception as error:  # noqa: BLE001 - CuPy's and the driver's errors for a launch that failed
            raise CupyUnavailable(f"the cupy deformation kernels compiled but did not run on {self.device}: "
                                  f"{type(error).__name__}: {error}") from error

    def _upload(self, a: np.ndarray) -> torch.Tensor:
        # zero-size arrays (a rig without pose correctives or expressions) get one element: never read
        return torch.from_numpy(a if a.size else np.zeros(1, a.dtype)).to(self.device)

    def _stream(self, stream: torch.cuda.Stream):
        """CuPy's handle on torch's `stream`; the first time, the stream is recorded on every device buffer
        (see the module doc: buffers freed with work still queued there wait for it)."""
        pointer = stream.cuda_stream
        if pointer not in self._streams:
            for tensor in self.buffers.values():
                tensor.record_stream(stream)
            self._streams[pointer] = self._cupy.cuda.ExternalStream(pointer, self.device.index)
        return self._streams[pointer]

    def deform(self, params: RigParams) -> DeformedGaussians:
        """Queue one frame on torch's current stream of this device; the returned tensors are this
        deformer's buffers (the same every frame), ready for work queued after it on that stream."""
        slot = self._frame % STAGING_SLOTS
        self._frame += 1
        self._staged[slot].synchronize()  # the copy that last read this slot; long done unless the GPU lags
        shape_active = pack_params(params, self._rig, self._baked_shape, self._staging_host[slot])
        stream = torch.cuda.current_stream(self.device)
        self.buffers["params"].copy_(self._staging[slot], non_blocking=True)
        self._staged[slot].record(stream)
        with self._cupy_device, self._stream(stream):
            for kernel, grid, block, args in self._plans[shape_active]:
                kernel(grid, block, args)
        return self._output
