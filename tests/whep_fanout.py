"""N WHEP viewers of one stream server in one process, counting frames at the RTP level (reassembled encoded frames,
never decoded: ``whep_viewer.count_frames_without_decoding``), and the server's CPU time per frame meanwhile.

``python tests/whep_fanout.py http://host:port/ --count N --seconds S --pid PID [--token T]`` connects N viewers to
``/whep``, waits until each receives frames, then over S seconds counts each viewer's frames, the server's published
frames (``/stats``) and the server process's CPU time (``/proc/PID/stat``, user + system). Prints one JSON line:
``{"fps": [...], "server_fps": x, "server_cpu_ms_per_frame": y}``.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import urllib.request

from whep_viewer import COUNTS, WhepViewer, count_frames_without_decoding


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of process ``pid`` (all its threads) so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def published(base: str, token: str | None) -> int:
    with urllib.request.urlopen(base + "stats" + (f"?token={token}" if token else ""), timeout=10) as reply:
        return json.loads(reply.read())["frames"]


async def main(base: str, count: int, seconds: float, pid: int, token: str | None) -> dict:
    viewers = [await WhepViewer(base + "whep", token).connect() for _ in range(count)]
    deadline = time.monotonic() + 30
    while (len(COUNTS) < count or min(c.frames for c in COUNTS) == 0) and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if len(COUNTS) < count:
        raise RuntimeError(f"only {len(COUNTS)} of {count} viewers received frames")
    await asyncio.sleep(1.0)
    before, frames0, cpu0, t0 = [c.frames for c in COUNTS], await asyncio.to_thread(published, base, token), \
        cpu_seconds(pid), time.monotonic()
    await asyncio.sleep(seconds)
    after, frames1, cpu1, t1 = [c.frames for c in COUNTS], await asyncio.to_thread(published, base, token), \
        cpu_seconds(pid), time.monotonic()
    for viewer in viewers:
        await viewer.close()
    return {"fps": [round((a - b) / (t1 - t0), 2) for a, b in zip(after, before)],
            "server_fps": round((frames1 - frames0) / (t1 - t0), 2),
            "server_cpu_ms_per_frame": round(1e3 * (cpu1 - cpu0) / max(1, frames1 - frames0), 2)}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("base", help="the server's base URL, http://host:port/")
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--pid", type=int, required=True, help="the server's process id")
    parser.add_argument("--token")
    args = parser.parse_args()
    count_frames_without_decoding()
    print(json.dumps(asyncio.run(main(args.base, args.count, args.seconds, args.pid, args.token))), flush=True)
