"""A WHEP viewer made of standard parts only: aiortc for WebRTC, aiohttp's client for HTTP, none of this project's
code. It is what any WHEP player does (draft-ietf-wish-whep): offer to receive video, POST the complete offer as
``application/sdp`` (``Authorization: Bearer T`` when given), apply the ``201 Created`` answer, and DELETE the
``Location`` resource to leave.

``count_frames_without_decoding()`` turns this process's aiortc receivers into frame counters: each complete
encoded frame (its RTP packets reassembled by aiortc's jitter buffer) is counted and never decoded, so many
viewers in one process measure the server, not their own decoders.
"""
from __future__ import annotations

import asyncio
import time
from urllib.parse import urljoin

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError


class WhepViewer:
    """One WHEP session. ``endpoint``: ``http://host:port/whep``."""

    def __init__(self, endpoint: str, token: str | None = None) -> None:
        self.endpoint, self.token = endpoint, token
        self.pc = RTCPeerConnection()
        self.track = None
        self.resource: str | None = None
        self.answer = ""
        self._got_track = asyncio.Event()

    def _headers(self, **extra: str) -> dict[str, str]:
        return {**({"Authorization": f"Bearer {self.token}"} if self.token else {}), **extra}

    async def connect(self, timeout: float = 15.0) -> "WhepViewer":
        self.pc.addTransceiver("video", direction="recvonly")

        @self.pc.on("track")
        def on_track(track):
            if track.kind == "video":
                self.track = track
                self._got_track.set()

        await self.pc.setLocalDescription(await self.pc.createOffer())  # aiortc gathers every candidate first
        async with aiohttp.ClientSession() as http:
            async with http.post(self.endpoint, data=self.pc.localDescription.sdp.encode(),
                                 headers=self._headers(**{"Content-Type": "application/sdp"})) as reply:
                body = await reply.text()
                if reply.status != 201:
                    raise RuntimeError(f"WHEP offer refused: {reply.status} {body.strip()}")
                self.resource = urljoin(self.endpoint, reply.headers["Location"])
        self.answer = body
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=body, type="answer"))
        await asyncio.wait_for(self._got_track.wait(), timeout)
        return self

    async def frames(self, count: int, timeout: float = 30.0) -> list:
        """The next ``count`` decoded frames (av.VideoFrame)."""
        out, deadline = [], time.monotonic() + timeout
        while len(out) < count:
            out.append(await asyncio.wait_for(self.track.recv(), max(0.01, deadline - time.monotonic())))
        return out

    async def drain_for(self, seconds: float, keep=lambda frame: None) -> int:
        """Read decoded frames for ``seconds``, handing each to ``keep``; returns how many arrived."""
        count, end = 0, time.monotonic() + seconds
        while time.monotonic() < end:
            try:
                frame = await asyncio.wait_for(self.track.recv(), max(0.01, end - time.monotonic()))
            except (asyncio.TimeoutError, MediaStreamError):
                break
            keep(frame)
            count += 1
        return count

    async def close(self) -> int:
        """DELETE the session resource and close the peer; returns the DELETE's status."""
        status = 0
        if self.resource:
            async with aiohttp.ClientSession() as http:
                async with http.delete(self.resource, headers=self._headers()) as reply:
                    status = reply.status
        await self.pc.close()
        return status

    async def vanish(self) -> None:
        """Leave without a word: close the peer connection, send no DELETE."""
        await self.pc.close()


class FrameCount:
    """The encoded frames one receiver's stub decoder was handed."""

    def __init__(self) -> None:
        self.frames = 0


COUNTS: list[FrameCount] = []


def count_frames_without_decoding() -> None:
    """Replace aiortc's video decoders in this process by counters (one ``FrameCount`` per receiver, appended
    to COUNTS in the order receivers start decoding). For test processes that only count frames."""
    import aiortc.rtcrtpreceiver as receiver

    class CountingDecoder:
        def __init__(self) -> None:
            self.count = FrameCount()
            COUNTS.append(self.count)

        def decode(self, encoded_frame) -> list:
            self.count.frames += 1
            return []

    real = receiver.get_decoder
    receiver.get_decoder = lambda codec: CountingDecoder() if codec.mimeType.lower().startswith("video/") \
        else real(codec)
