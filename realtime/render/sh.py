"""Real spherical harmonics up to degree 3, with the basis order, signs and constants gsplat uses.

Coefficient k of a Gaussian's (K, 3) block multiplies basis function k evaluated at the unit
view direction d = (x, y, z) (from the camera centre to the Gaussian): k = 0 is the constant C0,
k = 1..3 are C1 * (-y, z, -x), k = 4..8 and 9..15 the degree-2 and degree-3 bands in the order of
Sloan's "Efficient Spherical Harmonic Evaluation" (JCGT 2013), which gsplat and 3DGS use.
The colour of a channel is the sum, plus 0.5, clamped at 0 from below (gsplat's convention).

SH_C0 is the one home of the DC constant: the builder and the synthetic scenes turn colours into DC
coefficients with `rgb_to_sh_dc`, the torch splatter turns them back.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from realtime.render.constants import FASTMATH

MAX_SH_DEGREE = 3
SH_C0 = 0.5 / math.sqrt(math.pi)  # the degree-0 basis function, 1 / (2 sqrt(pi))

_C0 = np.float32(SH_C0)  # the kernels' float32 constants
_C1 = np.float32(0.48860251190292)
_C2A = np.float32(-1.092548430592079)
_C2B = np.float32(0.9461746957575601)
_C2C = np.float32(0.3153915652525201)
_C2D = np.float32(0.5462742152960395)
_C3A = np.float32(-2.285228997322329)
_C3B = np.float32(0.4570457994644658)
_C3C = np.float32(1.445305721320277)
_C3D = np.float32(1.865881662950577)
_C3E = np.float32(1.119528997770346)
_C3F = np.float32(-0.5900435899266435)
_TWO = np.float32(2.0)


def sh_degree_for(n_coeffs: int) -> int:
    """The degree whose basis has `n_coeffs` functions per channel (1, 4, 9 or 16); ValueError otherwise."""
    for degree in range(MAX_SH_DEGREE + 1):
        if (degree + 1) ** 2 == n_coeffs:
            return degree
    raise ValueError(f"spherical harmonics need 1, 4, 9 or 16 coefficients per channel, got {n_coeffs}")


def rgb_to_sh_dc(rgb: Any) -> Any:
    """DC coefficients (..., 3) whose colour is `rgb` (..., 3) >= 0 when the higher bands are zero (NumPy arrays
    or torch tensors)."""
    return (rgb - 0.5) / SH_C0


@njit(cache=True, fastmath=FASTMATH)
def sh_rgb(degree, x, y, z, sh, i):
    """The colour (r, g, b) of Gaussian i before the +0.5 offset, float32 each.

    degree: 0..3; x, y, z: float32 unit view direction; sh: (N, K, 3) float32 with K >= (degree + 1)^2, read in
    place (a view of sh[i] would be reference-counted on every call). One call for the three channels: a call costs
    more than a channel of degree 0. The caller adds the offset outside this function, so that no compiler fuses it
    into the sum differently for different degrees (the colour of the DC band alone is the same at every degree).
    """
    return (_sh_channel(degree, x, y, z, sh, i, 0), _sh_channel(degree, x, y, z, sh, i, 1),
            _sh_channel(degree, x, y, z, sh, i, 2))


@njit(cache=True, fastmath=FASTMATH, inline="always")
def _sh_channel(degree, x, y, z, sh, i, c):
    """Channel c of `sh_rgb`."""
    result = _C0 * sh[i, 0, c]
    if degree < 1:
        return result
    result += _C1 * (-y * sh[i, 1, c] + z * sh[i, 2, c] - x * sh[i, 3, c])
    if degree < 2:
        return result
    z2 = z * z
    t0 = _C2A * z
    c1 = x * x - y * y
    s1 = _TWO * x * y
    result += (_C2D * s1 * sh[i, 4, c] + t0 * y * sh[i, 5, c] + (_C2B * z2 - _C2C) * sh[i, 6, c]
               + t0 * x * sh[i, 7, c] + _C2D * c1 * sh[i, 8, c])
    if degree < 3:
        return result
    t0c = _C3A * z2 + _C3B
    t1b = _C3C * z
    c2 = x * c1 - y * s1
    s2 = x * s1 + y * c1
    result += (_C3F * s2 * sh[i, 9, c] + t1b * s1 * sh[i, 10, c] + t0c * y * sh[i, 11, c]
               + z * (_C3D * z2 - _C3E) * sh[i, 12, c] + t0c * x * sh[i, 13, c] + t1b * c1 * sh[i, 14, c]
               + _C3F * c2 * sh[i, 15, c])
    return result
