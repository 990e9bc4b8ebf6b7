"""The NumPy reference behind the common deformer interface (CPU, float32)."""

from __future__ import annotations

import dataclasses

import numpy as np

from realtime.avatar.gaussians import Avatar
from realtime.blas import OneBlasThread
from realtime.deform.base import DeformedGaussians
from realtime.deform.reference import deform
from realtime.rig.model import RigParams


class NumpyDeformer:
    """Runs realtime.deform.reference.deform on a float32 copy of the avatar's rig (cast once, not per frame)."""

    backend = "numpy"

    def __init__(self, avatar: Avatar):
        if avatar.rig.v_template.dtype != np.float32:
            avatar = dataclasses.replace(avatar, rig=avatar.rig.astype(np.float32))
        self._avatar = avatar

    def deform(self, params: RigParams) -> DeformedGaussians:
        with OneBlasThread():
            out = deform(self._avatar, params, np.float32)
        g = out.gaussians
        return DeformedGaussians(means=g.means, quats=g.quats, scales=g.scales, vertices=out.vertices)
