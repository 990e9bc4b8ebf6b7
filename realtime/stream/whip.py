"""WHIP ingest (RFC 9725) and WHEP egress (draft-ietf-wish-whep): a WebRTC session set up by one HTTP POST.

* ``POST /whip`` with an SDP offer (``Content-Type: application/sdp``) that sends
  video starts a **sender**: its video drives the avatar, as the WebSocket
  ``sender`` role does (one sender at a time): OBS's WHIP output, GStreamer
  (``webrtcbin``; ``whipclientsink`` from gst-plugins-rs), a browser page. It may
  send VP8 or H.264, whatever the stream's codec (OBS sends H.264).
* ``POST /whep`` with an offer that receives video starts a **viewer** of the avatar
  stream (the one encoded stream every viewer shares, see ``encoder.py``).

Both answer ``201 Created`` with the SDP answer (``application/sdp``) and a
``Location`` header naming the session's resource, ``/whip/<id>`` or
``/whep/<id>`` (a path on this server; ``<id>`` is random and unguessable).
``DELETE`` on the resource ends the session (``200 OK``). The answer is complete:
this server gathers its ICE candidates before answering and takes the client's
from its offer; there is no trickle ICE and no ICE restart, so ``PATCH`` on a
resource is ``405 Method Not Allowed`` (what RFC 9725 section 4.3.1 prescribes
for a server that supports neither). A client that trickles anyway still
connects when this server can reach one of its host addresses (its checks
arrive as peer-reflexive candidates); one that never connects is ended after
``CONNECT_TIMEOUT_S``, and one that vanishes after aiortc's ICE consent checks
fail (about 30 s), freeing its slot while every other session goes on.

With a server token every request but ``OPTIONS`` needs ``Authorization: Bearer T``
(the WebSocket pages' ``?token=T`` is not accepted here); ``OPTIONS`` answers CORS
preflights. Cross-origin use (a WHEP player on another site) is allowed only on a
server with a token: without one, any page a local user opens could otherwise
watch, or drive, the avatar.

Refusals are ``text/plain`` sentences that say why: 400 an offer that is not SDP or
cannot be used (no video, not the stream's codec, wrong direction); 401 a missing
or wrong token (``WWW-Authenticate: Bearer``); 404 an unknown resource; 405 any
other method (``Allow`` lists the right ones); 409 a second sender; 413 an offer
over ``MAX_SDP_BYTES``; 415 a body that is not ``application/sdp``; 503 every
session slot in use (``Retry-After``).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import Any

from aiohttp import web

from .session import Session
from .signaling import MAX_MESSAGE_BYTES, Offer, SenderBusy, ServerFull, SignalingError

log = logging.getLogger(__name__)

ROLES = {"whip": "sender", "whep": "viewer"}
SDP_TYPE = "application/sdp"
MAX_SDP_BYTES = MAX_MESSAGE_BYTES  # an offer; a browser's with audio, video and data is about 5 KB
CONNECT_TIMEOUT_S = 30.0  # from the answer to a connected peer, or the session ends
RETRY_AFTER_S = 5
ENDPOINT_METHODS = "POST, OPTIONS"
RESOURCE_METHODS = "DELETE, OPTIONS"


class HttpError(Exception):
    """A request refused with ``status``; the text says why."""

    def __init__(self, status: int, message: str, **headers: str) -> None:
        super().__init__(message)
        self.status, self.headers = status, headers


async def read_offer(request: web.Request, limit: int = MAX_SDP_BYTES) -> str:
    """The request's SDP offer as text: ``application/sdp``, at most ``limit`` bytes, UTF-8, starting ``v=0``.
    Reads no more than ``limit + 1`` bytes whatever the client sends. Raises HttpError (415, 413, 400)."""
    kind = request.headers.get("Content-Type", "").partition(";")[0].strip().lower()
    if kind != SDP_TYPE:
        raise HttpError(415, f"the offer must be sent as Content-Type: {SDP_TYPE}, got {kind or 'none'!r}")
    if request.content_length is not None and request.content_length > limit:
        raise HttpError(413, f"the offer is {request.content_length} bytes; the limit is {limit}")
    body = bytearray()
    while len(body) <= limit:
        chunk = await request.content.read(limit + 1 - len(body))
        if not chunk:
            break
        body += chunk
    if len(body) > limit:
        raise HttpError(413, f"the offer is over the limit of {limit} bytes")
    try:
        sdp = body.decode("utf-8")
    except UnicodeDecodeError:
        raise HttpError(400, "the offer is not UTF-8 text") from None
    if not sdp.startswith("v=0"):
        raise HttpError(400, 'the body is not an SDP session description (it must start with "v=0")')
    return sdp


class HttpSessions:
    """The ``/whip`` and ``/whep`` endpoints of a stream server, and the session resources they made.

    hub: the server, with ``open_session(offer, on_closed) -> (Session, answer sdp)`` (raising ServerFull,
    SenderBusy or SignalingError), ``authorized_bearer(request)``, ``token`` and ``ice_servers``.
    ``resources`` maps (``"whip"`` | ``"whep"``, id) to each open session; it holds no more than the server's
    session cap, since every entry is one of its sessions and leaves when that session ends, however it ends.
    """

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.resources: dict[tuple[str, str], Session] = {}
        self._watchdogs: set[asyncio.Task] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.route("*", "/{kind:whip|whep}", self._endpoint),
                web.route("*", "/{kind:whip|whep}/{resource}", self._resource)]

    # -- handlers ---------------------------------------------------------------
    async def _endpoint(self, request: web.Request) -> web.StreamResponse:
        kind = request.match_info["kind"]
        if request.method == "OPTIONS":
            return self._preflight(ENDPOINT_METHODS)
        try:
            if request.method != "POST":
                raise HttpError(405, f"{request.method} is not allowed on /{kind}: POST an SDP offer",
                                Allow=ENDPOINT_METHODS)
            self._check_token(request)
            sdp = await read_offer(request)
            key = (kind, secrets.token_urlsafe(16))
            session, answer = await self._open(Offer(sdp=sdp, role=ROLES[kind]), key)
        except HttpError as exc:
            return self._refuse(exc)
        self.resources[key] = session
        self._spawn_watchdog(session)
        log.info("%s session %s open at /%s/%s", kind.upper(), session.id, *key)
        headers = {"Content-Type": SDP_TYPE, "Location": f"/{key[0]}/{key[1]}", **self._cors()}
        links = [f'<{url}>; rel="ice-server"' for url in self.hub.ice_servers]
        if links:
            headers["Link"] = ", ".join(links)
        return web.Response(status=201, body=answer.encode(), headers=headers)

    async def _resource(self, request: web.Request) -> web.StreamResponse:
        kind, resource = request.match_info["kind"], request.match_info["resource"]
        if request.method == "OPTIONS":
            return self._preflight(RESOURCE_METHODS)
        try:
            if request.method == "PATCH":
                raise HttpError(405, "this server supports neither trickle ICE nor ICE restarts: put every "
                                     "candidate in the offer (its answer holds all of the server's)",
                                Allow=RESOURCE_METHODS)
            if request.method != "DELETE":
                raise HttpError(405, f"{request.method} is not allowed on a session: DELETE ends it",
                                Allow=RESOURCE_METHODS)
            self._check_token(request)
            session = self.resources.pop((kind, resource), None)
            if session is None:
                raise HttpError(404, f"no {kind.upper()} session /{kind}/{resource}: it ended, or never was")
        except HttpError as exc:
            return self._refuse(exc)
        await session.close(f"{kind.upper()} DELETE")
        return web.Response(status=200, text="session ended\n", headers=self._cors())

    # -- helpers -------------------------------------------------------------------
    async def _open(self, offer: Offer, key: tuple[str, str]) -> tuple[Session, str]:
        def closed(session: Session, reason: str) -> None:
            self.resources.pop(key, None)

        try:
            return await self.hub.open_session(offer, closed)
        except ServerFull as exc:
            raise HttpError(503, str(exc), **{"Retry-After": str(RETRY_AFTER_S)}) from None
        except SenderBusy as exc:
            raise HttpError(409, f"{exc} (POST the offer to /whep)") from None
        except SignalingError as exc:
            raise HttpError(400, str(exc)) from None

    def _check_token(self, request: web.Request) -> None:
        if not self.hub.authorized_bearer(request):
            raise HttpError(401, "bad or missing token: send Authorization: Bearer T",
                            **{"WWW-Authenticate": 'Bearer realm="realtime"'})

    def _spawn_watchdog(self, session: Session) -> None:
        task = asyncio.get_running_loop().create_task(self._connect_deadline(session), name=f"connect-{session.id}")
        self._watchdogs.add(task)
        task.add_done_callback(self._watchdogs.discard)

    @staticmethod
    async def _connect_deadline(session: Session) -> None:
        """End a session whose peer has not connected ``CONNECT_TIMEOUT_S`` after the answer: nothing else
        would (an HTTP session has no socket whose closing ends it, and ICE without the peer's candidates
        waits for them forever)."""
        await asyncio.sleep(CONNECT_TIMEOUT_S)
        if not session.closed and session.pc.connectionState != "connected":
            await session.close(f"no media connection within {CONNECT_TIMEOUT_S:g} s of the answer")

    def _cors(self) -> dict[str, str]:
        if not self.hub.token:
            return {}
        return {"Access-Control-Allow-Origin": "*", "Access-Control-Expose-Headers": "Location, Link"}

    def _preflight(self, methods: str) -> web.Response:
        headers = {"Allow": methods, **self._cors()}
        if self.hub.token:
            headers.update({"Access-Control-Allow-Methods": methods, "Access-Control-Max-Age": "600",
                            "Access-Control-Allow-Headers": "Authorization, Content-Type"})
        return web.Response(status=204, headers=headers)

    def _refuse(self, exc: HttpError) -> web.Response:
        return web.Response(status=exc.status, text=f"{exc}\n", headers={**exc.headers, **self._cors()})

    async def close(self) -> None:
        """Stop the connect deadlines (the server closes the sessions themselves)."""
        for task in list(self._watchdogs):
            task.cancel()
        await asyncio.gather(*self._watchdogs, return_exceptions=True)
