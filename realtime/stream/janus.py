"""Publish the avatar stream into a Janus VideoRoom, so that Janus (the SFU) fans it out to any number of viewers.

``realtime serve --publish URL`` with ``URL`` the Janus HTTP API endpoint and the
room as a query: ``http://127.0.0.1:8088/janus?room=1234`` (optional ``pin=P``
for a room with a PIN, ``display=NAME`` for the publisher's name, ``id=N`` for a
fixed publisher id, so viewers find the feed again after a republish). The
publisher sends the stream's encoded packets as they are (``tracks.py``): Janus
gets the same encode every direct viewer gets, and this process encodes once
whatever the number of viewers behind Janus.

Janus's own API, over HTTP (``JanusApi``): create a session, attach the
``janus.plugin.videoroom`` handle, ``joinandconfigure`` as a publisher with our
offer (complete: ``"trickle": false``, every candidate inside), apply Janus's
answer. A long poll on the session (``GET /janus/<session>``) carries Janus's
events and keeps the session alive; a ``keepalive`` goes out as well every
``KEEPALIVE_S``. When anything fails (Janus stops or restarts, the session is
gone, the handle is hung up, the peer connection fails) the publisher tears its
side down and publishes again, waiting ``RETRY_S`` seconds at first and up to
``MAX_RETRY_S`` between attempts, for as long as the server runs. Janus's
keyframe requests (PLI/FIR, sent when a viewer joins) reach the stream's one
encoder.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
import time
from dataclasses import asdict, dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

import aiohttp
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.rtcrtpsender import RTCRtpSender

from .session import codec_preferences
from .tracks import BroadcastTrack, FrameBroadcast

log = logging.getLogger(__name__)

PLUGIN = "janus.plugin.videoroom"
REQUEST_TIMEOUT_S = 10.0
LONG_POLL_S = 30.0  # Janus answers a long poll with a keepalive after 30 s without events
KEEPALIVE_S = 20.0  # below Janus's default session timeout (60 s)
CONNECT_TIMEOUT_S = 20.0  # from the answer to a connected peer
RETRY_S, MAX_RETRY_S = 1.0, 10.0


class JanusError(RuntimeError):
    """Janus refused a request, or could not be reached."""


@dataclass(frozen=True)
class PublishTarget:
    """Where to publish: the Janus HTTP API endpoint (``api``), the VideoRoom ``room``, its ``pin`` (None:
    no PIN), the publisher's ``display`` name and fixed ``feed`` id (None: Janus picks one)."""

    api: str
    room: int
    pin: str | None = None
    display: str = "avatar"
    feed: int | None = None

    @classmethod
    def parse(cls, url: str) -> "PublishTarget":
        """``http[s]://host:port/janus?room=N[&pin=P][&display=NAME][&id=N]``. Raises ValueError."""
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"--publish needs Janus's HTTP API URL, http://host:port/janus?room=N; got {url!r}")
        query = {key: values[-1] for key, values in parse_qs(parts.query).items()}
        unknown = set(query) - {"room", "pin", "display", "id"}
        if unknown:
            raise ValueError(f"--publish: unknown parameter {', '.join(sorted(unknown))} (room, pin, display, id)")
        numbers = {}
        for key in ("room", "id"):
            if key in query:
                if not query[key].isdigit() or not 0 < int(query[key]) < 2**53:
                    raise ValueError(f"--publish: {key} must be a positive integer, got {query[key]!r}")
                numbers[key] = int(query[key])
        if "room" not in numbers:
            raise ValueError(f"--publish: say which VideoRoom, e.g. {url}?room=1234")
        display = query.get("display", "avatar")
        if not 0 < len(display) <= 100:
            raise ValueError("--publish: display must be 1 to 100 characters")
        api = urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") or "/janus", "", ""))
        return cls(api, numbers["room"], query.get("pin"), display, numbers.get("id"))


class JanusApi:
    """A thin client of Janus's HTTP API: one Janus session, its plugin handles, and its event long poll.

    ``http``: an aiohttp ClientSession the caller owns. Every request is bounded by REQUEST_TIMEOUT_S; Janus's
    refusals raise JanusError with its reason.
    """

    def __init__(self, http: aiohttp.ClientSession, api: str) -> None:
        self.http, self.api = http, api.rstrip("/")
        self.session: int | None = None

    async def _post(self, path: str, body: dict) -> dict:
        body = {**body, "transaction": secrets.token_hex(6)}
        try:
            async with self.http.post(self.api + path, json=body,
                                      timeout=aiohttp.ClientTimeout(total=REQUEST_TIMEOUT_S)) as reply:
                answer = await reply.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise JanusError(f"Janus at {self.api} did not answer: {type(exc).__name__}: {exc}") from None
        if answer.get("janus") == "error":
            error = answer.get("error", {})
            raise JanusError(f"Janus refused {body.get('janus')}: {error.get('reason')} ({error.get('code')})")
        return answer

    async def create(self) -> int:
        self.session = (await self._post("", {"janus": "create"}))["data"]["id"]
        return self.session

    async def attach(self, plugin: str = PLUGIN) -> int:
        return (await self._post(f"/{self.session}", {"janus": "attach", "plugin": plugin}))["data"]["id"]

    async def message(self, handle: int, body: dict, jsep: dict | None = None) -> dict:
        """Send a plugin request; returns Janus's reply: ``success`` with ``plugindata`` for a synchronous
        request, ``ack`` for one answered later by an event (see ``events``)."""
        return await self._post(f"/{self.session}/{handle}",
                                {"janus": "message", "body": body, **({"jsep": jsep} if jsep else {})})

    async def request(self, handle: int, body: dict) -> dict:
        """A synchronous plugin request (``list``, ``listparticipants``, ...): returns the plugin's data."""
        data = (await self.message(handle, body)).get("plugindata", {}).get("data", {})
        if "error" in data:
            raise JanusError(f"the VideoRoom refused {body.get('request')}: {data['error']}")
        return data

    async def keepalive(self) -> None:
        await self._post(f"/{self.session}", {"janus": "keepalive"})

    async def events(self, max_events: int = 10) -> list[dict]:
        """One long poll: the session's next events (an empty list when Janus only kept the poll alive)."""
        try:
            async with self.http.get(f"{self.api}/{self.session}", params={"maxev": str(max_events)},
                                     timeout=aiohttp.ClientTimeout(total=LONG_POLL_S + REQUEST_TIMEOUT_S)) as reply:
                answer = await reply.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise JanusError(f"Janus at {self.api} went away: {type(exc).__name__}: {exc}") from None
        events = answer if isinstance(answer, list) else [answer]
        for event in events:
            if event.get("janus") == "error":
                raise JanusError(f"Janus: {event.get('error', {}).get('reason')}")
        return [e for e in events if e.get("janus") != "keepalive"]

    async def wait_event(self, handle: int, key: str, timeout: float = REQUEST_TIMEOUT_S) -> dict:
        """The next event of ``handle`` whose plugin data has ``key`` (or that carries an error), long-polling."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event in await asyncio.wait_for(self.events(), max(0.1, deadline - time.monotonic())):
                data = event.get("plugindata", {}).get("data", {})
                if event.get("sender") == handle and "error" in data:
                    raise JanusError(f"the VideoRoom refused: {data['error']} ({data.get('error_code')})")
                if event.get("sender") == handle and key in data:
                    return event
        raise JanusError(f"no {key!r} event from Janus in {timeout:g} s")

    async def destroy(self) -> None:
        """End the Janus session (its handles and peer connections go with it); quiet when Janus is gone."""
        if self.session is None:
            return
        try:
            await self._post(f"/{self.session}", {"janus": "destroy"})
        except JanusError:
            pass
        self.session = None


def forward_keyframe_requests(sender: RTCRtpSender, broadcast: FrameBroadcast) -> None:
    """Make the RTCP keyframe requests (PLI, FIR) that ``sender`` receives ask the stream's one encoder for a
    keyframe. aiortc acts on them only for the raw frames it encodes itself (its ``_send_keyframe`` hook), so
    for already-encoded packets they would be dropped; the broadcast rate-limits what it is asked."""
    sender._send_keyframe = broadcast.request_keyframe


@dataclass
class PublisherStats:
    """state: ``connecting`` | ``publishing`` | ``waiting`` (to retry) | ``stopped``; publishes: times a publish
    succeeded; attempts: times one was tried; feed: the publisher id in the room; frames_sent: encoded frames
    handed to Janus by the current publish; last_error: why the last publish ended or failed."""

    target: str
    state: str = "connecting"
    attempts: int = 0
    publishes: int = 0
    feed: int | None = None
    frames_sent: int = 0
    last_error: str | None = None


class JanusPublisher:
    """Publishes ``broadcast`` (the stream's encoded frames, codec ``codec``) into the VideoRoom of ``target``,
    and publishes again whenever that ends, until ``stop``."""

    def __init__(self, target: PublishTarget, broadcast: FrameBroadcast, codec: str = "vp8") -> None:
        self.target, self.broadcast, self.codec = target, broadcast, codec
        self._stats = PublisherStats(target=f"{target.api}?room={target.room}")
        self._task: asyncio.Task | None = None
        self._pc: RTCPeerConnection | None = None
        self._track: BroadcastTrack | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="janus-publish")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        self._stats.state = "stopped"

    def stats(self) -> dict:
        if self._track is not None:
            self._stats.frames_sent = self._track.sent
        return asdict(self._stats)

    async def _run(self) -> None:
        delay = RETRY_S
        async with aiohttp.ClientSession() as http:
            while True:
                api = JanusApi(http, self.target.api)
                self._stats.state, self._stats.attempts = "connecting", self._stats.attempts + 1
                try:
                    await self._publish(api)
                    self._stats.state, self._stats.publishes = "publishing", self._stats.publishes + 1
                    log.info("publishing into Janus room %d as feed %s (%s)", self.target.room, self._stats.feed,
                             self.target.api)
                    delay = RETRY_S
                    await self._supervise(api)
                except Exception as exc:  # whatever ended it (Janus gone, a refusal, a failed peer): again, later
                    self._stats.last_error = f"{type(exc).__name__}: {exc}"
                    log.warning("publishing into Janus: %s; again in %.0f s", self._stats.last_error, delay)
                finally:
                    await self._teardown(api)
                self._stats.state = "waiting"
                await asyncio.sleep(delay)
                delay = min(MAX_RETRY_S, 2 * delay)

    async def _publish(self, api: JanusApi) -> None:
        await api.create()
        handle = await api.attach()
        self._pc = RTCPeerConnection()
        self._track = BroadcastTrack(self.broadcast)
        transceiver = self._pc.addTransceiver(self._track, direction="sendonly")
        transceiver.setCodecPreferences(codec_preferences(self.codec))
        forward_keyframe_requests(transceiver.sender, self.broadcast)
        await self._pc.setLocalDescription(await self._pc.createOffer())  # gathers every candidate first
        body: dict[str, Any] = {"request": "joinandconfigure", "ptype": "publisher", "room": self.target.room,
                                "display": self.target.display, "audio": False, "video": True}
        if self.target.pin is not None:
            body["pin"] = self.target.pin
        if self.target.feed is not None:
            body["id"] = self.target.feed
        await api.message(handle, body, {"type": "offer", "sdp": self._pc.localDescription.sdp, "trickle": False})
        joined = await api.wait_event(handle, "videoroom")
        if "jsep" not in joined:
            raise JanusError(f"Janus sent no answer to the publisher's offer: {joined.get('plugindata')}")
        self._stats.feed = joined["plugindata"]["data"].get("id", self.target.feed)
        await self._pc.setRemoteDescription(RTCSessionDescription(sdp=joined["jsep"]["sdp"], type="answer"))
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while self._pc.connectionState != "connected":
            if self._pc.connectionState in ("failed", "closed") or time.monotonic() > deadline:
                raise JanusError(f"the peer connection to Janus did not connect ({self._pc.connectionState})")
            await asyncio.sleep(0.05)

    async def _supervise(self, api: JanusApi) -> None:
        """Return (raising JanusError) when the publish has ended: Janus gone, session or handle ended, peer
        connection failed. Keeps the Janus session alive meanwhile."""
        failed = asyncio.Event()
        self._pc.on("connectionstatechange",
                    lambda: failed.set() if self._pc.connectionState in ("failed", "closed") else None)

        async def poll() -> None:
            while True:
                for event in await api.events():
                    if event.get("janus") in ("hangup", "detached"):
                        raise JanusError(f"Janus ended the publish: {event.get('reason', event['janus'])}")

        async def keepalive() -> None:
            while True:
                await asyncio.sleep(KEEPALIVE_S)
                await api.keepalive()

        async def peer() -> None:
            await failed.wait()
            raise JanusError(f"the peer connection to Janus {self._pc.connectionState}")

        tasks = [asyncio.ensure_future(c) for c in (poll(), keepalive(), peer())]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                task.result()
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _teardown(self, api: JanusApi) -> None:
        if self._track is not None:
            self._track.stop()
        if self._pc is not None:
            await self._pc.close()
        self._pc = self._track = None
        await api.destroy()
