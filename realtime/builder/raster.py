"""A z-buffer of a triangle mesh seen by a camera: which face is nearest at every pixel, and how far.

Used to decide which Gaussians the portrait sees. Pixel (x, y) samples the point (x + 0.5, y + 0.5),
as the splatting renderers do; depth is the camera z, interpolated as 1/z (perspective-correct).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from realtime.camera import Camera

_NEAR = 1e-3  # metres; triangles with a vertex nearer than this are skipped


def project_points(points: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates (N, 2) and camera depths (N,) of world points (N, 3)."""
    cam = points @ camera.viewmat[:3, :3].T + camera.viewmat[:3, 3]
    z = cam[:, 2]
    safe = np.where(np.abs(z) > 1e-12, z, 1e-12)
    uv = (cam[:, :2] / safe[:, None]) @ camera.K[:2, :2].T + camera.K[:2, 2]
    return uv, z


def zbuffer(vertices: np.ndarray, faces: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """Rasterize the mesh. vertices: (V, 3) world; faces: (F, 3).

    Returns depth (H, W) float32 (inf where no face) and face ids (H, W) int32 (-1 where no face).
    Both windings are drawn (the nearest surface wins whichever way it faces).
    """
    uv, z = project_points(np.asarray(vertices, dtype=np.float64), camera)
    depth = np.full((camera.height, camera.width), np.inf, np.float64)
    ids = np.full((camera.height, camera.width), -1, np.int32)
    _rasterize(uv, z, np.ascontiguousarray(faces, dtype=np.int64), depth, ids)
    return depth.astype(np.float32), ids


@njit(cache=True)
def _rasterize(uv, z, faces, depth, ids):
    height, width = depth.shape
    for f in range(faces.shape[0]):
        a, b, c = faces[f, 0], faces[f, 1], faces[f, 2]
        if z[a] < _NEAR or z[b] < _NEAR or z[c] < _NEAR:
            continue
        ax, ay, bx, by, cx, cy = uv[a, 0], uv[a, 1], uv[b, 0], uv[b, 1], uv[c, 0], uv[c, 1]
        area = (bx - ax) * (cy - ay) - (by - ay) * (cx - ax)
        if area == 0.0:
            continue
        x0 = max(0, int(np.floor(min(ax, bx, cx) - 0.5)))
        x1 = min(width - 1, int(np.ceil(max(ax, bx, cx) - 0.5)))
        y0 = max(0, int(np.floor(min(ay, by, cy) - 0.5)))
        y1 = min(height - 1, int(np.ceil(max(ay, by, cy) - 0.5)))
        iza, izb, izc = 1.0 / z[a], 1.0 / z[b], 1.0 / z[c]
        for y in range(y0, y1 + 1):
            py = y + 0.5
            for x in range(x0, x1 + 1):
                px = x + 0.5
                w0 = ((bx - px) * (cy - py) - (by - py) * (cx - px)) / area
                w1 = ((cx - px) * (ay - py) - (cy - py) * (ax - px)) / area
                w2 = 1.0 - w0 - w1
                if w0 < 0.0 or w1 < 0.0 or w2 < 0.0:
                    continue
                d = 1.0 / (w0 * iza + w1 * izb + w2 * izc)
                if d < depth[y, x]:
                    depth[y, x] = d
                    ids[y, x] = f
