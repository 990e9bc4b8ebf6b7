"""The one reader of the system's .npz inputs (tracked parameters, FLAME landmark embeddings, GaussianAvatars'
flame_param.npz): every array loaded, nothing unpickled, clear errors."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np


def read_npz(path: str | Path, required: tuple[str, ...], error: type[Exception],
             unreadable: str) -> dict[str, np.ndarray]:
    """All arrays of the .npz at `path`, by name. Raises `error` naming the file when it cannot be read as an
    .npz ("{path}: {unreadable}: {why}") or lacks any of `required`."""
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {name: npz[name] for name in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise error(f"{path}: {unreadable}: {exc}") from exc
    missing = [name for name in required if name not in arrays]
    if missing:
        raise error(f"{path} lacks {', '.join(missing)} (missing {', '.join(map(repr, missing))} of the arrays it "
                    f"needs: {', '.join(required)})")
    return arrays
