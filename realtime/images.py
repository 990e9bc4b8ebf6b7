"""The one check of the system's edge image type: (H, W, 3) uint8 RGB."""

from __future__ import annotations

import numpy as np


def check_rgb(image: object, what: str = "image", error: type[Exception] = ValueError) -> np.ndarray:
    """Return `image` as a C-contiguous (H, W, 3) uint8 array, or raise `error` saying what `what` should be."""
    if not isinstance(image, np.ndarray):
        raise error(f"{what} must be a numpy array, got {type(image).__name__}")
    if image.dtype != np.uint8:
        raise error(f"{what} must be uint8 RGB, got dtype {image.dtype}")
    if image.ndim != 3 or image.shape[2] != 3:
        raise error(f"{what} must have shape (H, W, 3), got {image.shape}")
    if image.shape[0] < 1 or image.shape[1] < 1:
        raise error(f"{what} must not be empty, got shape {image.shape}")
    return np.ascontiguousarray(image)
