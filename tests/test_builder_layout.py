"""The builder's geometry pieces: allocation, the dense disc layout, the mesh z-buffer."""

import numpy as np
import pytest

from realtime.avatar.binding import bind, triangle_frames
from realtime.builder.layout import allocate, layout_gaussians, triangle_areas
from realtime.builder.raster import zbuffer
from realtime.camera import Camera, frontal_camera, intrinsics, rig_to_opencv
from realtime.render import render
from realtime.rig.synthetic import synthetic_rig


def test_allocate_is_proportional_and_leaves_no_bin_empty():
    weights = np.array([1.0, 2.0, 0.0, 7.0, 0.01])
    counts = allocate(weights, 1000)
    assert counts.sum() == 1000
    assert counts[2] == 0 and counts[4] >= 1
    share = 1000 * weights / weights.sum()
    assert np.all(np.abs(counts - share)[[0, 1, 3]] <= 2)
    assert allocate(np.ones(5), 3).sum() == 3  # fewer items than bins: no floor of one
    with pytest.raises(ValueError, match="non-negative"):
        allocate(np.array([1.0, -1.0]), 10)
    with pytest.raises(ValueError, match=">= 1"):
        allocate(np.ones(3), 0)


def test_layout_puts_flat_discs_inside_their_triangles():
    rig = synthetic_rig(12, 16)
    v = rig.v_template
    lay = layout_gaussians(v, rig.faces, 2000, seed=3)
    assert lay.binding.shape == (2000,) and lay.binding.dtype == np.int32
    assert len(np.unique(lay.binding)) == rig.n_faces  # every triangle carries at least one
    world = bind(triangle_frames(v, rig.faces), lay.binding, lay.local_means.astype(np.float64),
                 lay.local_quats.astype(np.float64), lay.log_scales.astype(np.float64))
    # each centre is a convex combination of its triangle's corners (independent barycentric solve)
    tri = v[rig.faces[lay.binding]]
    e1, e2, d = tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0], world.means - tri[:, 0]
    gram = np.stack([np.stack([(e1 * e1).sum(1), (e1 * e2).sum(1)], 1), np.stack([(e1 * e2).sum(1), (e2 * e2).sum(1)], 1)], 1)
    uv = np.linalg.solve(gram, np.stack([(d * e1).sum(1), (d * e2).sum(1)], 1)[..., None])[..., 0]
    assert np.all(uv > -1e-6) and np.all(uv.sum(1) < 1 + 1e-6)
    assert np.allclose(np.einsum("nk,nkc->nc", np.concatenate([1 - uv.sum(1, keepdims=True), uv], 1), tri),
                       world.means, atol=1e-9)
    # flat: the normal axis (local y) is `flatness` times thinner; in-plane size tracks area per Gaussian
    s = np.exp(lay.log_scales)
    assert np.allclose(s[:, 0] / s[:, 1], 5.0, rtol=1e-4) and np.allclose(s[:, 0], s[:, 2])
    areas = triangle_areas(v, rig.faces)
    counts = np.bincount(lay.binding, minlength=rig.n_faces)
    expected = 0.85 * np.sqrt(areas[lay.binding] / counts[lay.binding])
    assert np.allclose(world.scales[:, 0], expected, rtol=1e-4)


def test_layout_importance_shifts_density():
    rig = synthetic_rig(12, 16)
    importance = np.where(rig.v_template[rig.faces].mean(1)[:, 2] > 0, 4.0, 1.0)  # the front half 4x denser
    lay = layout_gaussians(rig.v_template, rig.faces, 4000, importance=importance)
    front = importance[lay.binding] > 1
    areas = triangle_areas(rig.v_template, rig.faces)
    density_front = front.sum() / areas[importance > 1].sum()
    density_back = (~front).sum() / areas[importance == 1].sum()
    assert 3.0 < density_front / density_back < 5.0


def test_layout_covers_the_surface_without_holes():
    rig = synthetic_rig(20, 24)
    lay = layout_gaussians(rig.v_template, rig.faces, 3000)
    w = bind(triangle_frames(rig.v_template, rig.faces), lay.binding, lay.local_means, lay.local_quats,
             lay.log_scales)
    cam = frontal_camera(np.zeros(3), 0.6, size=256)
    n = len(lay.binding)
    result = render(w.means.astype(np.float32), w.quats.astype(np.float32), w.scales.astype(np.float32),
                    np.full(n, 0.95, np.float32), np.zeros((n, 1, 3), np.float32), cam, backend="cpu",
                    with_alpha=True)
    # the sphere (radius 0.1 m at 0.6 m) spans ~121 px around the centre; well inside it, alpha is full
    yy, xx = np.mgrid[:256, :256] + 0.5
    inner = np.hypot(xx - 128, yy - 128) < 100
    assert result.alpha[inner].min() > 0.99
    assert result.alpha[np.hypot(xx - 128, yy - 128) > 135].max() < 0.01


def _camera(size=64):
    return Camera(K=intrinsics(size, size, 60.0), viewmat=rig_to_opencv(), width=size, height=size)


def test_zbuffer_depth_is_the_plane_and_the_nearer_face_wins():
    cam = _camera()
    # two parallel squares facing the camera (rig -z is forward): one at 1 m, a smaller one at 0.5 m
    far = np.array([[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1]], float)
    near = far * np.array([0.1, 0.1, 0.5])
    vertices = np.concatenate([far, near])
    faces = np.array([[0, 1, 2], [0, 2, 3], [4, 5, 6], [4, 6, 7]])
    depth, ids = zbuffer(vertices, faces, cam)
    assert np.isclose(depth[32, 32], 0.5, atol=1e-6) and ids[32, 32] in (2, 3)
    assert np.isclose(depth[32, 5], 1.0, atol=1e-6) and ids[32, 5] in (0, 1)
    # the far square spans tan(45 deg) = the whole 60-degree view: every pixel is covered
    assert np.all(ids >= 0)
    # a tilted plane z = -2 - 0.5 x: depth along each pixel ray matches the ray-plane intersection
    tilted = np.array([[-2, -2, 0], [2, -2, -2], [2, 2, -2], [-2, 2, 0]], float) + np.array([0, 0, -1.0])
    depth, ids = zbuffer(tilted, faces[:2], cam)
    f = cam.K[0, 0]
    x = (np.arange(64) + 0.5 - 32) / f  # ray direction x/z per column (camera x = rig x)
    expected = 2.0 / (1.0 - 0.5 * x)    # camera depth d: rig z = -d, rig x = x d, -d = -2 - 0.5 x d
    assert np.allclose(depth[32], expected, rtol=1e-5)
