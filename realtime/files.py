"""Files on disk: atomic writes (readers see the old content or the complete new one, never a part) and the
cache folder where generated rigs and built avatars are kept."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path


def cache_dir() -> Path:
    """$XDG_CACHE_HOME/realtime, or ~/.cache/realtime when XDG_CACHE_HOME is unset or empty."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "realtime"


def atomic_write(path: str | Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to a temporary file beside `path`, flush it to disk, then rename it over `path`.

    On any error the temporary file is removed and `path` is left as it was. The new file keeps the
    permissions of the file it replaces (0o644 for a new one).
    """
    path = Path(path)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o644
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            os.fchmod(f.fileno(), mode)
            for chunk in chunks:
                f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
