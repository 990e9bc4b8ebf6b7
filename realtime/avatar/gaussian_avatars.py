"""Import and export of GaussianAvatars' trained avatars (``point_cloud.ply`` + ``flame_param.npz``).

Facts, all read from the GaussianAvatars repository (ShenhanQian/GaussianAvatars):

* ``scene/gaussian_model.py`` (``save_ply`` / ``load_ply`` / ``construct_list_of_attributes``):
  the PLY holds one ``vertex`` element, every property a 32-bit float, in this order:
  ``x y z nx ny nz f_dc_0..2 f_rest_0..(3(K-1)-1) opacity scale_0..2 rot_0..3 binding_0``.
  Normals are written as zeros. ``f_rest`` is the (N, 3, K-1) array flattened, i.e. channel-major:
  ``f_rest_{c(K-1)+k}`` is SH coefficient k+1 of colour channel c (all R, then G, then B).
  ``binding_0`` is the parent face, stored as a float and read back as int32.
  The activations: scale = exp(scale_i) times the face scale, opacity = sigmoid(opacity),
  rotation = normalize(face quaternion) ⊗ normalize(rot) with rot as (w, x, y, z), and
  xyz a local position: world = face_rotation · xyz · face_scale + face_center.
  These are exactly our Avatar's local_means, log_scales, opacity_logits, local_quats, sh.
* ``scene/flame_gaussian_model.py``: ``flame_param.npz`` holds ``shape`` (300,), per-timestep
  ``expr`` (T, 100), ``rotation`` / ``neck_pose`` / ``jaw_pose`` (T, 3), ``eyes_pose`` (T, 6),
  ``translation`` (T, 3), ``static_offset`` (1, V, 3) (the tracker's (1, 5023, 3) offsets, zero-padded
  to the teeth vertices), and ``dynamic_offset`` (T, V, 3), which the FLAME forward pass ignores.
  The mesh is FLAME 2023 with 300 shape and 100 expression components, with teeth appended
  (:mod:`realtime.rig.teeth`), so bindings past 9975 are teeth faces.
* ``flame_model/flame.py`` (``FlameHead.forward``): v_shaped = template + blend shapes + static_offset,
  joints regressed from v_shaped (expression and offsets included), then pose correctives and LBS,
  translation added last: the same function as :func:`realtime.rig.lbs.forward`.

An import keeps the identity (shape, static_offset); poses and expressions are per-timestep
data, read with :func:`read_flame_param` and :meth:`FlameParamFile.frame`. An export writes
the same layout (all PLY properties as float32, as GaussianAvatars does), with one neutral
(or given) timestep, so GaussianAvatars' own viewer can open it. Import → export → import is
bit-exact for float32 avatars.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from realtime.files import atomic_write
from realtime.avatar.gaussians import Avatar, AvatarError, sh_coeff_count
from realtime.avatar.ply import read_ply, write_ply
from realtime.camera import Camera, frontal_camera
from realtime.npzfile import read_npz
from realtime.rig.lbs import forward
from realtime.rig.model import Rig, RigParams
from realtime.rig.teeth import add_teeth

PLY_NAME = "point_cloud.ply"
FLAME_PARAM_NAME = "flame_param.npz"
_POSE_KEYS = {"rotation": 3, "neck_pose": 3, "jaw_pose": 3, "eyes_pose": 6, "translation": 3}


@dataclass
class FlameParamFile:
    """Contents of a flame_param.npz, fitted to a rig.

    shape:         (S,) identity coefficients, S = rig.n_shape
    static_offset: (V, 3) per-vertex identity offsets, V = rig.n_vertices
    frames:        per-timestep arrays: expr (T, E) and rotation, neck_pose, jaw_pose, eyes_pose, translation (T, k)
    """

    shape: np.ndarray
    static_offset: np.ndarray
    frames: dict[str, np.ndarray]

    @property
    def n_frames(self) -> int:
        return self.frames["expr"].shape[0]

    def frame(self, t: int) -> RigParams:
        """The rig parameters of timestep `t`."""
        if not 0 <= t < self.n_frames:
            raise AvatarError(f"timestep {t} out of range: the file holds {self.n_frames}")
        return RigParams(shape=self.shape, **{k: v[t] for k, v in self.frames.items()})


def _rows(value: np.ndarray, width: int | None, key: str, path: Path) -> np.ndarray:
    """(T, k) per-timestep values from (k,) or (T, k); with `width`, coefficients are zero-padded to it."""
    value = value[None] if value.ndim == 1 else value
    if value.ndim != 2 or value.shape[0] < 1:
        raise AvatarError(f"{path}: '{key}' must be (k,) or (T, k), got {value.shape}")
    if width is None:
        return value
    if value.shape[1] > width:
        raise AvatarError(f"{path}: '{key}' has {value.shape[1]} coefficients, the rig only {width} "
                          f"(load FLAME with more components)")
    return np.pad(value, ((0, 0), (0, width - value.shape[1])))


def read_flame_param(path: str | Path, rig: Rig) -> FlameParamFile:
    """Read GaussianAvatars' flame_param.npz for `rig` (FLAME with teeth, as the avatar was trained on).

    The identity is the first row of `shape`; coefficients fewer than the rig's are zero-padded.
    A static_offset covering fewer vertices than the rig (FLAME's 5023 without the teeth) is
    zero-padded, as GaussianAvatars does; without one it is zero.
    """
    path = Path(path)
    data = read_npz(path, ("shape", "expr", *_POSE_KEYS), AvatarError, "not a readable flame_param.npz")
    for key in ("shape", "expr", "static_offset", *_POSE_KEYS):
        if key in data and data[key].dtype.kind != "f":
            raise AvatarError(f"{path}: '{key}' must hold floats, got {data[key].dtype}")
    shape = _rows(data["shape"], rig.n_shape, "shape", path)[0]
    frames = {"expr": _rows(data["expr"], rig.n_expr, "expr", path)}
    n_frames = frames["expr"].shape[0]
    for key, width in _POSE_KEYS.items():
        frames[key] = _rows(data[key], None, key, path)
        if frames[key].shape != (n_frames, width):
            raise AvatarError(f"{path}: '{key}' must be ({n_frames}, {width}) like expr's timesteps, "
                              f"got {data[key].shape}")
    offset = data.get("static_offset", np.zeros((rig.n_vertices, 3), dtype=shape.dtype))
    offset = offset[0] if offset.ndim == 3 and offset.shape[0] == 1 else offset
    if offset.ndim != 2 or offset.shape[1] != 3 or offset.shape[0] > rig.n_vertices:
        raise AvatarError(f"{path}: 'static_offset' must be (1, V, 3) with V <= {rig.n_vertices}, "
                          f"got {data['static_offset'].shape}")
    offset = np.pad(offset, ((0, rig.n_vertices - offset.shape[0]), (0, 0)))
    for key, value in (("shape", shape), ("static_offset", offset), *frames.items()):
        if not np.all(np.isfinite(value)):
            raise AvatarError(f"{path}: '{key}' holds NaN or infinite values")
    return FlameParamFile(shape=shape, static_offset=offset, frames=frames)


def _column(props: dict[str, np.ndarray], name: str, path: Path) -> np.ndarray:
    if name not in props:
        raise AvatarError(f"{path}: missing property '{name}' (a GaussianAvatars PLY has x y z f_dc_* f_rest_* "
                          "opacity scale_* rot_* binding_0)")
    return props[name]


def _stack(props: dict[str, np.ndarray], names: list[str], path: Path) -> np.ndarray:
    return np.stack([_column(props, n, path) for n in names], axis=-1)


def gaussians_from_ply(path: str | Path) -> dict[str, np.ndarray]:
    """The Gaussians of a GaussianAvatars point_cloud.ply as Avatar fields (arrays keep the file's dtype).

    Returns binding (N,) int32, local_means (N, 3), local_quats (N, 4), log_scales (N, 3),
    opacity_logits (N,), sh (N, K, 3).
    """
    path = Path(path)
    props = read_ply(path)
    n_rest = sum(1 for name in props if name.startswith("f_rest_"))
    degrees = {3 * (sh_coeff_count(d) - 1): d for d in range(4)}
    if n_rest not in degrees or any(f"f_rest_{i}" not in props for i in range(n_rest)):
        raise AvatarError(f"{path}: f_rest_* must be f_rest_0..f_rest_(n-1) with n in {sorted(degrees)}, "
                          f"found {n_rest} of them")
    k = sh_coeff_count(degrees[n_rest])
    dc = _stack(props, [f"f_dc_{c}" for c in range(3)], path)
    rest = _stack(props, [f"f_rest_{i}" for i in range(n_rest)], path).reshape(-1, 3, k - 1)
    sh = np.concatenate([dc[:, None, :], rest.transpose(0, 2, 1)], axis=1)
    binding = _column(props, "binding_0", path)
    if binding.dtype.kind == "f" and not np.all(np.isfinite(binding) & (binding == np.round(binding))):
        raise AvatarError(f"{path}: binding_0 must hold whole face indices")
    if binding.size and (binding.min() < 0 or binding.max() > np.iinfo(np.int32).max):
        raise AvatarError(f"{path}: binding_0 spans {binding.min()}..{binding.max()}, not face indices")
    return {
        "binding": binding.astype(np.int32),
        "local_means": _stack(props, ["x", "y", "z"], path),
        "local_quats": _stack(props, [f"rot_{i}" for i in range(4)], path),
        "log_scales": _stack(props, [f"scale_{i}" for i in range(3)], path),
        "opacity_logits": _column(props, "opacity", path),
        "sh": np.ascontiguousarray(sh),
    }


def default_camera(rig: Rig, shape: np.ndarray, static_offset: np.ndarray, size: int = 512) -> Camera:
    """A square frontal camera framing the rig's neutral head of this identity (80% of the picture)."""
    vertices = forward(rig, RigParams(shape=np.asarray(shape, rig.v_template.dtype), expr=np.zeros(rig.n_expr)),
                       static_offset=static_offset).vertices
    lo, hi = vertices.min(axis=0), vertices.max(axis=0)
    fov_x_deg = 20.0
    distance = 0.5 * max(hi[0] - lo[0], hi[1] - lo[1]) / 0.8 / np.tan(np.radians(fov_x_deg) / 2) + (hi[2] - lo[2]) / 2
    return frontal_camera((lo + hi) / 2, distance=float(distance), size=size, fov_x_deg=fov_x_deg)


def import_gaussian_avatars(path: str | Path, flame: Rig, flame_param_path: str | Path | None = None, *,
                            teeth: bool = True, camera: Camera | None = None, name: str | None = None) -> Avatar:
    """An Avatar from GaussianAvatars' export.

    path: the point_cloud.ply, or the folder holding it. flame: the FLAME rig as :func:`load_flame`
    returns it (GaussianAvatars uses FLAME 2023, n_shape=300, n_expr=100); teeth are appended unless
    `teeth` is False. flame_param_path: defaults to flame_param.npz beside the PLY. camera: defaults
    to :func:`default_camera`. name: defaults to the folder name.
    """
    path = Path(path)
    ply_path = path / PLY_NAME if path.is_dir() else path
    param_path = Path(flame_param_path) if flame_param_path is not None else ply_path.parent / FLAME_PARAM_NAME
    rig = add_teeth(flame) if teeth else flame
    params = read_flame_param(param_path, rig)
    gaussians = gaussians_from_ply(ply_path)
    binding = gaussians["binding"]
    if binding.size and binding.max() >= rig.n_faces:
        raise AvatarError(f"{ply_path}: binding_0 reaches face {binding.max()}, the rig has {rig.n_faces} faces"
                          + ("" if teeth else " (GaussianAvatars avatars need teeth=True)"))
    if camera is None:
        camera = default_camera(rig, params.shape, params.static_offset)
    return Avatar(rig=rig, shape=params.shape, static_offset=params.static_offset, camera=camera,
                  name=name if name is not None else ply_path.parent.name, **gaussians)


def export_gaussian_avatars(avatar: Avatar, folder: str | Path, params: RigParams | None = None) -> None:
    """Write `avatar` as GaussianAvatars' point_cloud.ply + flame_param.npz into `folder` (created if needed).

    Every value is written as float32, as GaussianAvatars does. params: the one timestep to store
    (expression and pose; its shape is ignored in favour of the avatar's); neutral when None.
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    n, k = avatar.n_gaussians, avatar.sh.shape[1]
    props = {name: avatar.local_means[:, i] for i, name in enumerate("xyz")}
    props.update({name: np.zeros(n) for name in ("nx", "ny", "nz")})
    props.update({f"f_dc_{c}": avatar.sh[:, 0, c] for c in range(3)})
    rest = avatar.sh[:, 1:, :].transpose(0, 2, 1).reshape(n, 3 * (k - 1))
    props.update({f"f_rest_{i}": rest[:, i] for i in range(3 * (k - 1))})
    props["opacity"] = avatar.opacity_logits
    props.update({f"scale_{i}": avatar.log_scales[:, i] for i in range(3)})
    props.update({f"rot_{i}": avatar.local_quats[:, i] for i in range(4)})
    props["binding_0"] = avatar.binding
    write_ply(folder / PLY_NAME, {name: np.asarray(v, dtype=np.float32) for name, v in props.items()})

    params = params if params is not None else RigParams.neutral(avatar.rig)
    params.check(avatar.rig)
    arrays = {"shape": avatar.shape, "expr": params.expr[None],
              **{key: np.asarray(getattr(params, key))[None] for key in _POSE_KEYS},
              "static_offset": avatar.static_offset[None],
              "dynamic_offset": np.zeros((1, avatar.rig.n_vertices, 3))}
    buffer = io.BytesIO()
    np.savez(buffer, **{key: np.asarray(v, dtype=np.float32) for key, v in arrays.items()})
    atomic_write(folder / FLAME_PARAM_NAME, [buffer.getvalue()])
