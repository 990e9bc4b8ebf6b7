"""The headless-Chromium tests' pieces: the skip marker and the check that the pages reported; the browser itself
(fake camera file, start, stop, the server's pages) is benchmarks/chromium.py, which the live benchmark uses too.
"""
from __future__ import annotations

import pytest

from benchmarks.chromium import CHROMIUM, chromium, sessions_by_role, stop_browsers, wait_for_pages, write_y4m

__all__ = ["chromium", "needs_chromium", "pages_reported", "sessions_by_role", "stop_browsers", "wait_for_pages",
           "write_y4m"]

needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")


def pages_reported(stats: dict, roles: tuple[str, ...], frames: int, shown: int) -> bool:
    """Whether each page in `roles` reported at least `frames` shown frames and echoed the capture times of
    `shown` of them (the server's glass-to-glass samples for that page)."""
    by_role = sessions_by_role(stats)
    return all(role in by_role and (by_role[role]["client"] or {}).get("frames", 0) >= frames
               and by_role[role]["glass_to_glass_ms"]["count"] >= shown for role in roles)
