"""Refinement (layout held fixed, spikes regularised, edge-on and hidden Gaussians untouched) and the colour fill."""

from dataclasses import replace

import numpy as np
import pytest

from realtime.avatar.gaussians import Avatar
from realtime.builder.colour import diffuse, direct_colours, mirror_fill, tone_match
from realtime.builder.layout import layout_gaussians
from realtime.builder.refine import RefineSettings, RefineTarget, gaussian_visibility, refine
from realtime.camera import frontal_camera
from realtime.deform.reference import deform
from realtime.render import render
from realtime.render.sh import rgb_to_sh_dc
from realtime.rig.model import RigParams
from realtime.rig.synthetic import synthetic_rig


def _sphere_avatar(colours_of, n=3000, size=64):
    """Discs on a synthetic rig's sphere coloured by colours_of(rest positions (N, 3)) -> (N, 3)."""
    rig = synthetic_rig(16, 20, n_shape=2, n_expr=2)
    lay = layout_gaussians(rig.v_template, rig.faces, n)
    avatar = Avatar(rig=rig, shape=np.zeros(2, np.float32), static_offset=np.zeros((rig.n_vertices, 3), np.float32),
                    binding=lay.binding, local_means=lay.local_means, local_quats=lay.local_quats,
                    log_scales=lay.log_scales, opacity_logits=np.full(n, 3.0, np.float32),
                    sh=np.zeros((n, 1, 3), np.float32), camera=frontal_camera(np.zeros(3), 0.5, size=size))
    means = deform(avatar, _neutral(avatar)).gaussians.means
    return replace(avatar, sh=rgb_to_sh_dc(colours_of(means))[:, None, :].astype(np.float32))


def _neutral(avatar):
    return RigParams(shape=avatar.shape, expr=np.zeros(avatar.rig.n_expr, np.float32))


def _draw(avatar):
    g = deform(avatar, _neutral(avatar)).gaussians
    return render(g.means, g.quats, g.scales, avatar.opacities, avatar.sh, avatar.camera, backend="cpu").image


def _stripes(p):
    return np.stack([0.5 + 0.4 * np.sin(60 * p[:, 0]), 0.5 + 0.4 * np.cos(50 * p[:, 1]), 0.3 + 0 * p[:, 2]], 1)


def test_refinement_recovers_colours_and_keeps_the_layout():
    truth = _sphere_avatar(_stripes)
    start = replace(truth, sh=np.zeros_like(truth.sh))  # grey
    cam = truth.camera
    target = RefineTarget(image=_draw(truth), mask=np.ones((cam.height, cam.width), np.float32), camera=cam,
                          background=np.zeros(3, np.float32))
    refined, losses = refine(start, target, 40, backend="cpu")
    assert losses[-1] < 0.25 * losses[0]
    assert refined.n_gaussians == start.n_gaussians and np.array_equal(refined.binding, start.binding)
    assert refined.camera is start.camera and refined.rig is start.rig
    after = np.abs(_draw(refined) - target.image).mean()
    assert after < 0.3 * np.abs(_draw(start) - target.image).mean()
    # hidden (back of the sphere) and edge-on Gaussians are not touched
    visible, facing = gaussian_visibility(start, _neutral(start), cam)
    untouched = ~visible | (facing < RefineSettings().min_facing)
    assert untouched.sum() > start.n_gaussians // 3
    for name in ("sh", "local_means", "log_scales", "opacity_logits", "local_quats"):
        assert np.array_equal(getattr(refined, name)[untouched], getattr(start, name)[untouched]), name
    assert not np.array_equal(refined.sh[~untouched], start.sh[~untouched])


def test_needles_are_pulled_back_to_the_ratio_limit():
    avatar = _sphere_avatar(_stripes, n=1500)
    log_scales = avatar.log_scales.copy()
    log_scales[:, 0] += np.log(20.0)  # every disc 20x longer one way: a ratio of 100 against the normal axis
    spiky = replace(avatar, log_scales=log_scales)
    cam = avatar.camera
    target = RefineTarget(image=np.zeros((cam.height, cam.width, 3), np.float32),
                          mask=np.zeros((cam.height, cam.width), np.float32), camera=cam,
                          background=np.zeros(3, np.float32))
    settings = RefineSettings(lr_scales=0.05, min_facing=-1.0, max_growth=1e6)
    refined, _ = refine(spiky, target, 60, backend="cpu", settings=settings)
    visible, _ = gaussian_visibility(spiky, _neutral(spiky), cam)
    ratio_before = np.exp(np.ptp(spiky.log_scales[visible], axis=1))
    ratio_after = np.exp(np.ptp(refined.log_scales[visible], axis=1))
    assert ratio_before.min() > 90
    assert np.median(ratio_after) < 15 and ratio_after.max() < 30


def test_refine_checks_its_inputs():
    avatar = _sphere_avatar(_stripes, n=1200)
    cam = avatar.camera
    bad = RefineTarget(image=np.zeros((5, 5, 3), np.float32), mask=np.zeros((5, 5), np.float32), camera=cam,
                       background=np.zeros(3, np.float32))
    with pytest.raises(ValueError, match="must match the camera"):
        refine(avatar, bad, 1, backend="cpu")
    with pytest.raises(ValueError, match="degree-0"):
        refine(replace(avatar, sh=np.zeros((avatar.n_gaussians, 4, 3), np.float32)), bad, 1, backend="cpu")


def test_direct_colours_see_only_the_front_surface():
    avatar = _sphere_avatar(_stripes, n=2000, size=96)
    deformed = deform(avatar, _neutral(avatar), dtype=np.float64)
    from realtime.avatar.binding import triangle_frames

    normals = triangle_frames(deformed.vertices, avatar.rig.faces).rotations[avatar.binding][:, :, 1]
    image = np.zeros((96, 96, 3))
    image[..., 0] = 1.0
    colours, trust, facing = direct_colours(deformed.gaussians.means, normals, avatar.binding, deformed.vertices,
                                            avatar.rig.faces, avatar.camera, image, np.ones((96, 96)))
    front = deformed.gaussians.means[:, 2] > 0.07  # the camera sits on +z: these face it squarely
    back = deformed.gaussians.means[:, 2] < -0.01
    assert np.all(trust[back] == 0) and np.mean(trust[front] > 0.9) > 0.95
    assert np.allclose(colours[front & (trust > 0)], [1, 0, 0], atol=1e-6)
    assert np.all(facing[front] > 0.5) and np.all(facing[back] < 0)


def test_mirror_fill_and_diffusion():
    rng = np.random.default_rng(0)
    left = rng.uniform([-0.1, -0.1, 0], [-0.01, 0.1, 0.1], size=(300, 3))
    points = np.concatenate([left, left * [-1, 1, 1]])
    colours = np.concatenate([np.tile([1.0, 0, 0], (300, 1)), np.zeros((300, 3))])
    trust = np.concatenate([np.ones(300), np.zeros(300)])
    filled, new_trust = mirror_fill(points, colours, trust, max_distance=0.005)
    assert np.allclose(filled[300:], [1, 0, 0]) and np.allclose(new_trust, 1)
    # far from any trusted Gaussian the fill relaxes to the prior; next to them it blends
    line = np.stack([np.linspace(0, 0.2, 101), np.zeros(101), np.zeros(101)], 1)
    known = np.where(line[:, :1] < 0.02, 1.0, 0.0) * [0.0, 1.0, 0.0]
    t = (line[:, 0] < 0.02).astype(float)
    out = diffuse(line, known, t, np.tile([0.0, 0.0, 1.0], (101, 1)), neighbours=2, iterations=200)
    assert np.allclose(out[t > 0], [0, 1, 0])
    assert out[-1, 2] > 0.95 and out[10, 1] > 0.3 and np.all(np.diff(out[10:, 1]) <= 1e-9)


def test_tone_match():
    tones = np.array([[0.5, 0.4, 0.2], [0.9, 0.7, 0.6]])
    scores = tone_match(np.array([[0.5, 0.4, 0.2], [0.85, 0.7, 0.6], [0.1, 0.1, 0.9], [1.0, 1.0, 1.0]]), tones)
    assert scores[0] == 1 and scores[1] == 1 and scores[2] == 0 and 0 <= scores[3] < 0.5
