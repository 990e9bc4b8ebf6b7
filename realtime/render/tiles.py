"""Tile binning, shared by the CPU renderer and the torch splatter: which Gaussians each 16x16 tile draws, in
which order.

The visible Gaussians (both radii > 0) are sorted by camera depth, stable, so ties keep input order as
gsplat's radix sort on (tile, depth) keys leaves them, and each is listed in every tile that the rectangle of
its radii touches, as gsplat bins them.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from realtime.render.constants import TILE_SIZE
from realtime.render.project import Projected


def sort_and_bin(projected: Projected, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Depth-sorted tile lists of the visible Gaussians.

    Returns offsets: (tiles_y * tiles_x + 1,) int64 and ids: (M,) int32, where tile t (row-major)
    draws Gaussians ids[offsets[t]:offsets[t + 1]] nearest first.
    """
    order = depth_order(projected.depths.view(np.uint32), projected.radii)
    tiles_x = -(-width // TILE_SIZE)
    tiles_y = -(-height // TILE_SIZE)
    return _bin(order, projected.means2d, projected.radii, np.int64(tiles_x), np.int64(tiles_y))


@njit(nogil=True, cache=True)
def depth_order(depth_bits, radii):
    """(M,) int32 ids of the visible Gaussians (both radii > 0), nearest first, ties by id.

    depth_bits: (N,) the float32 depths' bits as uint32 (visible depths are positive, so their bits order like
    their values); radii: (N, 2). A least-significant-byte-first radix sort, stable in every pass, so equal
    depths keep the order of their ids (as gsplat's radix sort on (tile, depth) keys leaves them).
    """
    n_visible = 0
    for g in range(radii.shape[0]):
        if radii[g, 0] > 0 and radii[g, 1] > 0:
            n_visible += 1
    order = np.empty(n_visible, np.int32)
    keys = np.empty(n_visible, np.uint32)
    k = 0
    for g in range(radii.shape[0]):
        if radii[g, 0] > 0 and radii[g, 1] > 0:
            order[k], keys[k] = g, depth_bits[g]
            k += 1
    spare_order, spare_keys = np.empty_like(order), np.empty_like(keys)
    counts = np.empty(257, np.int64)
    for shift in range(0, 32, 8):
        counts[:] = 0
        for k in range(n_visible):
            counts[((keys[k] >> shift) & 0xFF) + 1] += 1
        for b in range(256):
            counts[b + 1] += counts[b]
        for k in range(n_visible):
            byte = (keys[k] >> shift) & 0xFF
            spare_order[counts[byte]], spare_keys[counts[byte]] = order[k], keys[k]
            counts[byte] += 1
        order, spare_order = spare_order, order
        keys, spare_keys = spare_keys, keys
    return order


@njit(cache=True)
def _tile_rect(u, v, rx, ry, tiles_x, tiles_y):
    """Tiles [x0, x1) x [y0, y1) covered by the box of half-size (rx, ry) around (u, v), as gsplat bins them
    (float32 arithmetic; dividing by the tile size, a power of 2, is exact as a product)."""
    inv = np.float32(1.0 / TILE_SIZE)
    tu, tv = u * inv, v * inv
    tru, trv = np.float32(rx) * inv, np.float32(ry) * inv
    x0 = min(max(0, int(np.floor(tu - tru))), tiles_x)
    y0 = min(max(0, int(np.floor(tv - trv))), tiles_y)
    x1 = min(max(0, int(np.ceil(tu + tru))), tiles_x)
    y1 = min(max(0, int(np.ceil(tv + trv))), tiles_y)
    return x0, y0, x1, y1


@njit(nogil=True, cache=True)
def _bin(order, means2d, radii, tiles_x, tiles_y):
    """The tile lists of `sort_and_bin` from the depth order of the visible Gaussians. A first pass in id order
    (reading the Gaussians' arrays in memory order) counts each tile's entries and keeps each Gaussian's tile
    rectangle; a second pass in depth order writes the lists."""
    rects = np.empty((radii.shape[0], 4), np.int32)
    offsets = np.zeros(tiles_x * tiles_y + 1, np.int64)
    for g in range(radii.shape[0]):
        if radii[g, 0] > 0 and radii[g, 1] > 0:  # visible, as `depth_order` picks them
            x0, y0, x1, y1 = _tile_rect(means2d[g, 0], means2d[g, 1], radii[g, 0], radii[g, 1], tiles_x, tiles_y)
            rects[g, 0], rects[g, 1], rects[g, 2], rects[g, 3] = x0, y0, x1, y1
            for ty in range(y0, y1):
                for tx in range(x0, x1):
                    offsets[ty * tiles_x + tx + 1] += 1
    for t in range(tiles_x * tiles_y):
        offsets[t + 1] += offsets[t]
    ids = np.empty(offsets[-1], np.int32)
    cursor = offsets[:-1].copy()
    for g in order:
        for ty in range(rects[g, 1], rects[g, 3]):
            for tx in range(rects[g, 0], rects[g, 2]):
                t = ty * tiles_x + tx
                ids[cursor[t]] = g
                cursor[t] += 1
    return offsets, ids
