"""EWA projection of 3D Gaussians to screen-space ellipses, as gsplat 1.5.3's fully fused projection.

For a Gaussian with mean m, rotation R(q) and scales s, seen by a camera with world-to-camera
rotation V, translation t and intrinsics (fx, fy, cx, cy):

    p = V m + t                                    camera-space mean; culled unless near <= p.z <= far
    Σ_cam = (V R S)(V R S)^T                       S = diag(s)
    J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]
        with tx/z, ty/z clamped to the image's half-extent plus 0.3 tan(fov/2) on each side
    Σ_2d = J Σ_cam J^T + 0.3 I                     the 0.3 px^2 dilation
    mean_2d = (fx x/z + cx, fy y/z + cy),  conic = Σ_2d^-1
    antialiased: opacity *= sqrt(det(Σ_2d - 0.3 I) / det(Σ_2d))
    culled when opacity < 1/255; extent e = min(3.33, sqrt(2 ln(255 opacity)))
    radius = (ceil(e sqrt(Σ_2d[0,0])), ceil(e sqrt(Σ_2d[1,1]))); culled when the box misses the image

and its colour is the spherical-harmonic sum at the unit direction from the camera centre to m,
plus 0.5, clamped at 0. Culled Gaussians have radius (0, 0) and are not drawn.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit

from realtime.render.constants import (
    ALPHA_THRESHOLD, EPS2D, FAR_PLANE, FASTMATH, FOV_MARGIN, MAX_EXTENT_SIGMAS, NEAR_PLANE)
from realtime.render.sh import sh_rgb
from realtime.render.workers import INLINE, Workers

_F0 = np.float32(0.0)
_F1 = np.float32(1.0)
_F2 = np.float32(2.0)
_HALF = np.float32(0.5)


@dataclass
class Projected:
    """Screen-space Gaussians. means2d: (N, 2) pixels; conics: (N, 3) inverse covariance (xx, xy, yy);
    depths: (N,) camera z; radii: (N, 2) int32 half-size of the bounding box in pixels, (0, 0) when culled;
    opacities: (N,) after the antialiasing compensation; colors: (N, 3) RGB. All float32 but radii."""

    means2d: np.ndarray
    conics: np.ndarray
    depths: np.ndarray
    radii: np.ndarray
    opacities: np.ndarray
    colors: np.ndarray


def project(means: np.ndarray, quats: np.ndarray, scales: np.ndarray, opacities: np.ndarray, sh: np.ndarray,
            viewmat: np.ndarray, K: np.ndarray, width: int, height: int, *, sh_degree: int,
            antialiased: bool, workers: Workers = INLINE) -> Projected:
    """Project N Gaussians for one camera.

    means: (N, 3), quats: (N, 4) (w, x, y, z) any norm, scales: (N, 3), opacities: (N,), sh: (N, K, 3)
    with K >= (sh_degree + 1)^2, viewmat: (4, 4) world-to-camera, K: (3, 3); all float32 and C-contiguous.
    workers: the threads to share the Gaussians among.
    """
    n = means.shape[0]
    out = Projected(means2d=np.zeros((n, 2), np.float32), conics=np.zeros((n, 3), np.float32),
                    depths=np.zeros(n, np.float32), radii=np.zeros((n, 2), np.int32),
                    opacities=np.zeros(n, np.float32), colors=np.zeros((n, 3), np.float32))
    bounds = np.linspace(0, n, workers.parts + 1).astype(np.int64)
    jobs = [(bounds[i], bounds[i + 1], means, quats, scales, opacities, sh, np.int64(sh_degree), viewmat, K,
             np.int64(width), np.int64(height), np.float32(EPS2D), np.float32(NEAR_PLANE), np.float32(FAR_PLANE),
             bool(antialiased), out.means2d, out.conics, out.depths, out.radii, out.opacities, out.colors)
            for i in range(workers.parts) if bounds[i + 1] > bounds[i]]
    workers.run(_project_range, jobs)
    return out


@njit(nogil=True, cache=True, fastmath=FASTMATH)
def _project_range(lo, hi, means, quats, scales, opacities, sh, sh_degree, viewmat, K, width, height, eps2d, near,
                   far, antialiased, means2d, conics, depths, radii, opac_out, colors):
    """Project Gaussians lo..hi - 1 into the output arrays (rows of culled ones are left untouched)."""
    v00, v01, v02, t0 = viewmat[0, 0], viewmat[0, 1], viewmat[0, 2], viewmat[0, 3]
    v10, v11, v12, t1 = viewmat[1, 0], viewmat[1, 1], viewmat[1, 2], viewmat[1, 3]
    v20, v21, v22, t2 = viewmat[2, 0], viewmat[2, 1], viewmat[2, 2], viewmat[2, 3]
    # camera centre -V^T t
    cam_x = -(v00 * t0 + v10 * t1 + v20 * t2)
    cam_y = -(v01 * t0 + v11 * t1 + v21 * t2)
    cam_z = -(v02 * t0 + v12 * t1 + v22 * t2)
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    w = np.float32(width)
    h = np.float32(height)
    lim_x_pos = (w - cx) / fx + FOV_MARGIN * _HALF * w / fx
    lim_x_neg = cx / fx + FOV_MARGIN * _HALF * w / fx
    lim_y_pos = (h - cy) / fy + FOV_MARGIN * _HALF * h / fy
    lim_y_neg = cy / fy + FOV_MARGIN * _HALF * h / fy

    for i in range(lo, hi):
        mx, my, mz = means[i, 0], means[i, 1], means[i, 2]
        x = v00 * mx + v01 * my + v02 * mz + t0
        y = v10 * mx + v11 * my + v12 * mz + t1
        z = v20 * mx + v21 * my + v22 * mz + t2
        if not (z >= near and z <= far):  # also culls NaN
            continue

        # rotation of the Gaussian (normalized quaternion), columns scaled by the scales
        qw, qx, qy, qz = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        inv = _F1 / math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
        qw *= inv
        qx *= inv
        qy *= inv
        qz *= inv
        sx, sy, sz = scales[i, 0], scales[i, 1], scales[i, 2]
        r00 = (_F1 - _F2 * (qy * qy + qz * qz)) * sx
        r10 = _F2 * (qx * qy + qw * qz) * sx
        r20 = _F2 * (qx * qz - qw * qy) * sx
        r01 = _F2 * (qx * qy - qw * qz) * sy
        r11 = (_F1 - _F2 * (qx * qx + qz * qz)) * sy
        r21 = _F2 * (qy * qz + qw * qx) * sy
        r02 = _F2 * (qx * qz + qw * qy) * sz
        r12 = _F2 * (qy * qz - qw * qx) * sz
        r22 = (_F1 - _F2 * (qx * qx + qy * qy)) * sz

        # perspective Jacobian with the clamped direction
        rz = _F1 / z
        tx = z * min(lim_x_pos, max(-lim_x_neg, x * rz))
        ty = z * min(lim_y_pos, max(-lim_y_neg, y * rz))
        ja = fx * rz
        jc = -fx * tx * rz * rz
        jb = fy * rz
        jd = -fy * ty * rz * rz
        # rows of J V: (ja V[0] + jc V[2]) and (jb V[1] + jd V[2])
        p0 = ja * v00 + jc * v20
        p1 = ja * v01 + jc * v21
        p2 = ja * v02 + jc * v22
        q0 = jb * v10 + jd * v20
        q1 = jb * v11 + jd * v21
        q2 = jb * v12 + jd * v22
        # A = J V R S (2 x 3); Σ_2d = A A^T
        a0 = p0 * r00 + p1 * r10 + p2 * r20
        a1 = p0 * r01 + p1 * r11 + p2 * r21
        a2 = p0 * r02 + p1 * r12 + p2 * r22
        b0 = q0 * r00 + q1 * r10 + q2 * r20
        b1 = q0 * r01 + q1 * r11 + q2 * r21
        b2 = q0 * r02 + q1 * r12 + q2 * r22
        c00 = a0 * a0 + a1 * a1 + a2 * a2
        c01 = a0 * b0 + a1 * b1 + a2 * b2
        c11 = b0 * b0 + b1 * b1 + b2 * b2

        det_orig = c00 * c11 - c01 * c01
        c00 += eps2d
        c11 += eps2d
        det = c00 * c11 - c01 * c01
        if not (det > _F0):
            continue
        opacity = opacities[i]
        if antialiased:
            opacity *= math.sqrt(max(_F0, det_orig / det))
        if not (opacity >= ALPHA_THRESHOLD):
            continue
        extent = min(MAX_EXTENT_SIGMAS, math.sqrt(_F2 * math.log(opacity / ALPHA_THRESHOLD)))
        rad_x = np.ceil(extent * math.sqrt(c00))
        rad_y = np.ceil(extent * math.sqrt(c11))
        if rad_x <= _F0 and rad_y <= _F0:
            continue
        u = fx * x * rz + cx
        v = fy * y * rz + cy
        if u + rad_x <= _F0 or u - rad_x >= w or v + rad_y <= _F0 or v - rad_y >= h:
            continue

        means2d[i, 0] = u
        means2d[i, 1] = v
        conics[i, 0] = c11 / det
        conics[i, 1] = -c01 / det
        conics[i, 2] = c00 / det
        depths[i] = z
        radii[i, 0] = np.int32(rad_x)
        radii[i, 1] = np.int32(rad_y)
        opac_out[i] = opacity

        dx, dy, dz = mx - cam_x, my - cam_y, mz - cam_z
        inorm = _F1 / math.sqrt(dx * dx + dy * dy + dz * dz)
        dx *= inorm
        dy *= inorm
        dz *= inorm
        r, g, b = sh_rgb(sh_degree, dx, dy, dz, sh, i)
        colors[i, 0] = max(_F0, r + _HALF)
        colors[i, 1] = max(_F0, g + _HALF)
        colors[i, 2] = max(_F0, b + _HALF)
