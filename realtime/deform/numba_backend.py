"""The CPU hot path: the reference's rig pass, then the triangle frames and the bound Gaussians in two compiled
loops (realtime.avatar.binding's math, fused, without its per-Gaussian temporaries). Prepared once: the unit
local rotations and linear scales of the Gaussians, and the identity's rest mesh for as long as the identity
stays (the shape blend of a FLAME-sized rig, 300 components, is an 18 MB read a frame otherwise).
"""

from __future__ import annotations

import dataclasses

import numpy as np
from numba import njit

from realtime.avatar.gaussians import Avatar
from realtime.blas import OneBlasThread
from realtime.deform.base import DeformedGaussians
from realtime.geometry import quaternion_normalize
from realtime.rig.lbs import forward, identity_template
from realtime.rig.model import RigParams


@njit(nogil=True, cache=True)
def face_frames(vertices, faces, rotations, quats, scales, centers):
    """Each triangle's frame, as realtime.avatar.binding.triangle_frames, and its rotation as a unit quaternion
    with w >= 0, as realtime.geometry.matrix_to_quaternion.

    vertices: (V, 3) float32; faces: (F, 3) int. Writes rotations (F, 3, 3) (columns a0, a1 = normal, a2),
    quats (F, 4) (w, x, y, z), scales (F,) and centers (F, 3).
    """
    for f in range(faces.shape[0]):  # scalar arithmetic: small arrays would be heap allocations in the loop
        i0, i1, i2 = faces[f, 0], faces[f, 1], faces[f, 2]
        v0, v1, v2 = vertices[i0], vertices[i1], vertices[i2]
        e1x, e1y, e1z = v1[0] - v0[0], v1[1] - v0[1], v1[2] - v0[2]
        e2x, e2y, e2z = v2[0] - v0[0], v2[1] - v0[1], v2[2] - v0[2]
        len1 = np.sqrt(e1x * e1x + e1y * e1y + e1z * e1z)
        ax, ay, az = e1x / len1, e1y / len1, e1z / len1                      # a0 = e1 / |e1|
        nx, ny, nz = ay * e2z - az * e2y, az * e2x - ax * e2z, ax * e2y - ay * e2x
        len_n = np.sqrt(nx * nx + ny * ny + nz * nz)
        nx, ny, nz = nx / len_n, ny / len_n, nz / len_n                      # a1 = a0 x e2 / |a0 x e2|
        cx, cy, cz = ny * az - nz * ay, nz * ax - nx * az, nx * ay - ny * ax
        len_c = np.sqrt(cx * cx + cy * cy + cz * cz)
        cx, cy, cz = -cx / len_c, -cy / len_c, -cz / len_c                   # a2 = -(a1 x a0) / |a1 x a0|
        m = rotations[f]
        m[0, 0], m[1, 0], m[2, 0] = ax, ay, az
        m[0, 1], m[1, 1], m[2, 1] = nx, ny, nz
        m[0, 2], m[1, 2], m[2, 2] = cx, cy, cz
        scales[f] = (len1 + abs(cx * e2x + cy * e2y + cz * e2z)) / 2
        for a in range(3):
            centers[f, a] = (v0[a] + v1[a] + v2[a]) / 3
        trace = m[0, 0] + m[1, 1] + m[2, 2]
        pick, best = 0, trace  # the largest of (trace, m00, m11, m22), the first on ties
        for k in range(3):
            if m[k, k] > best:
                pick, best = k + 1, m[k, k]
        q = quats[f]
        d01, d02, d12 = m[0, 1] - m[1, 0], m[0, 2] - m[2, 0], m[1, 2] - m[2, 1]   # antisymmetric parts
        s01, s02, s12 = m[0, 1] + m[1, 0], m[0, 2] + m[2, 0], m[1, 2] + m[2, 1]   # symmetric parts
        if pick == 0:
            q[0], q[1], q[2], q[3] = 1 + trace, -d12, d02, -d01
        elif pick == 1:
            q[0], q[1], q[2], q[3] = -d12, 1 + m[0, 0] - m[1, 1] - m[2, 2], s01, s02
        elif pick == 2:
            q[0], q[1], q[2], q[3] = d02, s01, 1 - m[0, 0] + m[1, 1] - m[2, 2], s12
        else:
            q[0], q[1], q[2], q[3] = -d01, s02, s12, 1 - m[0, 0] - m[1, 1] + m[2, 2]
        norm = np.sqrt(q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3])
        norm = -norm if q[0] < 0 else norm
        for a in range(4):
            q[a] /= norm


@njit(nogil=True, cache=True)
def bind_gaussians(binding, local_means, unit_local_quats, local_scales, rotations, face_quats, face_scales,
                   centers, means, quats, scales):
    """World attributes of bound Gaussians, as realtime.avatar.binding.bind.

    binding: (N,) parent face; local_means: (N, 3); unit_local_quats: (N, 4) unit; local_scales: (N, 3) linear;
    the face frames from `face_frames`. Writes means (N, 3), quats (N, 4) unit and scales (N, 3).
    """
    for g in range(binding.shape[0]):
        f = binding[g]
        k = face_scales[f]
        r = rotations[f]
        lm = local_means[g]
        for a in range(3):
            means[g, a] = k * (r[a, 0] * lm[0] + r[a, 1] * lm[1] + r[a, 2] * lm[2]) + centers[f, a]
            scales[g, a] = local_scales[g, a] * k
        aw, ax, ay, az = face_quats[f, 0], face_quats[f, 1], face_quats[f, 2], face_quats[f, 3]
        bw, bx, by, bz = unit_local_quats[g, 0], unit_local_quats[g, 1], unit_local_quats[g, 2], unit_local_quats[g, 3]
        w = aw * bw - ax * bx - ay * by - az * bz
        x = aw * bx + ax * bw + ay * bz - az * by
        y = aw * by - ax * bz + ay * bw + az * bx
        z = aw * bz + ax * by - ay * bx + az * bw
        norm = np.sqrt(w * w + x * x + y * y + z * z)
        quats[g, 0], quats[g, 1], quats[g, 2], quats[g, 3] = w / norm, x / norm, y / norm, z / norm


class NumbaDeformer:
    """The reference's rig pass (NumPy, float32) and the compiled binding. Each frame's result is new arrays
    (the renderer and the stream may still hold the previous frame's)."""

    backend = "numba"

    def __init__(self, avatar: Avatar):
        rig = avatar.rig if avatar.rig.v_template.dtype == np.float32 else avatar.rig.astype(np.float32)
        self._avatar = dataclasses.replace(avatar, rig=rig)
        self._faces = np.ascontiguousarray(rig.faces)
        self._binding = np.ascontiguousarray(avatar.binding)
        self._local_means = np.ascontiguousarray(avatar.local_means, np.float32)
        self._unit_quats = np.ascontiguousarray(quaternion_normalize(avatar.local_quats.astype(np.float32)))
        self._local_scales = np.ascontiguousarray(np.exp(avatar.log_scales.astype(np.float32)))
        self._identity_key: bytes | None = None
        self._identity: np.ndarray | None = None
        n_faces = len(self._faces)
        self._frames = (np.empty((n_faces, 3, 3), np.float32), np.empty((n_faces, 4), np.float32),
                        np.empty(n_faces, np.float32), np.empty((n_faces, 3), np.float32))

    def deform(self, params: RigParams) -> DeformedGaussians:
        rig = self._avatar.rig
        key = np.asarray(params.shape, np.float32).tobytes()
        with OneBlasThread():
            if key != self._identity_key:
                self._identity = identity_template(rig, params.shape, self._avatar.static_offset)
                self._identity_key = key
            vertices = forward(rig, params, identity=self._identity).vertices
        vertices = np.ascontiguousarray(vertices, np.float32)
        face_frames(vertices, self._faces, *self._frames)
        n = len(self._binding)
        means, quats, scales = np.empty((n, 3), np.float32), np.empty((n, 4), np.float32), np.empty((n, 3), np.float32)
        bind_gaussians(self._binding, self._local_means, self._unit_quats, self._local_scales, *self._frames,
                       means, quats, scales)
        return DeformedGaussians(means=means, quats=quats, scales=scales, vertices=vertices)
