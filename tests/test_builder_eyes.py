"""The builder's eyes: eyeballs painted as eyes in the portrait's own iris and sclera colours."""

import numpy as np
import pytest
from skimage import data

from realtime.builder.eyes import (LIMBUS_SHADE, PUPIL_COLOUR, SOCKET_SHADE, EyeTones, eyeball_colours, paint_eyes,
                                   photo_eye_tones)
from realtime.face.detector import LandmarkDetector

TONES = EyeTones(iris=np.array([0.35, 0.22, 0.12]), sclera=np.array([0.85, 0.82, 0.8]))


def _sphere(centre, radius, n=4000, seed=0):
    d = np.random.default_rng(seed).normal(size=(n, 3))
    return centre + radius * d / np.linalg.norm(d, axis=1, keepdims=True)


def test_an_eyeball_shows_pupil_iris_and_sclera_round_its_axis():
    centre, radius = np.zeros(3), 0.012
    iris_centre, iris_radius = np.array([0.0, 0.0, radius]), 0.0058
    points = _sphere(centre, radius)
    colours = eyeball_colours(points, centre, iris_centre, iris_radius, TONES)
    angle = np.arccos(np.clip(points[:, 2] / radius, -1, 1)) / np.arctan2(iris_radius, radius)  # 1 at the rim
    for where, colour in ((angle < 0.3, PUPIL_COLOUR), ((angle > 0.55) & (angle < 0.8), TONES.iris),
                          (angle > 1.2, TONES.sclera)):
        assert where.sum() > 10
        np.testing.assert_allclose(colours[where], np.broadcast_to(colour, (where.sum(), 3)), atol=1e-9)
    rim = colours[(angle > 0.97) & (angle < 1.0)]
    assert np.all(rim.sum(1) < TONES.iris.sum() * (1 + LIMBUS_SHADE) / 2)  # a darker ring at the iris' edge
    # turned: the iris follows the axis
    turned = eyeball_colours(points, centre, np.array([radius, 0.0, 0.0]), iris_radius, TONES)
    assert np.allclose(turned[points[:, 0] > 0.99 * radius], PUPIL_COLOUR)


def test_paint_eyes_paints_eyeballs_and_shades_sockets_only():
    rest_vertices = np.zeros((478, 3))
    for iris, x in (((473, 474, 475, 476, 477), 0.03), ((468, 469, 470, 471, 472), -0.03)):
        rest_vertices[iris[0]] = [x, 0.0, 0.012]
        rest_vertices[list(iris[1:])] = [[x + 0.006, 0, 0.0104], [x, 0.006, 0.0104], [x - 0.006, 0, 0.0104],
                                         [x, -0.006, 0.0104]]
    centres = np.array([[0.03, 0.0, 0.0], [-0.03, 0.0, 0.0]])
    points = np.concatenate([_sphere(centres[0], 0.012, 500), _sphere(centres[1], 0.012, 500, seed=1),
                             np.random.default_rng(2).uniform(-0.05, 0.05, (300, 3))])
    eyeball = np.repeat([1, 2, 0], [500, 500, 300])
    socket = np.zeros(len(points), bool)
    socket[-100:] = True
    colours = np.full((len(points), 3), 0.5)
    out = paint_eyes(colours, points, eyeball, socket, rest_vertices, centres, TONES)
    np.testing.assert_array_equal(out[1000:1200], colours[1000:1200])        # the skin is left alone
    np.testing.assert_allclose(out[-100:], np.tile(TONES.sclera * SOCKET_SHADE, (100, 1)))
    front = points[:500, 2] > 0.0119                                        # the left eye's front: its pupil
    assert np.allclose(out[:500][front], PUPIL_COLOUR)


def test_photo_tones_of_the_astronaut():
    image = data.astronaut().astype(np.float32) / 255
    with LandmarkDetector(static_image_mode=True) as detector:
        points = detector.detect_largest(data.astronaut()).points
    tones = photo_eye_tones(image, points)
    assert tones.sclera.sum() > tones.iris.sum() + 0.3     # the white of the eye is brighter than the iris
    assert tones.iris[0] >= tones.iris[2]                  # brown eyes, not blue
    blank = photo_eye_tones(np.zeros((32, 32, 3), np.float32), points * 0.01)  # an opening of no pixels
    assert blank.sclera == pytest.approx(np.array([0.80, 0.75, 0.72]))
