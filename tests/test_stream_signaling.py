"""Signaling and data-channel message validation: every refusal names its problem."""
import json

import pytest

from realtime.controls import Recalibrate, SetBackground, SwitchAvatar
from realtime.stream.signaling import (
    MAX_MESSAGE_BYTES, Bye, ClientCounters, KeyframeRequest, Offer, Pong, Shown, SignalingError, ack, parse_channel,
    parse_signal,
)

SDP = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


def test_offer_and_bye_parse():
    assert parse_signal(json.dumps({"type": "offer", "sdp": SDP, "role": "viewer"})) == Offer(SDP, "viewer")
    assert parse_signal(json.dumps({"type": "offer", "sdp": SDP, "role": "sender"})).role == "sender"
    assert parse_signal('{"type": "bye"}') == Bye()


@pytest.mark.parametrize("raw, message", [
    ("{not json", "malformed JSON"),
    ("[1, 2]", "must be a JSON object"),
    ('{"sdp": "v=0"}', 'needs a string field "type"'),
    ('{"type": 3}', 'needs a string field "type"'),
    ('{"type": "hello"}', "unknown message type 'hello'"),
    ('{"type": "candidate", "candidate": "x"}', "trickle ICE is not supported"),
    ('{"type": "offer", "role": "viewer"}', 'needs a non-empty string field "sdp"'),
    ('{"type": "offer", "sdp": "hello", "role": "viewer"}', "not an SDP"),
    (json.dumps({"type": "offer", "sdp": SDP}), 'needs "role"'),
    (json.dumps({"type": "offer", "sdp": SDP, "role": "admin"}), "got 'admin'"),
    (b'{"type": "bye"}', "binary"),
])
def test_bad_signaling_is_named(raw, message):
    with pytest.raises(SignalingError, match=message.replace("(", r"\(").replace("[", r"\[")):
        parse_signal(raw)


def test_size_cap_counts_bytes():
    pad = "x" * (MAX_MESSAGE_BYTES - 100)
    assert parse_signal(json.dumps({"type": "bye", "pad": pad})) == Bye()
    with pytest.raises(SignalingError, match=f"limit is {MAX_MESSAGE_BYTES} bytes"):
        parse_signal(json.dumps({"type": "bye", "pad": "x" * MAX_MESSAGE_BYTES}))
    # multi-byte characters: under the cap in characters, over it in UTF-8 bytes
    with pytest.raises(SignalingError, match="too large"):
        parse_signal(json.dumps({"type": "bye", "pad": "é" * (MAX_MESSAGE_BYTES // 2 + 10)}, ensure_ascii=False))


def test_channel_messages_parse_into_typed_messages():
    assert parse_channel('{"type": "pong", "t": 12.5}') == Pong(12.5)
    assert parse_channel('{"type": "shown", "capture_ms": 81234.567, "held_ms": 1.5}') == Shown(81234.567, 1.5)
    assert parse_channel('{"type": "shown", "capture_ms": 77, "held_ms": -6.5}') == Shown(77.0, -6.5)
    assert parse_channel('{"type": "shown", "capture_ms": 77}') == Shown(77.0, 0.0)
    assert parse_channel('{"type": "keyframe"}') == KeyframeRequest()
    assert parse_channel('{"type": "client", "frames": 60, "fps": 29.5}') == ClientCounters(60, 29.5)
    assert parse_channel('{"type": "client", "frames": 60, "fps": 29.5, "matched": 58, "width": 512, '
                         '"height": 512}') == ClientCounters(60, 29.5, 58, 512, 512)
    assert parse_channel('{"type": "control", "action": "recalibrate"}') == Recalibrate()
    # the colour is parsed here, once: producers get (r, g, b)
    assert parse_channel('{"type": "control", "action": "background", "color": "#00FF7f"}') == SetBackground(
        (0, 255, 127))
    assert parse_channel('{"type": "control", "action": "avatar", "name": "demo"}') == SwitchAvatar("demo")


def test_an_ack_names_the_action_as_the_client_sent_it():
    for control, action in [(Recalibrate(), "recalibrate"), (SetBackground((1, 2, 3)), "background"),
                            (SwitchAvatar("demo"), "avatar")]:
        assert json.loads(ack(control)) == {"type": "ack", "action": action}


@pytest.mark.parametrize("rgb", [(0, 0), (0, 0, 256), (0, -1, 0), [0, 0, 0], (0.5, 0, 0), (True, 0, 0)])
def test_a_background_colour_out_of_range_is_refused(rgb):
    with pytest.raises(ValueError, match=r"three integers \(r, g, b\) in \[0, 255\]"):
        SetBackground(rgb)


@pytest.mark.parametrize("raw, message", [
    ('{"type": "shown"}', '"capture_ms" must be a number'),
    ('{"type": "shown", "capture_ms": -1}', '"capture_ms" must be a number in'),
    ('{"type": "shown", "capture_ms": "12"}', '"capture_ms" must be a number'),
    ('{"type": "shown", "capture_ms": true}', '"capture_ms" must be a number'),
    ('{"type": "shown", "capture_ms": 5, "held_ms": -3000}', '"held_ms" must be a number'),
    ('{"type": "shown", "capture_ms": 5, "held_ms": null}', '"held_ms" must be a number'),
    ('{"type": "stamp", "stamp": 5}', "unknown data channel message type 'stamp'"),
    ('{"type": "client", "frames": 3, "fps": 3, "matched": -1}', '"matched" must be an integer'),
    ('{"type": "client", "frames": 3, "fps": 3, "width": 1.5}', '"width" must be an integer'),
    ('{"type": "client", "frames": 3, "fps": 3, "height": "tall"}', '"height" must be an integer'),
    ('{"type": "pong"}', '"t" must be a number'),
    ('{"type": "client", "frames": "many", "fps": 3}', '"frames" must be a number'),
    ('{"type": "control", "action": "reboot"}', '"action" must be one of recalibrate, background, avatar'),
    ('{"type": "control"}', '"action" must be one of .* got None'),
    ('{"type": "control", "action": "background", "color": "red"}', '"color" must be "#rrggbb"'),
    ('{"type": "control", "action": "background", "color": "#12345g"}', '"color" must be "#rrggbb"'),
    ('{"type": "control", "action": "background", "color": "#123456\\n"}', '"color" must be "#rrggbb"'),
    ('{"type": "control", "action": "background"}', '"color" must be "#rrggbb", got None'),
    ('{"type": "control", "action": "avatar", "name": ""}', '"name" must be an avatar name'),
    ('{"type": "control", "action": "avatar"}', '"name" must be an avatar name .* got None'),
    ('{"type": "offer"}', "unknown data channel message type"),
])
def test_bad_channel_messages_are_named(raw, message):
    with pytest.raises(SignalingError, match=message):
        parse_channel(raw)
