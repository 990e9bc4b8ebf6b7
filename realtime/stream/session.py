"""One client's WebRTC session: its peer connection, tracks and stats channel."""
from __future__ import annotations

import asyncio
import dataclasses
import logging
import statistics
import time
from collections import deque
from typing import Any, Callable

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from . import signaling
from .frametimes import RTP_MASK
from .latency import LatencyWindow, glass_to_glass_ms
from .signaling import ClientCounters, KeyframeRequest, Offer, Pong, Shown, SignalingError
from .tracks import BroadcastTrack, EncodedFrame, drain, input_image
from .voice import SessionVoice

log = logging.getLogger(__name__)

NEGOTIATION_TIMEOUT_S = 10.0
STATS_PERIOD_S = 1.0
MAX_PLAUSIBLE_LATENCY_MS = 10_000
KEYFRAME_REQUEST_GAP_S = 1.0  # a client's keyframe requests acted on: at most one in this long
CODECS = {"vp8": "video/VP8", "h264": "video/H264"}
UPLINK_CODECS = {"VP8", "H264"}  # what a camera may send (aiortc decodes both), whatever the stream's codec


def offer_video(sdp: str) -> tuple[str, set[str]]:
    """The direction of the offer's first video section (``sendrecv``, ``recvonly``, ...) and the codecs it
    accepts, as upper-case names (``{"VP8", "H264", ...}``)."""
    try:
        desc = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on junk
        raise SignalingError(f"could not parse the offer's SDP: {exc}") from None
    video = [m for m in desc.media if m.kind == "video"]
    if not video:
        raise SignalingError("the offer has no video section: add a video transceiver before creating it")
    return video[0].direction or "sendrecv", {c.mimeType.split("/")[-1].upper() for c in video[0].rtp.codecs}


def codec_preferences(codec: str) -> list:
    """The video codec capabilities of ``codec`` (``vp8`` or ``h264``) and retransmission (RTX), nothing else:
    every viewer shares one encoded stream, so every viewer must take that codec."""
    if codec not in CODECS:
        raise ValueError(f"codec must be one of {', '.join(CODECS)}, got {codec!r}")
    caps = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in caps if c.mimeType.lower() in (CODECS[codec].lower(), "video/rtx")]


def answer_as_dtls_server(pc: RTCPeerConnection) -> None:
    """Answer an offer that leaves the DTLS role open (``a=setup:actpass``) with ``a=setup:passive``: this
    side is the DTLS server, as RFC 8842 allows. aiortc answers ``active`` by default, but as a DTLS client it
    offers only ECDSA cipher suites, and peers with an RSA certificate (GStreamer's webrtcbin, so OBS-style
    GStreamer WHIP senders) then fail the handshake with "no shared cipher"; as the server it presents its
    own ECDSA certificate, which every WebRTC peer accepts. Call between ``setRemoteDescription`` and
    ``createAnswer`` (aiortc has no public setting for this: the role is set on its DTLS transports)."""
    offer = SessionDescription.parse(pc.remoteDescription.sdp)
    if any(m.dtls is None or m.dtls.role != "auto" for m in offer.media):  # the offer fixed the roles
        return
    transports = {t.receiver.transport for t in pc.getTransceivers()}
    if pc.sctp is not None:
        transports.add(pc.sctp.transport)
    for transport in transports:
        transport._set_role("server")


class Session:
    """A peer connection for one client, viewer or sender.

    hub: the server side it reports to, with ``broadcast`` (FrameBroadcast of the
    encoded stream), ``producer``, ``record_latency(ms)`` and ``stats_summary() -> dict``.
    on_closed: called once when the session ends, whoever ended it.
    """

    def __init__(self, sid: str, role: str, hub: Any, *, ice_servers: tuple[str, ...] = (),
                 codec: str = "vp8", on_closed: Callable[["Session", str], None] | None = None) -> None:
        self.id, self.role, self.hub = sid, role, hub
        self.codec = codec
        self.created = time.monotonic()
        self.pc = RTCPeerConnection(RTCConfiguration(iceServers=[RTCIceServer(u) for u in ice_servers]))
        self.track: BroadcastTrack | None = None
        self.voice = SessionVoice(hub.voice, role)  # the microphone of a sender, the voice of a viewer
        self.channel = None
        self.latency = LatencyWindow()
        self.inputs = 0
        self._camera = False
        self.input_error: str | None = None
        self.rtt_ms: float | None = None
        self._rtts: deque[float] = deque(maxlen=5)
        self.client: ClientCounters | None = None
        self.frame_messages_skipped = 0
        self.keyframe_requests = 0
        self._last_keyframe_request = float("-inf")
        self.closed = False
        self._tasks: set[asyncio.Task] = set()
        self._on_closed = on_closed
        self._close_task: asyncio.Task | None = None  # holds the self-close task while it runs
        self.pc.on("track", self._on_track)
        self.pc.on("datachannel", self._on_datachannel)
        self.pc.on("connectionstatechange", self._on_state)

    # -- negotiation -------------------------------------------------------
    async def open(self, offer: Offer) -> str:
        """Apply the client's offer; returns the answer SDP. Raises SignalingError."""
        direction, codecs = offer_video(offer.sdp)
        name = CODECS[self.codec].split("/")[1]
        offered = ", ".join(sorted(codecs)) or "none"
        if "recv" in direction and name not in codecs:
            raise SignalingError(f"the offer does not accept {name} video, the codec of this server's stream "
                                 f"(every viewer shares one encoded stream); it offers {offered}")
        if "recv" not in direction and not codecs & UPLINK_CODECS:  # a send-only camera: any codec we decode
            raise SignalingError(f"the offer sends none of {', '.join(sorted(UPLINK_CODECS))}; it offers {offered}")
        if offer.role == "sender" and "send" not in direction:
            raise SignalingError(f"a sender must offer a video track it sends (the offer's video is {direction})")
        if offer.role == "viewer" and "recv" not in direction:
            raise SignalingError(f"a viewer must offer to receive video (the offer's video is {direction})")
        transceiver = self.pc.addTransceiver("video", direction="sendrecv")
        if "recv" in direction:  # the stream goes back in its one codec; a send-only camera keeps its own (OBS: H.264)
            transceiver.setCodecPreferences(codec_preferences(self.codec))
        sdp = self.voice.prepare(self.pc, offer.sdp)  # less any audio section to answer rejected
        try:
            await asyncio.wait_for(self._negotiate(sdp, "recv" in direction), NEGOTIATION_TIMEOUT_S)
        except SignalingError:
            raise
        except asyncio.TimeoutError:
            raise SignalingError("negotiation timed out") from None
        except Exception as exc:
            raise SignalingError(f"could not use this offer: {exc}") from None
        return self.voice.answer(self.pc.localDescription.sdp)

    async def _negotiate(self, sdp: str, receives: bool) -> None:
        await self.pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        answer_as_dtls_server(self.pc)
        if receives:
            self.track = BroadcastTrack(self.hub.broadcast, on_sent=self._on_frame_sent)
            self.pc.addTrack(self.track)
        await self.pc.setLocalDescription(await self.pc.createAnswer())

    # -- media ---------------------------------------------------------------
    def _on_track(self, track: MediaStreamTrack) -> None:
        if self.role == "sender" and track.kind == "video" and not self._camera:
            self._camera = True
            self._spawn(drain(track, self._on_camera_frame), f"camera-{self.id}")
        elif (voice := self.voice.listen(track)) is not None:
            self._spawn(voice, f"voice-{self.id}")
        else:  # tracks we do not use are still drained: aiortc would queue them forever
            self._spawn(drain(track, lambda frame, ts: None), f"discard-{self.id}")

    def _on_camera_frame(self, frame, arrival_ns: int) -> None:
        self.inputs += 1
        self.voice.camera_frame(frame, arrival_ns)
        try:
            self.hub.producer.push_input(input_image(frame), arrival_ns)
        except ValueError as exc:  # the producer refused this frame: say so once, keep draining
            if not self.input_error:
                log.error("session %s: camera frame refused: %s", self.id, exc)
            self.input_error = str(exc)

    # -- stats channel ------------------------------------------------------------
    def _on_datachannel(self, channel) -> None:
        if channel.label != "stats" or self.channel is not None:
            return
        self.channel = channel
        channel.on("message", self._on_message)
        self._spawn(self._stats_loop(), f"stats-{self.id}")

    def _send(self, text: str) -> None:
        if self.channel is not None and self.channel.readyState == "open":
            self.channel.send(text)

    def _on_frame_sent(self, frame: EncodedFrame) -> None:
        """Tell the client the capture time of the frame its sender is about to send (see ``latency.py``)."""
        if self.channel is None or self.channel.readyState != "open":
            return
        if self.channel.bufferedAmount > signaling.MAX_BUFFERED_BYTES:
            self.frame_messages_skipped += 1
            return
        self.channel.send(signaling.encode("frame", pts=frame.pts & RTP_MASK,
                                           capture_ms=round(frame.capture_ts_ns / 1e6, 3)))

    async def _stats_loop(self) -> None:
        while True:
            self._send(signaling.encode("stats", **self.hub.stats_summary(), session=self.info()))
            self._send(signaling.encode("ping", t=time.monotonic_ns() / 1e6))
            await asyncio.sleep(STATS_PERIOD_S)

    def _on_message(self, raw) -> None:
        try:
            match signaling.parse_channel(raw):
                case Pong(t=t):
                    rtt = time.monotonic_ns() / 1e6 - t
                    if 0 <= rtt < MAX_PLAUSIBLE_LATENCY_MS:
                        self._rtts.append(rtt)
                        self.rtt_ms = statistics.median(self._rtts)
                case Shown(capture_ms=capture_ms, held_ms=held_ms):
                    ms = glass_to_glass_ms(capture_ms, time.monotonic_ns() / 1e6, self.rtt_ms or 0.0, held_ms)
                    if ms < MAX_PLAUSIBLE_LATENCY_MS:
                        self.latency.add(ms)
                        self.hub.record_latency(ms)
                case KeyframeRequest():
                    now = time.monotonic()
                    if now - self._last_keyframe_request >= KEYFRAME_REQUEST_GAP_S:
                        self._last_keyframe_request = now
                        self.keyframe_requests += 1
                        self.hub.broadcast.request_keyframe()
                case ClientCounters() as counters:
                    self.client = counters
                case control:
                    try:
                        self.hub.producer.control(control)
                    except ValueError as exc:
                        raise SignalingError(str(exc)) from None
                    self._send(signaling.ack(control))
        except SignalingError as exc:
            self._send(signaling.error(str(exc)))

    # -- lifetime ---------------------------------------------------------------
    def _spawn(self, coro, name: str) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _on_state(self) -> None:
        if self.pc.connectionState in ("failed", "closed") and not self.closed:
            self._close_task = asyncio.get_running_loop().create_task(
                self.close(f"peer connection {self.pc.connectionState}"), name=f"close-{self.id}"
            )

    async def close(self, reason: str = "closed") -> None:
        """End the session and release its peer connection and tasks (idempotent)."""
        if self.closed:
            return
        self.closed = True
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.track is not None:
            self.track.stop()
        self.voice.close()
        await self.pc.close()
        log.info("session %s (%s) ended: %s", self.id, self.role, reason)
        if self._on_closed is not None:
            self._on_closed(self, reason)

    def info(self) -> dict:
        """This session's counters, JSON-serialisable."""
        return {
            "id": self.id,
            "role": self.role,
            "age_s": round(time.monotonic() - self.created, 1),
            "state": self.pc.connectionState,
            "frames_sent": self.track.sent if self.track else 0,
            "frames_skipped": self.track.skipped if self.track else 0,
            "resyncs": self.track.resyncs if self.track else 0,
            "frame_messages_skipped": self.frame_messages_skipped,
            "keyframe_requests": self.keyframe_requests,
            "inputs": self.inputs,
            "input_error": self.input_error,
            "rtt_ms": None if self.rtt_ms is None else round(self.rtt_ms, 2),
            "glass_to_glass_ms": self.latency.summary(),
            "client": None if self.client is None else dataclasses.asdict(self.client),
            "voice": self.voice.info(),
        }
