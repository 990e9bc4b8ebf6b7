"""Deformation in plain torch ops, on CPU or CUDA: the baseline the CuPy kernels are measured against.

It does per frame what GaussianAvatars-style code does: the full FLAME forward pass (shape and expression
blend shapes, joint regression, Rodrigues, pose correctives, the kinematic chain, skinning) as batched
tensor ops, then per-face frames, quaternion from rotation matrix and quaternion product for the
Gaussians. The rig and the Gaussians are uploaded once; the math follows realtime/rig/lbs.py and
realtime/avatar/binding.py step by step, so float64 runs match the NumPy reference to rounding.
"""

from __future__ import annotations

import numpy as np
import torch

from realtime.avatar.gaussians import Avatar
from realtime.deform.base import DeformedGaussians
from realtime.geometry import quaternion_multiply
from realtime.rig.model import RigParams


def axis_angle_to_matrix(rotvec: torch.Tensor) -> torch.Tensor:
    """Rodrigues. rotvec: (..., 3). Returns (..., 3, 3)."""
    angle = torch.linalg.vector_norm(rotvec, dim=-1, keepdim=True)
    axis = rotvec / angle.clamp_min(torch.finfo(rotvec.dtype).tiny)
    x, y, z = axis.unbind(-1)
    zero = torch.zeros_like(x)
    skew = torch.stack([zero, -z, y, z, zero, -x, -y, x, zero], dim=-1).reshape(rotvec.shape[:-1] + (3, 3))
    eye = torch.eye(3, dtype=rotvec.dtype, device=rotvec.device)
    return eye + torch.sin(angle)[..., None] * skew + (1 - torch.cos(angle))[..., None] * (skew @ skew)


def matrix_to_quaternion(m: torch.Tensor) -> torch.Tensor:
    """Rotation matrices (..., 3, 3) to unit quaternions (..., 4) (w, x, y, z) with w >= 0.

    The candidate built on the largest of (trace, m00, m11, m22), as realtime.geometry.matrix_to_quaternion.
    """
    m00, m01, m02 = m[..., 0, 0], m[..., 0, 1], m[..., 0, 2]
    m10, m11, m12 = m[..., 1, 0], m[..., 1, 1], m[..., 1, 2]
    m20, m21, m22 = m[..., 2, 0], m[..., 2, 1], m[..., 2, 2]
    trace = m00 + m11 + m22
    candidates = torch.stack([
        torch.stack([1 + trace, m21 - m12, m02 - m20, m10 - m01], -1),
        torch.stack([m21 - m12, 1 + m00 - m11 - m22, m01 + m10, m02 + m20], -1),
        torch.stack([m02 - m20, m01 + m10, 1 - m00 + m11 - m22, m12 + m21], -1),
        torch.stack([m10 - m01, m02 + m20, m12 + m21, 1 - m00 - m11 + m22], -1),
    ], -2)
    pick = torch.argmax(torch.stack([trace, m00, m11, m22], -1), dim=-1)
    q = torch.gather(candidates, -2, pick[..., None, None].expand(pick.shape + (1, 4)))[..., 0, :]
    q = q / torch.linalg.vector_norm(q, dim=-1, keepdim=True)
    return torch.where(q[..., :1] < 0, -q, q)


def _normalize(v: torch.Tensor) -> torch.Tensor:
    return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True)


class TorchDeformer:
    """The avatar's rig and Gaussians as tensors on `device` in `dtype`; `deform` runs one frame."""

    backend = "torch"

    def __init__(self, avatar: Avatar, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32):
        self.device = torch.device(device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"torch deformer asked for {self.device}, but torch sees no usable CUDA device")
        self.dtype = dtype
        rig = avatar.rig
        self._rig = rig
        tensor = lambda a: torch.as_tensor(np.ascontiguousarray(a), dtype=dtype, device=self.device)  # noqa: E731
        index = lambda a: torch.as_tensor(np.asarray(a), dtype=torch.long, device=self.device)  # noqa: E731
        self._template = tensor(rig.v_template + avatar.static_offset)                   # (V, 3)
        self._shape_dirs = tensor(np.concatenate([rig.shape_dirs, rig.expr_dirs], 2))   # (V, 3, S + E)
        self._pose_dirs = tensor(rig.pose_dirs.reshape(3 * rig.n_vertices, -1).T)        # (P, 3V)
        self._j_regressor = tensor(rig.j_regressor)                                      # (J, V)
        self._weights = tensor(rig.weights)                                              # (V, J)
        self._parents = [int(p) for p in rig.parents]
        self._parent_index = index(rig.parents[1:])                                       # (J - 1,)
        self._bottom_row = tensor(np.tile([[[0.0, 0.0, 0.0, 1.0]]], (rig.n_joints, 1, 1)))  # (J, 1, 4)
        self._faces = index(rig.faces)                                                   # (F, 3)
        self._binding = index(avatar.binding)                                            # (N,)
        self._local_means = tensor(avatar.local_means)                                   # (N, 3)
        self._local_quats = tensor(avatar.local_quats)                                   # (N, 4)
        self._log_scales = tensor(avatar.log_scales)                                     # (N, 3)
        self._eye = torch.eye(3, dtype=dtype, device=self.device)

    def _upload(self, params: RigParams) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One host-to-device copy: betas (S + E,), pose (J, 3), translation (3,)."""
        packed = np.concatenate([params.shape, params.expr, params.full_pose().reshape(-1), params.translation])
        packed = torch.as_tensor(packed.astype(np.float64 if self.dtype == torch.float64 else np.float32))
        if self.device.type == "cuda":
            packed = packed.pin_memory().to(self.device, non_blocking=True)
        n_betas = self._rig.n_shape + self._rig.n_expr
        return packed[:n_betas], packed[n_betas:-3].reshape(-1, 3), packed[-3:]

    def vertices(self, params: RigParams) -> torch.Tensor:
        """The posed mesh (V, 3), realtime.rig.lbs.forward step by step."""
        params.check(self._rig)
        betas, pose, translation = self._upload(params)
        v_shaped = self._template + torch.einsum("vck,k->vc", self._shape_dirs, betas)
        joints = self._j_regressor @ v_shaped
        rot_mats = axis_angle_to_matrix(pose)                                            # (J, 3, 3)
        v_posed = v_shaped
        if self._pose_dirs.shape[0]:
            pose_feature = (rot_mats[1:] - self._eye).reshape(-1)
            v_posed = v_shaped + (pose_feature @ self._pose_dirs).reshape(-1, 3)
        rel = joints.clone()
        rel[1:] = rel[1:] - joints[self._parent_index]
        local = torch.cat([torch.cat([rot_mats, rel[:, :, None]], 2), self._bottom_row], 1)
        chain = [local[0]]
        for j in range(1, len(self._parents)):
            chain.append(chain[self._parents[j]] @ local[j])
        world = torch.stack(chain)                                                      # (J, 4, 4)
        offset = world[:, :3, 3] - torch.einsum("jab,jb->ja", world[:, :3, :3], joints) + translation
        transforms = torch.cat([world[:, :3, :3], offset[:, :, None]], 2)               # (J, 3, 4)
        blended = (self._weights @ transforms.reshape(len(rel), 12)).reshape(-1, 3, 4)
        return torch.einsum("vab,vb->va", blended[:, :, :3], v_posed) + blended[:, :, 3]

    def deform(self, params: RigParams) -> DeformedGaussians:
        vertices = self.vertices(params)
        v0, v1, v2 = vertices[self._faces].unbind(1)
        e1, e2 = v1 - v0, v2 - v0
        a0 = _normalize(e1)
        a1 = _normalize(torch.linalg.cross(a0, e2))
        a2 = -_normalize(torch.linalg.cross(a1, a0))
        face_rot = torch.stack([a0, a1, a2], -1)                                         # (F, 3, 3)
        face_scale = (torch.linalg.vector_norm(e1, dim=-1) + (a2 * e2).sum(-1).abs()) / 2
        face_center = (v0 + v1 + v2) / 3
        face_quat = matrix_to_quaternion(face_rot)
        rot, k = face_rot[self._binding], face_scale[self._binding, None]
        means = k * torch.einsum("nab,nb->na", rot, self._local_means) + face_center[self._binding]
        quats = _normalize(quaternion_multiply(face_quat[self._binding], _normalize(self._local_quats)))
        scales = torch.exp(self._log_scales) * k
        return DeformedGaussians(means=means, quats=quats, scales=scales, vertices=vertices)
