"""The render parity gate, shared by the CPU test that shows what it rejects and the GPU tests that apply it.

Two pictures are the same picture when their PSNR is at least MIN_PSNR_DB and the 99.9th percentile of their
per-channel pixel difference is at most MAX_P999 (2 levels of 255). PSNR alone averages a wrong picture away:
a head scene with the signs of SH band 1 flipped, or the principal point half a pixel off, still scores about
40 dB; the percentile catches the few pixels that are far off, while leaving room for float rounding.
"""

from __future__ import annotations

import numpy as np

MIN_PSNR_DB = 50.0
MAX_P999 = 2.0 / 255.0
SCENE = {"n": 30_000, "sh_degree": 3, "seed": 1}  # the head scene the gate is applied to
YAW_DEG = 25.0  # the camera turned about the head, so that the higher SH bands show


def turned(camera, centre: np.ndarray, yaw_deg: float = YAW_DEG):
    """The camera orbited about the vertical axis through `centre`."""
    from realtime.camera import Camera
    from realtime.geometry import axis_angle_to_matrix

    turn = np.eye(4)
    R = axis_angle_to_matrix(np.array([0.0, np.radians(yaw_deg), 0.0]))
    turn[:3, :3], turn[:3, 3] = R, centre - R @ centre
    return Camera(K=camera.K, viewmat=camera.viewmat @ turn, width=camera.width, height=camera.height)


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB of two pictures with values in [0, 1] (inf when equal)."""
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(1.0 / mse)


def p999(a: np.ndarray, b: np.ndarray) -> float:
    """The 99.9th percentile of the absolute difference of two pictures, over every pixel and channel."""
    return float(np.percentile(np.abs(np.asarray(a, np.float64) - np.asarray(b, np.float64)), 99.9))


def same_picture(got: np.ndarray, expected: np.ndarray) -> tuple[bool, str]:
    """Whether `got` passes the gate against `expected` (float pictures in [0, 1], or uint8), and the figures."""
    if np.asarray(got).dtype == np.uint8:
        got, expected = np.asarray(got) / 255.0, np.asarray(expected) / 255.0
    if np.shape(got) != np.shape(expected):
        return False, f"shapes differ: expected {np.shape(expected)}, got {np.shape(got)}"
    score, tail = psnr(got, expected), p999(got, expected)
    verdict = bool(score >= MIN_PSNR_DB and tail <= MAX_P999)
    return verdict, (f"PSNR {score:.2f} dB (gate >= {MIN_PSNR_DB:g}), 99.9th percentile difference "
                     f"{tail * 255:.2f}/255 (gate <= {MAX_P999 * 255:g}/255)")


def assert_same_picture(got: np.ndarray, expected: np.ndarray, what: str = "picture") -> None:
    ok, figures = same_picture(got, expected)
    assert ok, f"{what} differs: {figures}"
