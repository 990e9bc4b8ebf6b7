"""The stream server: static web client over HTTP, signaling over a WebSocket, WHIP/WHEP, WebRTC peers.

Routes (one port, served by aiohttp):

* ``/`` (index.html): the full client (send your camera, watch, stats, controls);
* ``/view`` (view.html): the bare avatar video, for OBS or call software;
* ``/ws``: signaling, see ``signaling.py`` for the protocol;
* ``/whip`` and ``/whep``: WHIP ingest (RFC 9725: a camera that drives the avatar)
  and WHEP egress (a viewer), one HTTP POST of an SDP offer each, see ``whip.py``;
* ``/stats``: live stats as JSON (fps, per-stage latency, glass-to-glass, sessions,
  the encoder's counters under ``"encoder"``, the producer's
  ``realtime.meters.ProducerStats`` under ``"producer"``, and the voice relay's
  (``audio.VoiceRelay.stats``: level, lip-sync delay, A/V offset) under ``"voice"``);
* the client's assets (``app.js``, ``style.css``).

With a token, pages, ``/ws`` and ``/stats`` need ``?token=T`` (assets are public);
WHIP and WHEP need ``Authorization: Bearer T``, as those standards say.
Binding to anything but a loopback address requires a token. Browsers only give
pages a camera in a secure context: ``http://localhost`` counts, a LAN address
does not (viewers work there; senders need TLS, the ``ssl`` argument).

Each producer frame is encoded once (``encoder.py``, in one worker thread so the
event loop keeps serving) and the same packets go to every viewer (``tracks.py``),
and, with ``publish``, into a Janus VideoRoom that fans them out further (``janus.py``).

Run the test-pattern driver from a shell: ``python -m realtime.stream.server --port 8080``.
"""
from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import dataclasses
import hmac
import ipaddress
import json
import logging
import mimetypes
import os
import resource
import secrets
import signal
import threading
import time
import weakref
from pathlib import Path
from typing import Awaitable, Callable

from aiohttp import WSMsgType, web

from realtime.meters import FpsMeter

from . import signaling
from .audio import VoiceRelay
from .encoder import BITRATE_RANGE, KEYFRAME_INTERVAL_S, StreamEncoder
from .latency import LatencyWindow
from .session import CODECS, Session
from .signaling import Bye, Offer, SenderBusy, ServerFull, SignalingError
from .tracks import FrameBroadcast, check_image
from .janus import JanusPublisher, PublishTarget
from .whip import HttpSessions

log = logging.getLogger(__name__)

DEFAULT_STATIC_DIR = Path(__file__).resolve().parents[1] / "web"  # the client_web/ folder, shipped in the package
PAGES = {"/": "index.html", "/index.html": "index.html", "/view": "view.html", "/view.html": "view.html"}
ASSET_TYPES = {".js", ".css", ".png", ".svg", ".ico"}
MAX_STAGES = 16
LOG_PERIOD_S = 10.0
WS_HEARTBEAT_S = 20.0  # ping idle signaling sockets, so a vanished client's socket is noticed
SHUTDOWN_TIMEOUT_S = 2.0  # how long stop() lets HTTP requests in flight finish
SECURITY_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer", "X-Content-Type-Options": "nosniff"}


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose the server beyond this machine without a token."""
    if not is_loopback(host) and not token:
        raise ValueError(
            f"binding to {host!r} exposes the server beyond this machine: a token is required "
            "(--token T; clients then open /?token=T)"
        )


def _rss_mb() -> float:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    except OSError:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class StreamServer:
    """HTTP + WebSocket + WebRTC server around a frame producer (see ``producer.py``).

    producer: the FrameProducer; host, port: where to listen (port 0 picks a free
    one, see ``.port``); token: required query parameter, mandatory off loopback;
    max_sessions: concurrent peer sessions (viewers + the sender); codec: ``vp8``
    (default) or ``h264``, the one video codec of the stream; bitrate: bits/s of the
    stream, the same for every viewer (None: ``encoder.default_bitrate`` for the
    frame size at ``fps``, the nominal frame rate); keyframe_interval_s: time between
    periodic keyframes (viewers that join or ask get one at once); ice_servers:
    STUN/TURN URLs (none by default: loopback and LAN need none); ssl: an
    ``ssl.SSLContext`` for https/wss; voice: the ``audio.VoiceRelay`` that carries the
    sender's voice to every viewer, given when something besides a sender speaks into it
    (a feed playing a file's sound; default: a new one); publish: a Janus VideoRoom to publish
    the stream into, ``http://host:port/janus?room=N`` (see ``janus.py``; None: none).
    """

    def __init__(self, producer, host: str = "127.0.0.1", port: int = 8080, token: str | None = None, *,
                 max_sessions: int = 8, codec: str = "vp8", bitrate: int | None = None, fps: float = 25.0,
                 keyframe_interval_s: float = KEYFRAME_INTERVAL_S, ice_servers: tuple[str, ...] = (),
                 static_dir: Path | str | None = None, ssl=None, voice: VoiceRelay | None = None,
                 publish: str | None = None) -> None:
        check_bind(host, token)
        if max_sessions < 1:
            raise ValueError(f"max_sessions must be at least 1, got {max_sessions}")
        if codec not in CODECS:
            raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
        self.encoder = StreamEncoder(codec, bitrate, fps, keyframe_interval_s)
        self.producer, self.host, self.token = producer, host, token
        self.max_sessions, self.codec, self.ice_servers, self.ssl = max_sessions, codec, tuple(ice_servers), ssl
        self.static_dir = Path(static_dir) if static_dir else DEFAULT_STATIC_DIR
        if not (self.static_dir / "index.html").is_file():
            raise ValueError(f"web client not found: {self.static_dir / 'index.html'} does not exist")
        self._requested_port = port
        self.port: int | None = None
        self.broadcast = FrameBroadcast()
        self.voice = voice or VoiceRelay()
        self.sessions: dict[str, Session] = {}
        self.max_connections = 4 * max_sessions + 4  # signaling sockets, with or without a session
        self._connections = 0
        self.sender: Session | None = None
        self.latency = LatencyWindow()
        self.processing = LatencyWindow()
        self.stages: dict[str, LatencyWindow] = {}
        self.frames = 0
        self.bad_frames = 0
        self.encoder_drops = 0
        self.producer_error: str | None = None
        self._encode_thread: concurrent.futures.ThreadPoolExecutor | None = None
        self._fps = FpsMeter()
        self._started = time.monotonic()
        self._runner: web.AppRunner | None = None
        self._sockets: weakref.WeakSet[web.WebSocketResponse] = weakref.WeakSet()
        self.http_sessions = HttpSessions(self)
        self.publisher = JanusPublisher(PublishTarget.parse(publish), self.broadcast, codec) if publish else None
        self._tasks: list[asyncio.Task] = []

    # -- lifetime ------------------------------------------------------------------
    async def start(self) -> "StreamServer":
        self._encode_thread = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stream-encode")
        app = web.Application(client_max_size=signaling.HARD_MAX_MESSAGE_BYTES)
        app.add_routes([web.get("/ws", self._handle_ws), web.get("/stats", self._stats_page),
                        *(web.get(path, self._page) for path in PAGES),
                        *self.http_sessions.routes(),
                        web.get("/{name}", self._asset)])
        app.on_response_prepare.append(_security_headers)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._requested_port, ssl_context=self.ssl)
        await site.start()
        self.port = self._runner.addresses[0][1]
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._pump(), name="stream-pump"),
                       loop.create_task(self._log_loop(), name="stream-log")]
        self.voice.start(self.broadcast.newest_latency)
        if self.publisher is not None:
            self.publisher.start()
        return self

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.http_sessions.close()
        if self.publisher is not None:
            await self.publisher.stop()
        await asyncio.gather(*(s.close("server stopping") for s in list(self.sessions.values())))
        self.broadcast.close()
        await self.voice.stop()
        await asyncio.gather(*(ws.close(code=1001, message=b"server stopping") for ws in list(self._sockets)))
        if self._runner is not None:
            await self._runner.cleanup()
        if self._encode_thread is not None:
            self._encode_thread.shutdown(wait=True)

    async def __aenter__(self) -> "StreamServer":
        return await self.start()

    async def __aexit__(self, *exc) -> None:
        await self.stop()

    def page_url(self, page: str = "") -> str:
        """The URL of a page (``""``: the client, ``"view"``, ``"stats"``, ``"ws"``), token included."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        scheme = ("wss" if self.ssl else "ws") if page == "ws" else ("https" if self.ssl else "http")
        query = f"?token={self.token}" if self.token else ""
        return f"{scheme}://{host}:{self.port}/{page}{query}"

    @property
    def url(self) -> str:
        return self.page_url()

    # -- frames -------------------------------------------------------------------
    async def _pump(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            async for frame in self.producer.frames():
                try:
                    check_image(frame.image)
                except ValueError as exc:
                    self.bad_frames += 1
                    if self.bad_frames == 1:
                        log.error("dropping bad frames from the producer: %s", exc)
                    continue
                start = time.perf_counter()
                packet = await loop.run_in_executor(self._encode_thread, self.encoder.encode, frame.image,
                                                    self.broadcast.next_pts(), self.broadcast.take_keyframe_request())
                if packet is None:
                    self.encoder_drops += 1
                    continue
                timings = {**frame.timings, "encode": (time.perf_counter() - start) * 1e3}
                self._count(self.broadcast.publish(packet, frame.capture_ts_ns, timings))
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self.producer_error = f"{type(exc).__name__}: {exc}"
            log.exception("the frame producer failed; the stream is frozen")

    def _count(self, published) -> None:
        self.frames += 1
        self.processing.add((published.published_ns - published.capture_ts_ns) / 1e6)
        for name, ms in published.timings.items():
            if not isinstance(ms, (int, float)) or isinstance(ms, bool):
                continue
            if name in self.stages or len(self.stages) < MAX_STAGES:
                self.stages.setdefault(name, LatencyWindow()).add(ms)
        self._fps.tick()

    def record_latency(self, ms: float) -> None:
        self.latency.add(ms)

    # -- stats ----------------------------------------------------------------------
    def stats_summary(self) -> dict:
        """Server-wide live stats (sent to every session once a second)."""
        return {
            "fps": round(self._fps.fps, 2),
            "frames": self.frames,
            "bad_frames": self.bad_frames,
            "sessions": len(self.sessions),
            "max_sessions": self.max_sessions,
            "processing_ms": self.processing.summary(),
            "stages_ms": {name: w.summary() for name, w in self.stages.items()},
            "glass_to_glass_ms": self.latency.summary(),
            "drops": {
                "viewer_skipped": sum(s.track.skipped for s in self.sessions.values() if s.track),
                "encoder": self.encoder_drops,
            },
            "encoder": dataclasses.asdict(self.encoder.stats()),
            "keyframe_requests": self.broadcast.keyframe_requests,
            "producer": dataclasses.asdict(self.producer.stats()),
            "producer_error": self.producer_error,
            "publish": None if self.publisher is None else self.publisher.stats(),
            "voice": self.voice.stats(),
        }

    def stats(self) -> dict:
        """Everything ``/stats`` shows: the summary, each session, and the process."""
        return {
            **self.stats_summary(),
            "uptime_s": round(time.monotonic() - self._started, 1),
            "session_list": [s.info() for s in self.sessions.values()],
            "process": {
                "tasks": len(asyncio.all_tasks()),
                "threads": threading.active_count(),
                "rss_mb": round(_rss_mb(), 1),
            },
        }

    async def _log_loop(self) -> None:
        while True:
            await asyncio.sleep(LOG_PERIOD_S)
            g2g = self.latency.summary()
            log.info("fps %.1f, sessions %d, processing p50 %s ms, glass-to-glass p50 %s / p95 %s ms (%d samples)",
                     self._fps.fps, len(self.sessions), self.processing.summary()["p50"], g2g["p50"], g2g["p95"],
                     g2g["count"])

    # -- HTTP -----------------------------------------------------------------------
    def _authorized(self, request: web.Request) -> bool:
        if not self.token:
            return True
        return hmac.compare_digest(request.query.get("token", "").encode(), self.token.encode())

    def authorized_bearer(self, request: web.Request) -> bool:
        """Whether a WHIP/WHEP request carries ``Authorization: Bearer T`` (always true without a token)."""
        if not self.token:
            return True
        scheme, _, given = request.headers.get("Authorization", "").partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())

    async def _page(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _text(403, "bad or missing token: open this page with ?token=T\n")
        return self._file(PAGES[request.path])

    async def _stats_page(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _text(403, "bad or missing token: open this page with ?token=T\n")
        return web.Response(body=json.dumps(self.stats()).encode(), content_type="application/json")

    async def _asset(self, request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if Path(name).suffix not in ASSET_TYPES:
            return _text(404, "not found\n")
        return self._file(name)

    def _file(self, name: str) -> web.StreamResponse:
        path = self.static_dir / name
        if not path.is_file():
            return _text(404, "not found\n")
        kind = mimetypes.guess_type(name)[0] or "application/octet-stream"
        if kind.startswith("text/") or kind.endswith("javascript"):
            kind += "; charset=utf-8"
        return web.Response(body=path.read_bytes(), headers={"Content-Type": kind})

    # -- signaling ----------------------------------------------------------------
    async def _handle_ws(self, request: web.Request) -> web.StreamResponse:
        if not self._authorized(request):
            return _text(403, "bad or missing token\n")
        if self._connections >= self.max_connections:
            return _text(503, f"too many signaling connections ({self.max_connections})\n")
        ws = web.WebSocketResponse(max_msg_size=signaling.HARD_MAX_MESSAGE_BYTES, heartbeat=WS_HEARTBEAT_S)
        await ws.prepare(request)
        self._sockets.add(ws)
        session: Session | None = None
        self._connections += 1
        try:
            async for message in ws:
                if message.type not in (WSMsgType.TEXT, WSMsgType.BINARY):
                    break  # an error (e.g. a message over the hard cap: aiohttp closes with 1009)
                try:
                    msg = signaling.parse_signal(message.data)
                    if isinstance(msg, Offer):
                        if session is not None and not session.closed:
                            raise SignalingError("this connection already has a session: send bye first, "
                                                 "or open another connection")
                        session = await self._open_ws_session(msg, ws)
                    elif isinstance(msg, Bye):
                        if session is None or session.closed:
                            raise SignalingError("no session to end: send an offer first")
                        await session.close("bye")
                        session = None
                        await ws.send_str(signaling.encode("bye"))
                except SignalingError as exc:
                    await ws.send_str(signaling.error(str(exc)))
        except ConnectionError:  # the client went away while we answered
            pass
        finally:
            self._connections -= 1
            if session is not None:
                await session.close("signaling connection closed")
        return ws

    async def _open_ws_session(self, offer: Offer, ws: web.WebSocketResponse) -> Session:
        def closed(s: Session, reason: str) -> None:
            if reason.startswith("peer connection"):
                asyncio.get_running_loop().create_task(_notify(ws, signaling.encode("bye", reason=reason)))

        session, sdp = await self.open_session(offer, closed)
        try:
            await ws.send_str(signaling.encode("answer", sdp=sdp, session=session.id))
        except BaseException:  # the client vanished, or cancellation: free the slot
            await session.close("negotiation failed")
            raise
        return session

    async def open_session(self, offer: Offer,
                           on_closed: Callable[[Session, str], None] | None = None) -> tuple[Session, str]:
        """Open a peer session for ``offer``, whatever front end it came by (``/ws``, WHIP, WHEP): returns the
        session and its answer SDP (complete: every ICE candidate inside). ``on_closed(session, reason)`` is
        called once when the session ends. Raises ServerFull at the session cap, SenderBusy for a second
        sender, SignalingError for an offer it cannot use; nothing is left open then."""
        if len(self.sessions) >= self.max_sessions:
            raise ServerFull(f"server full: {len(self.sessions)} of {self.max_sessions} sessions in use, "
                             "try again later")
        if offer.role == "sender" and self.sender is not None:
            raise SenderBusy("a sender is already connected (one camera drives the avatar): "
                             "join as a viewer")

        def closed(s: Session, reason: str) -> None:
            self.sessions.pop(s.id, None)
            if self.sender is s:
                self.sender = None
            if on_closed is not None:
                on_closed(s, reason)

        session = Session(secrets.token_hex(4), offer.role, self, ice_servers=self.ice_servers,
                          codec=self.codec, on_closed=closed)
        self.sessions[session.id] = session
        if offer.role == "sender":
            self.sender = session
        try:
            sdp = await session.open(offer)
        except BaseException:  # refused offer or cancellation: free the slot
            await session.close("negotiation failed")
            raise
        log.info("session %s (%s) open, %d in use", session.id, offer.role, len(self.sessions))
        return session, sdp


async def _notify(ws: web.WebSocketResponse, text: str) -> None:
    if ws.closed:
        return
    try:
        await ws.send_str(text)
    except ConnectionError:
        pass


def _text(status: int, body: str) -> web.Response:
    return web.Response(status=status, text=body)


async def _security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """Every response: never cached, no referrer, no type sniffing."""
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)


async def serve(producer, host: str = "127.0.0.1", port: int = 8080, token: str | None = None, *,
                stop: asyncio.Event | None = None, **options) -> None:
    """Run a StreamServer until ``stop`` is set (forever without one). Options: see StreamServer."""
    async with StreamServer(producer, host, port, token, **options) as server:
        print(f"serving on {server.url} (viewer-only page: {server.page_url('view')})", flush=True)
        await (stop.wait() if stop is not None else asyncio.Future())


def run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` in a new event loop until it returns; SIGINT and SIGTERM set ``stop``, so that
    ``main`` shuts down in order (sessions, server, producer) instead of dying mid-frame."""

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    asyncio.run(run())


def main(argv: list[str] | None = None) -> None:
    """``python -m realtime.stream.server``: serve the test-pattern driver."""
    from .testpattern import TestPatternProducer

    parser = argparse.ArgumentParser(prog="python -m realtime.stream.server", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080, help="0 picks a free port")
    parser.add_argument("--token", default=None, help="required to bind beyond loopback")
    parser.add_argument("--size", type=int, default=256, help="output frame size (square)")
    parser.add_argument("--fps", type=float, default=30.0)
    parser.add_argument("--max-sessions", type=int, default=8)
    parser.add_argument("--codec", choices=sorted(CODECS), default="vp8")
    parser.add_argument("--bitrate", type=int, default=None,
                        help="stream bitrate in kbit/s, the same for every viewer (default: by frame size and fps)")
    parser.add_argument("--keyframe-interval", type=float, default=KEYFRAME_INTERVAL_S,
                        help="seconds between periodic keyframes")
    parser.add_argument("--publish", metavar="URL", default=None,
                        help="also publish the stream into a Janus VideoRoom: http://host:port/janus?room=N")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for noisy in ("aioice", "aiortc", "aiohttp"):  # per-connection chatter
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLogger().level))
    low, high = (rate // 1000 for rate in BITRATE_RANGE)
    if args.bitrate is not None and not low <= args.bitrate <= high:
        parser.error(f"--bitrate is in kbit/s, from {low} to {high}; got {args.bitrate}")
    options = dict(max_sessions=args.max_sessions, codec=args.codec, fps=args.fps,
                   bitrate=None if args.bitrate is None else args.bitrate * 1000,
                   keyframe_interval_s=args.keyframe_interval, publish=args.publish)
    try:
        check_bind(args.host, args.token)
        producer = TestPatternProducer(args.size, args.size, args.fps)
        StreamServer(producer, args.host, args.port, args.token, **options)  # refuses bad options before serving
    except ValueError as exc:
        parser.error(str(exc))

    run_until_signalled(lambda stop: serve(producer, args.host, args.port, args.token, stop=stop, **options))


if __name__ == "__main__":
    main()
