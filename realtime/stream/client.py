"""A Python WebRTC peer for the stream server (no browser needed).

Connects as a viewer or a sender, receives decoded frames, finds each one's
capture time from the server's frame messages (matched by the frame's pts, see
``frametimes.py``) and echoes it over the stats channel as the web client does.
A sender may send a voice too (``voice``: any audio track, e.g. ``ArrayAudioTrack``
or aiortc's ``MediaPlayer(path).audio``); a viewer that ``listen``s receives the
server's voice, every frame kept in ``heard``.
Used by the tests and benchmarks, and to check a server from a headless machine::

    python -m realtime.stream.client ws://127.0.0.1:8080/ws --frames 150
"""
from __future__ import annotations

import argparse
import asyncio
import fractions
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections import deque
from dataclasses import dataclass

import av
import numpy as np
from aiortc import RTCConfiguration, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack, VideoStreamTrack
from websockets.asyncio.client import connect as ws_connect

from .frametimes import RTP_MASK, FrameTimes
from .tracks import check_image

MAX_MESSAGES = 256  # stats, acks and errors kept, newest last
MAX_HEARD = 3000  # voice frames kept by a listening viewer: a minute of 20 ms frames
VOICE_RATE = 48_000
VOICE_FRAME = 960  # samples a frame sent: 20 ms


class ArrayVideoTrack(VideoStreamTrack):
    """A camera stand-in: plays ``frames`` ((H, W, 3) uint8 RGB each) in a loop at ``fps``."""

    def __init__(self, frames: list[np.ndarray], fps: float = 30.0) -> None:
        super().__init__()
        if not frames:
            raise ValueError("ArrayVideoTrack needs at least one frame")
        for f in frames:
            check_image(f)
        self._frames = frames
        self._period = 1.0 / fps
        self._start: float | None = None
        self.sent = 0
        self.sent_ns: list[int] = []  # time.monotonic_ns() as each frame left, in order

    async def recv(self) -> av.VideoFrame:
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.sent * self._period - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        frame = av.VideoFrame.from_ndarray(self._frames[self.sent % len(self._frames)], format="rgb24")
        frame.pts = int(self.sent * self._period * 90_000)
        frame.time_base = fractions.Fraction(1, 90_000)
        self.sent += 1
        self.sent_ns.append(time.monotonic_ns())
        return frame


class ArrayAudioTrack(AudioStreamTrack):
    """A microphone stand-in: plays ``samples`` ((n,) int16 mono at 48 kHz) in a loop, in real time, in 20 ms
    frames. ``sent_ns[k]`` is the monotonic time frame k (samples ``k * 960`` on, modulo n) left, the newest
    ``MAX_HEARD`` of them kept."""

    def __init__(self, samples: np.ndarray) -> None:
        super().__init__()
        samples = np.asarray(samples)
        if samples.dtype != np.int16 or samples.ndim != 1 or samples.size < VOICE_FRAME:
            raise ValueError(f"ArrayAudioTrack needs (n,) int16 samples, n >= {VOICE_FRAME}; got {samples.dtype} "
                             f"{samples.shape}")
        self._samples = np.concatenate([samples, samples[:VOICE_FRAME]])  # a frame may wrap around the end
        self._start: float | None = None
        self.sent = 0
        self.sent_ns: deque[int] = deque(maxlen=MAX_HEARD)

    async def recv(self) -> av.AudioFrame:
        if self.readyState != "live":
            raise MediaStreamError("track ended")
        if self._start is None:
            self._start = time.monotonic()
        wait = self._start + self.sent * VOICE_FRAME / VOICE_RATE - time.monotonic()
        if wait > 0:
            await asyncio.sleep(wait)
        at = self.sent * VOICE_FRAME % (self._samples.size - VOICE_FRAME)
        frame = av.AudioFrame.from_ndarray(self._samples[None, at:at + VOICE_FRAME], format="s16", layout="mono")
        frame.sample_rate, frame.pts = VOICE_RATE, self.sent * VOICE_FRAME
        frame.time_base = fractions.Fraction(1, VOICE_RATE)
        self.sent += 1
        self.sent_ns.append(time.monotonic_ns())
        return frame


@dataclass(frozen=True)
class Heard:
    """One voice frame a listening viewer decoded: its pts (48 kHz, less the first one's), the monotonic ms it
    was handed over, and its samples ((n,) int16, the channels averaged)."""

    pts: int
    got_ms: float
    samples: np.ndarray
    sample_rate: int


@dataclass
class Received:
    """One decoded frame.

    rtp_timestamp: the frame's pts as aiortc hands it over (its RTP timestamp less the first one received);
    got_ms: this machine's monotonic ms when it was decoded; image: (H, W, 3) uint8 RGB and yuv: the decoded
    I420 planes ((3 * H / 2, W) uint8), when kept. Filled in once the server's message for the frame is
    matched (which may be just after ``receive`` returned it): pts, the server's pts of the frame;
    capture_ms, the capture time of its input on the server's clock; latency_ms, ``got_ms - capture_ms``
    (glass-to-glass when the server runs on this machine, sharing its monotonic clock).
    """

    rtp_timestamp: int
    got_ms: float
    width: int
    height: int
    image: np.ndarray | None = None
    yuv: np.ndarray | None = None
    pts: int | None = None
    capture_ms: float | None = None
    latency_ms: float | None = None


class PeerClient:
    """One WebRTC session with a stream server. ``ws_url``: ``ws://host:port/ws[?token=T]``."""

    def __init__(self, ws_url: str, role: str = "viewer", source: MediaStreamTrack | None = None, *,
                 voice: MediaStreamTrack | None = None, listen: bool = False) -> None:
        if role == "sender" and source is None:
            raise ValueError("a sender needs a source track")
        if voice is not None and role != "sender":
            raise ValueError("only a sender sends a voice")
        self.ws_url, self.role, self.source = ws_url, role, source
        self.voice, self.listen = voice, listen
        self.voice_track: MediaStreamTrack | None = None
        self.heard: deque[Heard] = deque(maxlen=MAX_HEARD)
        self._hearing: asyncio.Task | None = None
        self.ws = None
        self.pc: RTCPeerConnection | None = None
        self.channel = None
        self.track: MediaStreamTrack | None = None
        self.messages: deque[dict] = deque(maxlen=MAX_MESSAGES)
        self.frame_times = FrameTimes()
        self.frames = 0
        self._channel_open = asyncio.Event()

    async def open_signaling(self) -> None:
        self.ws = await ws_connect(self.ws_url, max_size=2**22)

    async def request(self, message: str | bytes | dict, timeout: float = 10.0) -> dict:
        """Send one raw signaling message and return the server's reply."""
        if self.ws is None:
            await self.open_signaling()
        await self.ws.send(json.dumps(message) if isinstance(message, dict) else message)
        return json.loads(await asyncio.wait_for(self.ws.recv(), timeout))

    async def connect(self, timeout: float = 10.0) -> dict:
        """Offer, apply the answer, and wait for the video track. Returns the answer message.

        Raises RuntimeError with the server's message when it refuses.
        """
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[]))
        if self.role == "sender":
            self.pc.addTransceiver(self.source, direction="sendrecv")
        else:
            self.pc.addTransceiver("video", direction="recvonly")
        if self.voice is not None:
            self.pc.addTransceiver(self.voice, direction="sendonly")
        if self.listen:
            self.pc.addTransceiver("audio", direction="recvonly")
        self.channel = self.pc.createDataChannel("stats")
        self.channel.on("open", self._channel_open.set)
        self.channel.on("message", self._on_message)
        got_track = asyncio.Event()

        @self.pc.on("track")
        def _on_track(track):
            if track.kind == "video":
                self.track = track
                got_track.set()
            elif self.listen and self.voice_track is None:
                self.voice_track = track
                self._hearing = asyncio.get_running_loop().create_task(self._hear(track), name="hear")

        await self.pc.setLocalDescription(await self.pc.createOffer())
        reply = await self.request({"type": "offer", "sdp": self.pc.localDescription.sdp, "role": self.role}, timeout)
        if reply.get("type") != "answer":
            raise RuntimeError(f"server refused the offer: {reply.get('message', reply)}")
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=reply["sdp"], type="answer"))
        await asyncio.wait_for(got_track.wait(), timeout)
        return reply

    def _on_message(self, raw: str) -> None:
        msg = json.loads(raw)
        if msg.get("type") == "ping":
            self.channel.send(json.dumps({"type": "pong", "t": msg["t"]}))
        elif msg.get("type") == "frame":
            self._matched(self.frame_times.announce(msg["pts"], msg["capture_ms"]))
        else:
            self.messages.append(msg)

    def _matched(self, resolved: list[tuple[Received, float]]) -> None:
        """Fill in frames whose capture time is now known, and echo each to the server."""
        for received, capture_ms in resolved:
            received.capture_ms = capture_ms
            received.pts = (received.rtp_timestamp - self.frame_times.offset) & RTP_MASK
            received.latency_ms = received.got_ms - capture_ms
            if self.channel is not None and self.channel.readyState == "open":
                held = time.monotonic_ns() / 1e6 - received.got_ms
                self.send_channel({"type": "shown", "capture_ms": capture_ms, "held_ms": held})

    def request_keyframe(self) -> None:
        """Ask the server for a keyframe (as the web client does when its decoder asks for one)."""
        self.send_channel({"type": "keyframe"})

    def send_channel(self, message: dict) -> None:
        self.channel.send(json.dumps(message))

    async def wait_channel(self, timeout: float = 10.0) -> None:
        await asyncio.wait_for(self._channel_open.wait(), timeout)

    async def receive(self, count: int, timeout: float = 30.0, keep_images: bool = False) -> list[Received]:
        """Receive ``count`` decoded frames; each is matched with its capture time and echoed to the server
        as soon as the server's message for it is here."""
        out: list[Received] = []
        deadline = time.monotonic() + timeout
        while len(out) < count:
            frame = await asyncio.wait_for(self.track.recv(), max(0.01, deadline - time.monotonic()))
            received = Received(int(frame.pts), time.monotonic_ns() / 1e6, frame.width, frame.height)
            if keep_images:
                received.image = frame.to_ndarray(format="rgb24")
                received.yuv = frame.to_ndarray(format="yuv420p")
            self.frames += 1
            out.append(received)
            self._matched(self.frame_times.shown(received.rtp_timestamp, received))
        return out

    async def _hear(self, track: MediaStreamTrack) -> None:
        """Drain the voice as it comes (aiortc's receive queue has no bound), keeping the newest frames."""
        while True:
            try:
                frame = await track.recv()
            except MediaStreamError:
                return
            planes, channels = frame.to_ndarray(), len(frame.layout.channels)
            mono = planes.mean(axis=0) if frame.format.is_planar else planes.reshape(-1, channels).mean(axis=1)
            samples = mono.astype(np.int16)
            self.heard.append(Heard(int(frame.pts), time.monotonic_ns() / 1e6, samples, frame.sample_rate))

    async def close(self) -> None:
        """Leave cleanly: close the peer connection and the signaling socket."""
        if self._hearing is not None:
            self._hearing.cancel()
        if self.pc is not None:
            await self.pc.close()
        if self.ws is not None:
            await self.ws.close()

    async def vanish(self) -> None:
        """Disappear without a goodbye: drop the signaling TCP connection, then the peer."""
        if self.ws is not None:
            self.ws.transport.abort()
        if self.pc is not None:
            await self.pc.close()


class ServerProcess:
    """``python -m MODULE ARGS --port 0`` in a subprocess, as a user starts it.

    MODULE is ``realtime.stream.server`` (the test-pattern server) by default; the real
    server is ``ServerProcess(["serve", ...], module="realtime.app.cli")``. Use as a context
    manager; ``url`` is the client page (read from the "serving on URL" line), ``ws_url``
    the signaling socket, ``stats()`` reads ``/stats``. The server's log goes to ``log_path``.
    """

    def __init__(self, args: list[str] = (), startup_timeout: float = 30.0,
                 module: str = "realtime.stream.server") -> None:
        self.args, self.startup_timeout, self.module = list(args), startup_timeout, module
        self.proc: subprocess.Popen | None = None
        self.url = self.ws_url = ""

    def __enter__(self) -> "ServerProcess":
        root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [root, os.environ.get("PYTHONPATH")])),
                   PYTHONUNBUFFERED="1")
        self._log = tempfile.NamedTemporaryFile("w+", prefix="stream-server-", suffix=".log", delete=False)
        self.log_path = self._log.name
        self.proc = subprocess.Popen([sys.executable, "-m", self.module, *self.args, "--port", "0"],
                                     cwd=root, env=env, stdout=subprocess.PIPE, stderr=self._log, text=True)
        # stdout is read by a thread for as long as the server runs (so that it never blocks on a full pipe), and
        # the wait for the "serving on" line has a deadline even when the server prints nothing at all
        self._stdout: deque[str] = deque(maxlen=MAX_MESSAGES)
        self._ready = threading.Event()  # the address was read, or stdout closed
        self._reader = threading.Thread(target=self._read_stdout, name="server-stdout", daemon=True)
        self._reader.start()
        if self._ready.wait(self.startup_timeout) and self.url:
            return self
        try:
            exited = self.proc.wait(5) if self._ready.is_set() else None  # stdout closed: the server is exiting
        except subprocess.TimeoutExpired:
            exited = None
        self.__exit__()
        why = f"it exited with status {exited}" if exited is not None else f"no address in {self.startup_timeout:g} s"
        raise RuntimeError(f"the server did not start ({why}); its output: {''.join(self._stdout)[-1000:]!r}; "
                           f"log: {open(self.log_path).read()[-2000:]}")

    def _read_stdout(self) -> None:
        for line in self.proc.stdout:
            self._stdout.append(line)
            match = None if self.url else re.search(r"serving on (\S+)", line)
            if match:
                base, _, query = match.group(1).partition("?")
                self.ws_url = base.replace("http", "ws", 1) + "ws" + (f"?{query}" if query else "")
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def stats(self) -> dict:
        base, _, query = self.url.partition("?")
        with urllib.request.urlopen(base + "stats" + (f"?{query}" if query else ""), timeout=10) as r:
            return json.loads(r.read())

    def log(self) -> str:
        with open(self.log_path) as f:
            return f.read()

    def __exit__(self, *exc) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc is not None:
            self._reader.join(10)  # stdout ends with the process
            self.proc.stdout.close()
        self._log.close()


async def _check(ws_url: str, frames: int) -> None:
    client = PeerClient(ws_url)
    await client.connect()
    got = await client.receive(frames)
    lat = [r.latency_ms for r in got if r.latency_ms is not None]
    print(f"{len(got)} frames {got[0].width}x{got[0].height}, {len(lat)} with their capture time; "
          f"latency on this machine's clock p50 {np.percentile(lat, 50):.1f} ms "
          f"(valid only when the server runs on this machine)" if lat else "no capture times matched")
    await client.close()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m realtime.stream.client", description=__doc__.split("\n")[0])
    parser.add_argument("ws_url", help="ws://host:port/ws[?token=T]")
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args(argv)
    asyncio.run(_check(args.ws_url, args.frames))


if __name__ == "__main__":
    main()
