"""Shared pieces of the tracking tests: rigs with a full MediaPipe embedding, and landmarks rendered from
known parameters through the independent LBS forward pass."""

from __future__ import annotations

import av
import numpy as np

from realtime.camera import Camera, frontal_camera
from realtime.rig.lbs import forward, landmarks
from realtime.rig.model import Rig, RigParams
from realtime.rig.synthetic import synthetic_rig
from realtime.track.fit import ARKIT_NAMES


def sphere_rig(n_expr: int = 12, n_shape: int = 8, arkit: bool = False, eyes_skinned: bool = True,
               pose_correctives: bool = True, seed: int = 3) -> Rig:
    """A synthetic rig embedding all 478 MediaPipe ids (at random places on its sphere). arkit: ARKit expression
    names (coefficients in [0, 1]); eyes_skinned=False moves the eye joints' skinning weights to the head, as on a
    real face whose landmarks do not turn with the eyeballs."""
    rig = synthetic_rig(n_rings=16, n_segments=20, n_expr=n_expr, n_shape=n_shape, n_landmarks=478, seed=seed,
                        pose_correctives=pose_correctives)
    fields = dict(rig.__dict__)
    if arkit:
        fields["expr_names"] = tuple(sorted(ARKIT_NAMES))[:n_expr]
    if not eyes_skinned:
        weights = rig.weights.copy()
        weights[:, 0] += weights[:, 3:].sum(1)
        weights[:, 3:] = 0
        fields["weights"] = weights
    return Rig(**fields)


def camera(size: int = 512) -> Camera:
    return frontal_camera(np.zeros(3), 0.6, size=size, fov_x_deg=40.0)


def observe(rig: Rig, params: RigParams, cam: Camera, noise: float = 0.0, rng=None) -> np.ndarray:
    """(478, 2) pixel landmarks of `params` (every id of the rig's embedding, by id), with Gaussian noise (px)."""
    points = landmarks(rig, forward(rig, params).vertices)                # (L, 3) in rig.lmk_ids order
    cam_pts = points @ cam.viewmat[:3, :3].T + cam.viewmat[:3, 3]
    pix = cam_pts[:, :2] / cam_pts[:, 2:] * np.diag(cam.K)[:2] + cam.K[:2, 2]
    out = np.full((478, 2), np.nan)
    out[rig.lmk_ids] = pix
    if noise:
        out = out + (rng or np.random.default_rng(0)).normal(scale=noise, size=out.shape)
    return out


def random_params(rig: Rig, rng, expr_scale: float = 0.8, shape=None) -> RigParams:
    """Head turns within ±30° yaw, ±15° pitch, ±10° roll; a few cm of translation; jaw open up to 0.3 rad."""
    lo = np.array([0.0 if n in ARKIT_NAMES else -1.0 for n in rig.expr_names])
    expr = rng.uniform(lo, 1.0) * expr_scale
    return RigParams(shape=np.zeros(rig.n_shape) if shape is None else shape, expr=expr,
                     rotation=np.radians([rng.uniform(-15, 15), rng.uniform(-30, 30), rng.uniform(-10, 10)]),
                     jaw_pose=np.array([rng.uniform(0, 0.3), 0.0, 0.0]),
                     translation=rng.uniform(-0.03, 0.03, size=3))


def rotation_error_deg(a: np.ndarray, b: np.ndarray) -> float:
    """Angle of the rotation between two axis-angle vectors, degrees."""
    from realtime.geometry import axis_angle_to_matrix

    rel = axis_angle_to_matrix(np.asarray(a, np.float64)).T @ axis_angle_to_matrix(np.asarray(b, np.float64))
    return float(np.degrees(np.arccos(np.clip((np.trace(rel) - 1) / 2, -1, 1))))


def write_video(path, colours, fps=25, size=(64, 48)):
    """A clip of flat-coloured frames, one colour a frame (H.264 in MP4)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height = size
        stream.pix_fmt = "yuv420p"
        stream.options = {"crf": "10"}
        for colour in colours:
            image = np.empty((size[1], size[0], 3), np.uint8)
            image[:] = colour
            for packet in stream.encode(av.VideoFrame.from_ndarray(image, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
