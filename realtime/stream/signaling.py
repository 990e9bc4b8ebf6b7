"""Signaling and data-channel messages: parsed and validated into typed messages, with their limits.

Signaling runs over a WebSocket at ``/ws`` (``/ws?token=T`` when the server has
a token). Every message is one JSON object with a ``"type"``, at most
``MAX_MESSAGE_BYTES`` (64 KiB) of UTF-8 text.

Client → server:

* ``{"type": "offer", "sdp": "<SDP>", "role": "viewer" | "sender"}`` opens a
  session. The SDP must be complete (no trickle ICE: wait for ICE gathering to
  finish, then send ``localDescription.sdp``). A ``viewer`` offers a video
  transceiver that receives (``recvonly``); a ``sender`` offers one that sends
  its camera and receives the avatar (``sendrecv``); the camera becomes the
  driver. Offer a data channel labelled ``"stats"`` to get live stats and to
  send control messages. One sender at a time.
  The voice (``voice.py``, ``audio.py``): a sender may add an audio transceiver
  that sends its microphone (``sendonly``; any of Opus, G.722, PCMU, PCMA); a
  viewer may add one that receives (``recvonly``) and then gets the sender's
  voice as Opus, held back by the avatar's latency so that it is sent with the
  picture of the same moment. Voice and picture come in one MediaStream (one
  msid stream id), so a browser's own A/V sync (RTCP sender reports) lines them
  up from there. The server cannot state capture times in its sender reports
  (aiortc writes them from the wall clock at send time), which is why it holds
  the voice back itself (``lipsync.py`` says why in full). A viewer whose audio
  lacks Opus gets video only; an audio section with no codec the server knows
  is refused with an error naming its codecs.
* ``{"type": "bye"}`` ends the session; the connection stays open and may send
  a new offer.

Server → client:

* ``{"type": "answer", "sdp": "<SDP>", "session": "<id>"}``. The answer offers
  one video codec, the server's (VP8 unless it was started with H.264): every
  viewer gets the same encoded stream, so an offer without that codec is refused.
* ``{"type": "bye"}`` acknowledges a bye.
* ``{"type": "error", "message": "..."}`` for anything refused: malformed JSON,
  unknown type, missing or bad fields, a message over the size cap, a second
  offer while a session is open, a bye without a session, a full server
  (session limit), a second sender. The connection stays usable. Messages over
  1 MiB close the connection (WebSocket code 1009).

Closing the WebSocket ends the session and releases its peer connection.

Data channel ``"stats"`` (JSON text messages; a client's are held to ``MAX_MESSAGE_BYTES`` too):

* server → client, for each video frame handed to this client's sender:
  ``{"type": "frame", "pts": P, "capture_ms": C}``: ``P`` is the frame's RTP
  timestamp (90 kHz clock) before the sender's per-session random offset, an
  integer in [0, 2**32); ``C`` the capture time of the input that drove the frame,
  in milliseconds of the server's monotonic clock (the clock of ``ping``'s ``t``).
  The frames themselves carry nothing extra: they are exactly the producer's
  W x H. A client finds the offset by matching (``frametimes.py``) and so the
  capture time of each frame it shows, from ``requestVideoFrameCallback``'s
  ``metadata.rtpTimestamp`` in a browser or the decoded frame's ``pts`` in
  aiortc. Frame messages are skipped while the channel has more than
  ``MAX_BUFFERED_BYTES`` unsent (a stalled client), and the skips counted.
* server → client, once a second: ``{"type": "stats", ...}`` (fps, drops,
  per-stage latency, glass-to-glass, the encoder's counters under ``"encoder"``,
  the voice's (level, lip-sync delay, A/V offset) under ``"voice"``,
  this session's counters under ``"session"``, and under ``"producer"`` the
  producer's ``realtime.meters.ProducerStats``, field by field) and
  ``{"type": "ping", "t": <server ms>}``; ``{"type": "ack", "action": ...}`` /
  ``{"type": "error", "message": ...}`` after a control.
* client → server, parsed by ``parse_channel`` into a typed message:
  ``{"type": "pong", "t": <the ping's t>}`` (``Pong``);
  ``{"type": "shown", "capture_ms": C, "held_ms": h}`` for each shown frame
  whose capture time the client found (``Shown``: ``h`` is the time from the
  frame reaching the screen to this message, negative when the message leaves
  before the frame's expected display time; see ``latency.py``);
  ``{"type": "keyframe"}`` (``KeyframeRequest``: the client's decoder needs a
  keyframe, e.g. its RTCP PLI/FIR counters rose; at most one a second per session
  is acted on, and a keyframe goes to every viewer); ``{"type": "client",
  "frames": n, "fps": x}`` with optional ``"matched": m`` (frames whose capture
  time was found), ``"width"`` and ``"height"`` (of the last shown frame), and what
  a frame shown since the previous report looked like: ``"mean_rgb": [r, g, b]``
  (its mean colour), ``"spread"`` (the standard deviation of its pixel values) and
  ``"change"`` (the mean absolute difference from the frame measured a report
  earlier), all in 0..255 (``ClientCounters``, shown in ``/stats``: a black, flat
  or frozen picture shows there); and the controls of
  ``realtime.controls``: ``{"type": "control", "action": "recalibrate"}``
  (``Recalibrate``), ``{"type": "control", "action": "background", "color":
  "#rrggbb"}`` (``SetBackground``, the colour parsed here into (r, g, b)),
  ``{"type": "control", "action": "avatar", "name": "<avatar>"}``
  (``SwitchAvatar``).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from realtime.controls import Control, Recalibrate, SetBackground, SwitchAvatar

MAX_MESSAGE_BYTES = 64 * 1024
MAX_BUFFERED_BYTES = 64 * 1024
HARD_MAX_MESSAGE_BYTES = 1024 * 1024
ROLES = ("viewer", "sender")
_COLOR = re.compile(r"#[0-9a-fA-F]{6}")


class SignalingError(ValueError):
    """A message the server refuses; its text is sent back to the client."""


class ServerFull(SignalingError):
    """An offer refused because every session slot is in use (WHIP/WHEP answer 503)."""


class SenderBusy(SignalingError):
    """A sender's offer refused because another sender drives the avatar (WHIP answers 409)."""


@dataclass(frozen=True)
class Offer:
    sdp: str
    role: str


@dataclass(frozen=True)
class Bye:
    pass


@dataclass(frozen=True)
class Pong:
    """The echo of a ping: ``t`` is the ping's server time in ms."""

    t: float


@dataclass(frozen=True)
class Shown:
    """A shown frame's capture time (server ms), and the client's delay from showing it to this echo (ms)."""

    capture_ms: float
    held_ms: float


@dataclass(frozen=True)
class KeyframeRequest:
    """The client's decoder needs a keyframe."""


@dataclass(frozen=True)
class ClientCounters:
    """The client's own count and rate of shown frames; how many of them it found the capture time of, the
    size of the last one, and what one shown since the previous report looked like: its mean colour, the spread
    (standard deviation) of its pixel values and its mean absolute change from the one measured a report earlier,
    in 0..255 (None when the client does not say)."""

    frames: int
    fps: float
    matched: int | None = None
    width: int | None = None
    height: int | None = None
    mean_rgb: tuple[float, float, float] | None = None
    spread: float | None = None
    change: float | None = None


ChannelMessage = Pong | Shown | KeyframeRequest | ClientCounters | Control
_CONTROLS = {"recalibrate": Recalibrate, "background": SetBackground, "avatar": SwitchAvatar}
_ACTIONS = {kind: action for action, kind in _CONTROLS.items()}


def _load(raw: str | bytes, what: str) -> dict:
    if isinstance(raw, (bytes, bytearray)):
        raise SignalingError(f"binary {what} messages are not accepted: send JSON text")
    if len(raw.encode("utf-8", "surrogatepass")) > MAX_MESSAGE_BYTES:
        raise SignalingError(f"{what} message too large: the limit is {MAX_MESSAGE_BYTES} bytes")
    try:
        msg = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise SignalingError(f"malformed JSON: {exc.msg} at position {exc.pos}") from None
    if not isinstance(msg, dict):
        raise SignalingError(f"a {what} message must be a JSON object, got {type(msg).__name__}")
    kind = msg.get("type")
    if not isinstance(kind, str):
        raise SignalingError(f'a {what} message needs a string field "type"')
    return msg


def parse_signal(raw: str | bytes) -> Offer | Bye:
    """Parse one signaling message. Raises SignalingError naming the problem."""
    msg = _load(raw, "signaling")
    kind = msg["type"]
    if kind == "offer":
        sdp, role = msg.get("sdp"), msg.get("role")
        if not isinstance(sdp, str) or not sdp.strip():
            raise SignalingError('an offer needs a non-empty string field "sdp"')
        if not sdp.startswith("v=0"):
            raise SignalingError('"sdp" is not an SDP session description (must start with "v=0")')
        if role not in ROLES:
            raise SignalingError(f'an offer needs "role": one of {", ".join(ROLES)} (got {role!r})')
        return Offer(sdp=sdp, role=role)
    if kind == "bye":
        return Bye()
    if kind == "candidate":
        raise SignalingError(
            "trickle ICE is not supported: send the offer after ICE gathering completes "
            "(all candidates inside the SDP)"
        )
    raise SignalingError(f'unknown message type {kind!r}: expected "offer" or "bye"')


def _number(msg: dict, key: str, lo: float, hi: float) -> float:
    value = msg.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise SignalingError(f'"{key}" must be a number in [{lo}, {hi}], got {value!r}')
    return float(value)


def parse_channel(raw: str | bytes) -> ChannelMessage:
    """Parse one data-channel message from a client. Raises SignalingError naming the problem."""
    msg = _load(raw, "data channel")
    kind = msg["type"]
    if kind == "pong":
        return Pong(_number(msg, "t", 0, float(2**53)))
    if kind == "shown":
        held = _number(msg, "held_ms", -1_000, 10_000) if "held_ms" in msg else 0.0
        return Shown(_number(msg, "capture_ms", 0, float(2**53)), held)
    if kind == "keyframe":
        return KeyframeRequest()
    if kind == "client":
        return ClientCounters(int(_number(msg, "frames", 0, float(2**53))), _number(msg, "fps", 0, 1000),
                              *(_optional_int(msg, key, hi) for key, hi in (("matched", 2**53), ("width", 1 << 16),
                                                                          ("height", 1 << 16))),
                              _optional_rgb(msg, "mean_rgb"),
                              *(_number(msg, key, 0, 255) if key in msg else None for key in ("spread", "change")))
    if kind == "control":
        return _parse_control(msg)
    raise SignalingError(f'unknown data channel message type {kind!r}: expected pong, shown, keyframe, client '
                         'or control')


def _optional_int(msg: dict, key: str, hi: int) -> int | None:
    if key not in msg:
        return None
    value = msg[key]
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= hi:
        raise SignalingError(f'"{key}" must be an integer in [0, {hi}], got {value!r}')
    return value


def _optional_rgb(msg: dict, key: str) -> tuple[float, float, float] | None:
    if key not in msg:
        return None
    value = msg[key]
    if not (isinstance(value, list) and len(value) == 3
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 <= v <= 255 for v in value)):
        raise SignalingError(f'"{key}" must be three numbers in [0, 255], got {value!r}')
    return tuple(float(v) for v in value)


def _parse_control(msg: dict) -> Control:
    action = msg.get("action")
    if action not in _CONTROLS:
        raise SignalingError(f'"action" must be one of {", ".join(_CONTROLS)}, got {action!r}')
    if action == "recalibrate":
        return Recalibrate()
    if action == "background":
        color = msg.get("color")
        if not isinstance(color, str) or not _COLOR.fullmatch(color):
            raise SignalingError(f'"color" must be "#rrggbb", got {color!r}')
        return SetBackground(tuple(int(color[i:i + 2], 16) for i in (1, 3, 5)))
    name = msg.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise SignalingError(f'"name" must be an avatar name (1 to 200 characters), got {name!r}')
    return SwitchAvatar(name)


def encode(kind: str, **fields) -> str:
    """One outgoing message as JSON text."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def error(message: str) -> str:
    return encode("error", message=message)


def ack(control: Control) -> str:
    """The reply to a control that was carried out, naming its action as the client sent it."""
    return encode("ack", action=_ACTIONS[type(control)])
