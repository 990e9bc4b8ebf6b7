"""Checks of a deformation result against the float64 NumPy reference, shared by the deformation tests.

Tolerances: positions, scales and vertices within `atol` (1e-5 m). Quaternions are compared sign-aligned
(q and -q are one rotation) within `atol` plus float32 rounding of the posed vertices (relative EPS32 of the
head's extent) turned into a frame rotation by the parent triangle's smallest height: a vertex moved by d
turns its triangle's frame by about d / h. With the kernels' own vertices fed to the float64 binding, the
quaternions must match within `atol` outright (`binding_errors`).
"""

from __future__ import annotations

import numpy as np
import pytest

from realtime.avatar.binding import bind, triangle_frames
from realtime.avatar.gaussians import Avatar
from realtime.deform.reference import deform
from realtime.rig.model import RigParams


def builtin_rig_or_skip():
    """The built-in rig, or a skip where MediaPipe is not installed (the rig is generated, and its cache file
    named, with MediaPipe: the GPU machines lack it)."""
    pytest.importorskip("mediapipe", reason="the built-in rig is made with MediaPipe, which is not installed here")
    from realtime.rig.builtin import builtin_rig

    return builtin_rig()


EPS32 = float(np.finfo(np.float32).eps)
FIELDS = ("means", "quats", "scales", "vertices")


def as_numpy(deformed) -> dict[str, np.ndarray]:
    """DeformedGaussians of any backend (or a dict of its fields) as float64 NumPy arrays."""
    get = deformed.get if isinstance(deformed, dict) else lambda name: getattr(deformed, name)
    out = {}
    for name in FIELDS:
        value = get(name)
        if hasattr(value, "detach"):
            value = value.detach().cpu().numpy()
        out[name] = np.asarray(value, dtype=np.float64)
    return out


def aligned(quats: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """quats (N, 4) flipped onto the hemisphere of reference (N, 4)."""
    return np.where(np.sum(quats * reference, axis=-1, keepdims=True) < 0, -quats, quats)


def triangle_heights(vertices: np.ndarray, faces: np.ndarray) -> np.ndarray:
    """Smallest height of every triangle (F,): twice its area over its longest edge."""
    v = vertices[faces]
    edges = np.roll(v, -1, axis=1) - v
    area2 = np.linalg.norm(np.cross(edges[:, 0], edges[:, 1]), axis=-1)
    return area2 / np.linalg.norm(edges, axis=-1).max(axis=1)


def reference_errors(out: dict[str, np.ndarray], avatar: Avatar, params: RigParams, atol: float = 1e-5
                     ) -> dict[str, float]:
    """Max abs error of every field against the float64 reference; quats as a multiple of their tolerance."""
    ref = deform(avatar, params, np.float64)
    expected = {"means": ref.gaussians.means, "quats": ref.gaussians.quats, "scales": ref.gaussians.scales,
                "vertices": ref.vertices}
    errors = {name: float(np.abs(out[name] - expected[name]).max()) for name in ("means", "scales", "vertices")}
    quat_error = np.abs(aligned(out["quats"], expected["quats"]) - expected["quats"]).max(axis=1)
    heights = triangle_heights(ref.vertices, avatar.rig.faces)[avatar.binding]
    tolerance = atol + 32 * EPS32 * np.abs(ref.vertices).max() / heights
    errors["quats"] = float(quat_error.max())
    errors["quats_over_tolerance"] = float((quat_error / tolerance).max())
    return errors


def binding_errors(out: dict[str, np.ndarray], avatar: Avatar) -> dict[str, float]:
    """Max abs error of means, quats, scales against the float64 binding of `out`'s own vertices."""
    frames = triangle_frames(out["vertices"], avatar.rig.faces)
    f64 = lambda a: a.astype(np.float64)  # noqa: E731
    world = bind(frames, avatar.binding, f64(avatar.local_means), f64(avatar.local_quats), f64(avatar.log_scales))
    return {"means": float(np.abs(out["means"] - world.means).max()),
            "quats": float(np.abs(aligned(out["quats"], world.quats) - world.quats).max()),
            "scales": float(np.abs(out["scales"] - world.scales).max())}


def assert_float32_parity(out: dict[str, np.ndarray], avatar: Avatar, params: RigParams, atol: float = 1e-5
                          ) -> dict[str, float]:
    """The float32 checks above, all at once; returns the errors for reports."""
    errors = reference_errors(out, avatar, params, atol)
    for name in ("means", "scales", "vertices"):
        assert errors[name] <= atol, f"{name} off the reference by {errors[name]:.3g} > {atol:g}: {errors}"
    assert errors["quats_over_tolerance"] <= 1.0, f"quats off the reference beyond rounding: {errors}"
    bound = binding_errors(out, avatar)
    for name, value in bound.items():
        assert value <= atol, f"{name} off the binding of the same vertices by {value:.3g} > {atol:g}: {bound}"
    return {**errors, **{f"binding_{k}": v for k, v in bound.items()}}
