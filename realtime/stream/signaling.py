"""Signaling and data-channel messages: parsing, validation and limits.

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
* ``{"type": "bye"}`` ends the session; the connection stays open and may send
  a new offer.

Server → client:

* ``{"type": "answer", "sdp": "<SDP>", "session": "<id>", "stamp_rows": 16}``
  (``stamp_rows``: the rows of the latency stamp appended below each frame,
  see ``latency.py``; clients crop them away).
* ``{"type": "bye"}`` acknowledges a bye.
* ``{"type": "error", "message": "..."}`` for anything refused: malformed JSON,
  unknown type, missing or bad fields, a message over the size cap, a second
  offer while a session is open, a bye without a session, a full server
  (session limit), a second sender. The connection stays usable. Messages over
  1 MiB close the connection (WebSocket code 1009).

Closing the WebSocket ends the session and releases its peer connection.

Data channel ``"stats"`` (JSON text messages):

* server → client, once a second: ``{"type": "stats", ...}`` (fps, drops,
  per-stage latency, glass-to-glass, this session's counters, the producer's
  stats) and ``{"type": "ping", "t": <server ms>}``; ``{"type": "ack",
  "action": ...}`` / ``{"type": "error", "message": ...}`` after a control.
* client → server: ``{"type": "pong", "t": <the ping's t>}``;
  ``{"type": "stamp", "stamp": <decoded stamp>, "held_ms": <ms>}`` for each
  displayed frame (see ``latency.py``); ``{"type": "client", "frames": n,
  "fps": x}`` (the client's own decoded-frame counters, shown in ``/stats``);
  ``{"type": "control", "action": "recalibrate"}``, ``{"type": "control",
  "action": "background", "color": "#rrggbb"}``, ``{"type": "control",
  "action": "avatar", "name": "<avatar>"}``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .latency import STAMP_MODULUS

MAX_MESSAGE_BYTES = 64 * 1024
HARD_MAX_MESSAGE_BYTES = 1024 * 1024
ROLES = ("viewer", "sender")
CONTROL_ACTIONS = ("recalibrate", "background", "avatar")
_COLOR = re.compile(r"^#[0-9a-fA-F]{6}$")


class SignalingError(ValueError):
    """A message the server refuses; its text is sent back to the client."""


@dataclass(frozen=True)
class Offer:
    sdp: str
    role: str


@dataclass(frozen=True)
class Bye:
    pass


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


def parse_channel(raw: str | bytes) -> dict:
    """Parse one data-channel message from a client into a validated dict.

    Returns one of ``{"type": "pong", "t"}``, ``{"type": "stamp", "stamp",
    "held_ms"}``, ``{"type": "client", "frames", "fps"}``, ``{"type":
    "control", "action", ...}``. Raises SignalingError naming the problem.
    """
    msg = _load(raw, "data channel")
    kind = msg["type"]
    if kind == "pong":
        return {"type": "pong", "t": _number(msg, "t", 0, float(2**53))}
    if kind == "stamp":
        stamp = msg.get("stamp")
        if isinstance(stamp, bool) or not isinstance(stamp, int) or not 0 <= stamp < STAMP_MODULUS:
            raise SignalingError(f'"stamp" must be an integer in [0, 2**24), got {stamp!r}')
        held = _number(msg, "held_ms", 0, 10_000) if "held_ms" in msg else 0.0
        return {"type": "stamp", "stamp": stamp, "held_ms": held}
    if kind == "client":
        return {
            "type": "client",
            "frames": int(_number(msg, "frames", 0, float(2**53))),
            "fps": _number(msg, "fps", 0, 1000),
        }
    if kind == "control":
        return parse_control(msg)
    raise SignalingError(f'unknown data channel message type {kind!r}: expected pong, stamp, client or control')


def parse_control(msg: dict) -> dict:
    """Validate a control message; returns the dict handed to ``producer.control``."""
    action = msg.get("action")
    if action not in CONTROL_ACTIONS:
        raise SignalingError(f'"action" must be one of {", ".join(CONTROL_ACTIONS)}, got {action!r}')
    if action == "recalibrate":
        return {"type": "control", "action": action}
    if action == "background":
        color = msg.get("color")
        if not isinstance(color, str) or not _COLOR.match(color):
            raise SignalingError(f'"color" must be "#rrggbb", got {color!r}')
        return {"type": "control", "action": action, "color": color.lower()}
    name = msg.get("name")
    if not isinstance(name, str) or not 0 < len(name) <= 200:
        raise SignalingError(f'"name" must be an avatar name (1 to 200 characters), got {name!r}')
    return {"type": "control", "action": action, "name": name}


def encode(kind: str, **fields) -> str:
    """One outgoing message as JSON text."""
    return json.dumps({"type": kind, **fields}, separators=(",", ":"))


def error(message: str) -> str:
    return encode("error", message=message)
