"""The newest-wins mailbox between threads: a stage always takes the newest input, and no queue can grow.

The one home of this pattern: the live loop's stages and the test pattern's camera input use it. The stream's
`FrameBroadcast` is a different thing: a short ring of encoded frames that every viewer reads in order.
"""

from __future__ import annotations

import threading


class Latest:
    """A one-slot mailbox between threads: `put` replaces an unread value (counted in `dropped`)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._value = None
        self._fresh = False
        self._closed = False
        self.dropped = 0

    def put(self, value) -> None:
        with self._cond:
            if self._fresh:
                self.dropped += 1
            self._value, self._fresh = value, True
            self._cond.notify_all()

    def get(self, timeout: float | None = None):
        """The newest unread value; None once closed or after `timeout` seconds."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._fresh or self._closed, timeout) or self._closed:
                return None
            self._fresh = False
            return self._value

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
