"""A viewer's side of the capture times that travel beside the frames (see ``latency.py``).

The server sends ``{"type": "frame", "pts": P, "capture_ms": C}`` for each frame
it hands to this viewer's sender. The frame arrives with RTP timestamp
``R = (P + offset) mod 2**32``, where ``offset`` is fixed for the session but not
known to the viewer (aiortc's sender starts its RTP clock at a random value; a
Python aiortc receiver also subtracts its first frame's timestamp). Only
differences between timestamps survive, so the offset is found by matching: each
shown frame's ``R`` minus each announced ``P`` is a candidate, and the offset is the
candidate that explains at least ``MIN_MATCHES`` recently shown frames and more
than twice as many as any other candidate (frame times are taken from the server's
clock, so their spacing is irregular and a wrong offset explains few frames; were
frames evenly spaced, every shift would explain them alike, and no offset is taken
rather than a wrong one). Either side may
come first: a frame shown before its message waits (up to ``MAX_PENDING`` of them)
and is resolved when the message arrives.

The browser's twin is ``client_web/frametimes.js``; both follow these rules, and a
test feeds them the same sequences.
"""
from __future__ import annotations

from collections import Counter, deque
from typing import Any

RTP_MASK = 0xFFFFFFFF
MAX_FRAMES = 128  # announced frames remembered: about 5 s at 25 fps
MAX_PENDING = 16  # shown frames waiting for their message
RECENT = 8  # shown frames the offset is matched against
MIN_MATCHES = 3


class FrameTimes:
    """Matches shown frames (by RTP timestamp) with the server's frame messages (by pts).

    ``announce`` and ``shown`` both return the newly resolved frames as ``[(token, capture_ms)]``, where
    ``token`` is whatever the caller passed to ``shown`` for that frame.
    """

    def __init__(self) -> None:
        self._capture: dict[int, float] = {}  # pts -> capture_ms, oldest first
        self._pending: deque[tuple[int, Any]] = deque()
        self._recent: deque[int] = deque(maxlen=RECENT)
        self.offset: int | None = None
        self.matched = 0
        self.unmatched = 0  # shown frames given up on (their message never came, or no offset yet)

    def announce(self, pts: int, capture_ms: float) -> list[tuple[Any, float]]:
        """The server's message for frame ``pts``."""
        self._capture[int(pts) & RTP_MASK] = float(capture_ms)
        if len(self._capture) > MAX_FRAMES:
            del self._capture[next(iter(self._capture))]
        return self._resolve()

    def shown(self, rtp_timestamp: int, token: Any) -> list[tuple[Any, float]]:
        """A frame shown (decoded, presented) with this RTP timestamp."""
        rtp = int(rtp_timestamp) & RTP_MASK
        self._recent.append(rtp)
        self._pending.append((rtp, token))
        if len(self._pending) > MAX_PENDING:
            self._pending.popleft()
            self.unmatched += 1
            if self.offset is not None and all(self._lookup(r) is None for r, _ in self._pending):
                self.offset = None  # nothing matches any more: find the offset again
        return self._resolve()

    def _lookup(self, rtp: int) -> float | None:
        return self._capture.get((rtp - self.offset) & RTP_MASK)

    def _find_offset(self) -> int | None:
        shown = set(self._recent)
        if len(shown) < MIN_MATCHES:
            return None
        votes = Counter((r - p) & RTP_MASK for r in shown for p in self._capture)
        ranked = votes.most_common(2)
        if not ranked or ranked[0][1] < MIN_MATCHES or (len(ranked) > 1 and ranked[0][1] <= 2 * ranked[1][1]):
            return None
        return ranked[0][0]

    def _resolve(self) -> list[tuple[Any, float]]:
        if self.offset is None:
            self.offset = self._find_offset()
            if self.offset is None:
                return []
        done, waiting = [], deque()
        for rtp, token in self._pending:
            capture = self._lookup(rtp)
            if capture is None:
                waiting.append((rtp, token))
            else:
                done.append((token, capture))
        self._pending = waiting
        self.matched += len(done)
        return done
