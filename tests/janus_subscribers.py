"""N subscribers of a Janus VideoRoom feed in one process, counting the frames each receives without decoding them
(``whep_viewer.count_frames_without_decoding``), so that the count measures the publisher and Janus, not this
process's decoders.

``python tests/janus_subscribers.py API ROOM --count N --seconds S [--vanish K]`` subscribes N peers to the room's
publisher, waits until every one receives frames, counts frames over S seconds, then (with ``--vanish``) drops K
subscribers without leaving (their peer connections just close) and counts again over S seconds.
Prints one JSON line: ``{"feed": id, "fps": [...], "after_vanish": [...]}`` (frames a second per subscriber;
after the vanishing sorted, so the K vanished come first, at 0).
"""
from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from realtime.stream.janus import JanusApi  # noqa: E402
from whep_viewer import COUNTS, count_frames_without_decoding  # noqa: E402

KEEPALIVE_S = 20.0


async def feed_of(api: JanusApi, handle: int, room: int, timeout: float = 20.0) -> int:
    """The id of the room's publisher (waits for one)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        listed = await api.request(handle, {"request": "listparticipants", "room": room})
        feeds = [p["id"] for p in listed["participants"] if p.get("publisher")]
        if feeds:
            return feeds[0]
        await asyncio.sleep(0.5)
    raise RuntimeError(f"no publisher in room {room} after {timeout:g} s")


async def subscribe(http: aiohttp.ClientSession, api_url: str, room: int,
                    feed: int) -> tuple[JanusApi, RTCPeerConnection]:
    """Join ``room`` as a subscriber of ``feed``: Janus offers, this peer answers (every candidate inside)."""
    api = JanusApi(http, api_url)
    await api.create()
    handle = await api.attach()
    await api.message(handle, {"request": "join", "ptype": "subscriber", "room": room, "streams": [{"feed": feed}]})
    offer = await api.wait_event(handle, "videoroom")
    pc = RTCPeerConnection()
    pc.on("track", lambda track: None)  # the receivers decode (count) on their own: nothing reads the track
    await pc.setRemoteDescription(RTCSessionDescription(sdp=offer["jsep"]["sdp"], type="offer"))
    await pc.setLocalDescription(await pc.createAnswer())
    answer = {"type": "answer", "sdp": pc.localDescription.sdp, "trickle": False}
    await api.message(handle, {"request": "start"}, answer)
    return api, pc


async def keepalive(apis: list[JanusApi]) -> None:
    while True:
        await asyncio.sleep(KEEPALIVE_S)
        await asyncio.gather(*(api.keepalive() for api in apis), return_exceptions=True)


async def rates(seconds: float, counts: list) -> list[float]:
    before = [c.frames for c in counts]
    start = time.monotonic()
    await asyncio.sleep(seconds)
    elapsed = time.monotonic() - start
    return [round((c.frames - b) / elapsed, 2) for c, b in zip(counts, before)]


async def main(api_url: str, room: int, count: int, seconds: float, vanish: int) -> dict:
    async with aiohttp.ClientSession() as http:
        lister = JanusApi(http, api_url)
        await lister.create()
        feed = await feed_of(lister, await lister.attach(), room)
        peers = [await subscribe(http, api_url, room, feed) for _ in range(count)]
        alive = asyncio.ensure_future(keepalive([lister, *(api for api, _ in peers)]))
        deadline = time.monotonic() + 30
        while (len(COUNTS) < count or min(c.frames for c in COUNTS) == 0) and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        if len(COUNTS) < count:
            raise RuntimeError(f"only {len(COUNTS)} of {count} subscribers received frames")
        await asyncio.sleep(1.0)  # every subscriber past its first keyframe
        result = {"feed": feed, "fps": await rates(seconds, list(COUNTS))}
        if vanish:
            for _, pc in peers[:vanish]:  # a peer that just disappears: no leave, no hangup, no destroy
                await pc.close()
            result["after_vanish"] = sorted(await rates(seconds, list(COUNTS)))  # the vanished count none
        alive.cancel()
        for api, pc in peers:
            await pc.close()
            await api.destroy()
        await lister.destroy()
        return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("api")
    parser.add_argument("room", type=int)
    parser.add_argument("--count", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--vanish", type=int, default=0)
    args = parser.parse_args()
    count_frames_without_decoding()
    print(json.dumps(asyncio.run(main(args.api, args.room, args.count, args.seconds, args.vanish))), flush=True)
