"""Threads for the CPU renderer's kernels (numba functions compiled with nogil=True).

Work is cut into more parts than threads and the threads take parts as they come free, so a
thread that the OS puts aside (other pipeline stages share the cores) does not hold up the frame;
idle threads sleep instead of spinning. One thread runs everything inline on the caller.
We measured numba's own prange threading (OpenMP, static blocks, spinning waits) here: on a busy
2-core machine two threads took many times longer than one.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Sequence


def default_threads() -> int:
    """The cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class Workers:
    """`threads` threads (1: run inline). `parts` is how many pieces to cut a job into."""

    def __init__(self, threads: int) -> None:
        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.parts = 1 if threads == 1 else 4 * threads
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="render") if threads > 1 else None

    def run(self, kernel: Callable, jobs: Sequence[tuple]) -> None:
        """Call kernel(*job) for every job (in parallel when there are threads) and wait for all of them;
        an exception in any job is raised here."""
        if self._pool is None or len(jobs) == 1:
            for job in jobs:
                kernel(*job)
            return
        for future in [self._pool.submit(kernel, *job) for job in jobs]:
            future.result()


INLINE = Workers(1)  # everything on the calling thread
