"""Pinhole cameras in the OpenCV convention (x right, y down, z forward), as gsplat takes them."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True, eq=False)
class Camera:
    """K: (3, 3) intrinsics in pixels; viewmat: (4, 4) world-to-camera; image width and height in pixels."""

    K: np.ndarray
    viewmat: np.ndarray
    width: int
    height: int

    def __post_init__(self) -> None:
        if self.K.shape != (3, 3) or self.viewmat.shape != (4, 4):
            raise ValueError(f"camera needs K (3, 3) and viewmat (4, 4), got {self.K.shape} and {self.viewmat.shape}")
        if self.width < 1 or self.height < 1:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not (np.all(np.isfinite(self.K)) and np.all(np.isfinite(self.viewmat))):
            raise ValueError("camera holds NaN or infinite values")

    def resized(self, width: int, height: int) -> "Camera":
        """The same view at another image size. The vertical framing is kept (focal length scales with
        the height) and the picture stays centred, so a 16:9 frame of a square camera widens sideways."""
        s = height / self.height
        K = self.K.astype(np.float64) * np.array([[s, 1, s], [1, s, s], [1, 1, 1]])
        K[0, 2] += (width - self.width * s) / 2
        return Camera(K=K, viewmat=self.viewmat, width=width, height=height)

def intrinsics(width: int, height: int, fov_x_deg: float) -> np.ndarray:
    """(3, 3) float64 intrinsics with square pixels and the principal point at the image centre."""
    f = 0.5 * width / np.tan(np.radians(fov_x_deg) / 2)
    return np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1]], dtype=np.float64)


def rig_to_opencv() -> np.ndarray:
    """(4, 4) change of axes from rig space (y up, z towards the viewer) to OpenCV camera axes."""
    return np.diag([1.0, -1.0, -1.0, 1.0])


def look_at(eye: np.ndarray, target: np.ndarray, up: np.ndarray = np.array([0.0, 1.0, 0.0])) -> np.ndarray:
    """(4, 4) float64 world-to-camera matrix of a camera at `eye` looking at `target`, `up` up in the image."""
    eye, target, up = (np.asarray(a, dtype=np.float64) for a in (eye, target, up))
    forward = target - eye
    forward /= np.linalg.norm(forward)
    right = np.cross(forward, up)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rot = np.stack([right, down, forward])  # rows: camera axes in world coordinates
    view = np.eye(4)
    view[:3, :3] = rot
    view[:3, 3] = -rot @ eye
    return view


def frontal_camera(center: np.ndarray, distance: float, size: int = 512, fov_x_deg: float = 20.0) -> Camera:
    """A square camera on the rig's +z axis, `distance` metres in front of `center`, looking at it."""
    center = np.asarray(center, dtype=np.float64)
    view = look_at(center + np.array([0.0, 0.0, distance]), center)
    return Camera(K=intrinsics(size, size, fov_x_deg), viewmat=view, width=size, height=size)


# Named output sizes (width, height): squares by their side, 16:9 frames as "WxH"; all even, for video encoders.
OUTPUT_SIZES: dict[str, tuple[int, int]] = {
    **{str(s): (s, s) for s in (128, 256, 384, 512, 768, 1024)},
    **{f"{w}x{w * 9 // 16}": (w, w * 9 // 16) for w in (128, 256, 384, 512, 768, 1024)},
}


def output_size(name: str) -> tuple[int, int]:
    """(width, height) of a named output size, e.g. '512' → (512, 512), '1024x576' → (1024, 576)."""
    try:
        return OUTPUT_SIZES[str(name)]
    except KeyError:
        raise ValueError(f"unknown output size {name!r}; known sizes: {', '.join(OUTPUT_SIZES)}") from None


def head_and_shoulders_camera(vertices: np.ndarray, width: int = 512, height: int = 512, fov_y_deg: float = 20.0,
                              fill: float = 0.55, top_margin: float = 0.1) -> Camera:
    """A level, frontal camera framing a posed head mesh as a head-and-shoulders portrait.

    vertices: (V, 3) posed mesh in rig space (y up, z towards the viewer). The camera sits on the rig's
    +z side looking along -z; the mesh's height fills `fill` of the image height with its top
    `top_margin` of the height below the image top (measured at the depth of the mesh's centre), so the
    lower part of the frame is left for the shoulders. Wider frames show more at the sides.
    """
    v = np.asarray(vertices, dtype=np.float64)
    if v.ndim != 2 or v.shape[1] != 3 or len(v) < 2 or not np.all(np.isfinite(v)):
        raise ValueError(f"vertices must be a finite (V, 3) array with V >= 2, got shape {v.shape}")
    if not (0 < fill <= 1 and 0 <= top_margin and fill + top_margin <= 1):
        raise ValueError(f"need 0 < fill <= 1, top_margin >= 0 and fill + top_margin <= 1, got {fill}, {top_margin}")
    lo, hi = v.min(axis=0), v.max(axis=0)
    mesh_height = hi[1] - lo[1]
    if mesh_height <= 0:
        raise ValueError("vertices have no vertical extent to frame")
    centre = (lo + hi) / 2
    frame_height = mesh_height / fill  # metres covered by the image height at the centre's depth
    distance = frame_height / (2 * np.tan(np.radians(fov_y_deg) / 2))
    target = np.array([centre[0], hi[1] + top_margin * frame_height - frame_height / 2, centre[2]])
    focal = 0.5 * height / np.tan(np.radians(fov_y_deg) / 2)
    fov_x_deg = float(np.degrees(2 * np.arctan(0.5 * width / focal)))
    view = look_at(target + np.array([0.0, 0.0, distance]), target)
    return Camera(K=intrinsics(width, height, fov_x_deg), viewmat=view, width=width, height=height)
