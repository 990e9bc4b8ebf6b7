"""The stream server end to end over loopback, with Python aiortc peers."""
import asyncio
import json
import time
import urllib.error
import urllib.request
from contextlib import asynccontextmanager

import numpy as np
import pytest
from websockets.asyncio.client import connect as ws_connect
from websockets.exceptions import InvalidStatus

from realtime.stream.client import ArrayVideoTrack, PeerClient
from realtime.stream.server import StreamServer, is_loopback, main
from realtime.stream.signaling import MAX_MESSAGE_BYTES
from realtime.stream.testpattern import TestPatternProducer, draw_pattern

SIZE = 256


@asynccontextmanager
async def running(**options):
    producer = TestPatternProducer(SIZE, SIZE, fps=30)
    async with StreamServer(producer, port=0, **options) as server:
        yield server, producer


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 60))


async def wait_for(predicate, timeout=10.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        await asyncio.sleep(0.05)


async def http_get(url):
    def get():
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.status, r.headers.get("Content-Type"), r.read()
        except urllib.error.HTTPError as e:
            return e.code, e.headers.get("Content-Type"), e.read()
    return await asyncio.to_thread(get)


def test_viewer_receives_the_bare_picture_with_capture_times_beside_it():
    async def scenario():
        async with running() as (server, _):
            client = PeerClient(server.page_url("ws"))
            answer = await client.connect()
            assert set(answer) == {"type", "sdp", "session"}
            got = await client.receive(60, keep_images=True)
            await wait_for(lambda: sum(r.capture_ms is not None for r in got) >= 57)  # a message may trail its frame
            # frames are exactly the producer's size: nothing is drawn below or into the picture
            assert {(r.width, r.height) for r in got} == {(SIZE, SIZE)}
            assert {r.image.shape for r in got} == {(SIZE, SIZE, 3)}
            # the picture is the test pattern: its colour bars are fixed, up to the bottom row of the bars
            bars = draw_pattern(0, SIZE, SIZE, (0, 0, 0))[: SIZE // 4]
            assert np.abs(got[-1].image[: SIZE // 4].astype(int) - bars).mean() < 8
            # each frame's pts as received is the server's pts plus one constant: what the server gave the sender
            # is what went out as the RTP timestamp
            matched = [r for r in got if r.pts is not None]
            assert len({(r.rtp_timestamp - r.pts) & 0xFFFFFFFF for r in matched}) == 1
            assert all(b.pts > a.pts and b.capture_ms > a.capture_ms for a, b in zip(matched, matched[1:]))
            # glass-to-glass from the capture times: measured here on the shared clock, and by the server from
            # each echo of a capture time (one sample an echo). How close the two are, and the frame rate, are
            # measured by benchmarks/bench_stream.py (glass_to_glass_ms beside glass_to_glass_server_estimate_ms,
            # fps_per_viewer): timings on a loaded machine are not judged here
            assert all(r.latency_ms > 0 for r in matched)
            await wait_for(lambda: server.latency.count >= 30 and client.messages)
            assert server.stats()["glass_to_glass_ms"]["p50"] > 0
            await wait_for(lambda: client.messages[-1]["session"]["frames_sent"] >= 60, 10)
            stats = client.messages[-1]
            assert stats["type"] == "stats" and stats["frames"] >= 60 and stats["session"]["rtt_ms"] is not None
            await client.close()
    run(scenario())


def test_sender_camera_drives_the_producer_and_comes_back():
    colour = (200, 40, 90)
    frames = [np.full((240, 320, 3), colour, np.uint8) for _ in range(4)]

    async def scenario():
        async with running() as (server, producer):
            client = PeerClient(server.page_url("ws"), "sender", ArrayVideoTrack(frames, fps=30))
            await client.connect()
            await wait_for(lambda: producer.inputs >= 30)
            assert producer.stats().input_size == (320, 240)
            got = await client.receive(20, keep_images=True)
            centre = got[-1].image[SIZE // 4: 3 * SIZE // 4, SIZE // 4: 3 * SIZE // 4].reshape(-1, 3)
            assert np.abs(centre.mean(axis=0) - colour).max() < 12
            assert server.sender is not None and server.sessions[server.sender.id].inputs >= 30
            await client.close()
            await wait_for(lambda: server.sender is None)
    run(scenario())


def test_one_encode_fans_out_to_every_viewer():
    async def scenario():
        async with running() as (server, producer):
            viewers = [PeerClient(server.page_url("ws")) for _ in range(3)]
            for v in viewers:
                await v.connect()
            got = await asyncio.gather(*(v.receive(45, keep_images=True) for v in viewers))
            await wait_for(lambda: all(sum(r.pts is not None for r in frames) >= 40 for frames in got))  # a message
            # may trail its frame
            # each producer frame was encoded once, whatever the number of viewers ...
            stats = server.stats()
            assert stats["encoder"]["frames"] == server.frames <= producer.frames_made <= server.frames + 1
            sent = sum(s["frames_sent"] for s in stats["session_list"])
            assert sent >= 3 * 45 > stats["encoder"]["frames"]
            # ... and every viewer decodes the same packets: a frame they all got is the same picture, bit for bit
            by_pts = [{r.pts: r.yuv for r in frames if r.pts is not None} for frames in got]
            common = set.intersection(*(set(d) for d in by_pts))
            assert len(common) >= 30
            for pts in common:
                assert all(np.array_equal(by_pts[0][pts], d[pts]) for d in by_pts[1:]), pts
            for v in viewers:
                await v.close()
    run(scenario())


def test_a_late_viewer_starts_at_a_fresh_keyframe():
    async def scenario():
        async with running(keyframe_interval_s=60) as (server, _):  # no periodic keyframe comes to the rescue
            early = PeerClient(server.page_url("ws"))
            await early.connect()
            await early.receive(30)
            keyframes = server.encoder.keyframes
            late = PeerClient(server.page_url("ws"))
            joined = time.monotonic()
            late_session = server.sessions[(await late.connect())["session"]]
            (first,) = await late.receive(1, timeout=10)
            waited = time.monotonic() - joined
            got = await late.receive(20)
            # the late viewer asked for a keyframe when its sender started, and decoding began there
            assert server.encoder.keyframes == keyframes + 1
            assert len(got) == 20 and {(r.width, r.height) for r in got} == {(SIZE, SIZE)}
            assert late_session.track.resyncs == 0
            print(f"\nlate viewer: first frame {waited * 1e3:.0f} ms after it started connecting")
            # a keyframe asked for on the data channel is made (and goes to every viewer), one a second at most
            await late.wait_channel()
            late.request_keyframe()
            late.request_keyframe()
            await wait_for(lambda: server.encoder.keyframes == keyframes + 2)
            await late.receive(10)
            assert server.encoder.keyframes == keyframes + 2 and late_session.keyframe_requests == 1
            await early.close()
            await late.close()
    run(scenario())


def test_controls_over_the_data_channel():
    async def scenario():
        async with running() as (server, producer):
            client = PeerClient(server.page_url("ws"))
            await client.connect()
            await client.wait_channel()
            client.send_channel({"type": "control", "action": "background", "color": "#00ff00"})
            client.send_channel({"type": "control", "action": "recalibrate"})
            client.send_channel({"type": "control", "action": "avatar", "name": "other"})
            client.send_channel({"type": "control", "action": "background", "color": "green"})
            client.send_channel({"type": "nonsense"})
            await wait_for(lambda: sum(m["type"] in ("ack", "error") for m in client.messages) >= 5)
            replies = [m for m in client.messages if m["type"] in ("ack", "error")]
            assert [m.get("action") for m in replies[:2]] == ["background", "recalibrate"]
            assert "no avatars" in replies[2]["message"]
            assert "#rrggbb" in replies[3]["message"]
            assert "unknown data channel message type" in replies[4]["message"]
            assert producer.recalibrations == 1 and producer.stats().background == (0, 255, 0)
            got = await client.receive(15, keep_images=True)
            corner = got[-1].image[SIZE - 20: SIZE - 4, 4:20].reshape(-1, 3).mean(axis=0)
            assert np.abs(corner - (0, 255, 0)).max() < 16, corner
            await client.close()
    run(scenario())


def test_malformed_channel_messages_get_clear_errors_and_every_viewer_keeps_streaming():
    async def scenario():
        async with running() as (server, _):
            rude, other = PeerClient(server.page_url("ws")), PeerClient(server.page_url("ws"))
            await rude.connect()
            await other.connect()
            await rude.wait_channel()
            await rude.receive(5)
            before = server.latency.count
            cases = [
                ("{oops", "malformed JSON"),
                ('{"type": "stamp", "stamp": 5}', "unknown data channel message type 'stamp'"),
                ('{"type": "shown", "capture_ms": "soon"}', '"capture_ms" must be a number'),
                ('{"type": "shown", "capture_ms": 1, "held_ms": 1e9}', '"held_ms" must be a number'),
                ('{"type": "client", "frames": 1, "fps": 1, "width": -2}', '"width" must be an integer'),
                ('{"type": "client", "frames": 1, "fps": 1, "mean_rgb": [1, 2]}', '"mean_rgb" must be three numbers'),
                ('{"type": "client", "frames": 1, "fps": 1, "change": 300}', '"change" must be a number'),
                (json.dumps({"type": "pong", "t": 1, "pad": "x" * MAX_MESSAGE_BYTES}), "too large"),
                (b"\x00\x01", "binary"),
            ]
            for raw, _ in cases:
                rude.channel.send(raw)
            await wait_for(lambda: sum(m["type"] == "error" for m in rude.messages) >= len(cases))
            errors = [m["message"] for m in rude.messages if m["type"] == "error"]
            for (raw, expected), message in zip(cases, errors):
                assert expected in message, (raw[:40], message)
            # a capture time from nowhere is not a latency sample
            rude.send_channel({"type": "shown", "capture_ms": 0, "held_ms": 0})
            got_rude, got_other = await asyncio.gather(rude.receive(20), other.receive(40))
            assert len(got_rude) == 20 and len(got_other) == 40 and len(server.sessions) == 2
            assert all(v < 10_000 for v in server.latency._samples)
            assert server.latency.count > before  # the real echoes go on being counted
            await rude.close()
            await other.close()
    run(scenario())


def test_bad_signaling_is_refused_while_the_session_keeps_streaming():
    async def scenario():
        async with running() as (server, _):
            client = PeerClient(server.page_url("ws"))
            await client.connect()
            await client.receive(10)
            cases = [
                ("{oops", "malformed JSON"),
                ('{"type": "dance"}', "unknown message type"),
                ('{"type": "offer", "role": "viewer"}', '"sdp"'),
                (json.dumps({"type": "offer", "sdp": "v=0\r\n", "pad": "x" * MAX_MESSAGE_BYTES}), "too large"),
                (json.dumps({"type": "offer", "sdp": client.pc.localDescription.sdp, "role": "viewer"}),
                 "already has a session"),
                (b"\x00\x01", "binary"),
            ]
            for raw, expected in cases:
                reply = await client.request(raw)
                assert reply["type"] == "error" and expected in reply["message"], (raw[:40], reply)
            got = await client.receive(30)
            assert len(got) == 30
            await wait_for(lambda: sum(r.capture_ms is not None for r in got) >= 27)
            assert len(server.sessions) == 1
            # a bye ends the session but not the connection, which may offer again
            assert (await client.request({"type": "bye"}))["type"] == "bye"
            await wait_for(lambda: not server.sessions)
            await client.pc.close()
            await client.connect()
            assert len(await client.receive(10)) == 10
            await client.close()
    run(scenario())


def test_out_of_order_and_bad_offers_before_a_session():
    async def scenario():
        async with running() as (server, _):
            client = PeerClient(server.page_url("ws"))
            reply = await client.request({"type": "bye"})
            assert reply == {"type": "error", "message": "no session to end: send an offer first"}
            sdp_no_video = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"
            reply = await client.request({"type": "offer", "sdp": sdp_no_video, "role": "viewer"})
            assert "no video section" in reply["message"]
            assert not server.sessions
            await client.connect()  # the same connection still works
            assert len(await client.receive(5)) == 5
            await client.close()
    run(scenario())


def test_session_limit_and_single_sender():
    async def scenario():
        async with running(max_sessions=2) as (server, _):
            frames = [np.zeros((240, 320, 3), np.uint8)]
            a = PeerClient(server.page_url("ws"), "sender", ArrayVideoTrack(frames))
            await a.connect()
            b = PeerClient(server.page_url("ws"), "sender", ArrayVideoTrack(frames))
            with pytest.raises(RuntimeError, match="a sender is already connected"):
                await b.connect()
            b.role = "viewer"
            await b.connect()
            c = PeerClient(server.page_url("ws"))
            with pytest.raises(RuntimeError, match="server full: 2 of 2 sessions in use"):
                await c.connect()
            await a.close()
            await wait_for(lambda: len(server.sessions) == 1)
            await c.connect()  # same signaling connection, retried after a slot freed
            assert len(await c.receive(5)) == 5
            await b.close()
            await c.close()
    run(scenario())


def test_vanished_peer_releases_its_session():
    async def scenario():
        async with running() as (server, _):
            a, b = PeerClient(server.page_url("ws")), PeerClient(server.page_url("ws"))
            await a.connect()
            await b.connect()
            await a.receive(5)
            await b.receive(5)
            await a.vanish()  # TCP reset on signaling, no bye
            await wait_for(lambda: len(server.sessions) == 1)
            await b.pc.close()  # media gone, signaling still open
            await wait_for(lambda: not server.sessions)
            reply = json.loads(await asyncio.wait_for(b.ws.recv(), 5))
            assert reply["type"] == "bye" and "peer connection" in reply["reason"]
            await b.ws.close()
    run(scenario())


def test_http_routes_and_token():
    token = "s3cret-token"

    async def scenario():
        async with running(token=token) as (server, _):
            base = f"http://127.0.0.1:{server.port}"
            status, _, body = await http_get(base + "/")
            assert status == 403 and b"token" in body
            status, kind, body = await http_get(base + f"/?token={token}")
            assert status == 200 and kind.startswith("text/html") and b'data-page="main"' in body
            status, _, body = await http_get(base + f"/view?token={token}")
            assert status == 200 and b'data-page="view"' in body
            status, kind, body = await http_get(base + "/app.js")
            assert status == 200 and "javascript" in kind and b"requestVideoFrameCallback" in body
            status, kind, body = await http_get(base + "/frametimes.js")
            assert status == 200 and "javascript" in kind and b"class FrameTimes" in body
            for path in ("/../server.py", "/nothing.js", "/realtime/stream/server.py", "/%2e%2e/README.md"):
                assert (await http_get(base + path))[0] == 404, path
            assert (await http_get(base + "/stats?token=wrong"))[0] == 403
            status, kind, body = await http_get(base + f"/stats?token={token}")
            stats = json.loads(body)
            assert kind == "application/json" and stats["max_sessions"] == 8 and stats["producer"]["driver"] == "testpattern"
            with pytest.raises(InvalidStatus, match="403"):
                await ws_connect(f"ws://127.0.0.1:{server.port}/ws")
            client = PeerClient(server.page_url("ws"))
            await client.connect()
            await client.close()
    run(scenario())


def test_binding_beyond_loopback_needs_a_token(capsys):
    producer = TestPatternProducer(SIZE, SIZE)
    for host in ("0.0.0.0", "192.168.1.10", "::", "example.org"):
        with pytest.raises(ValueError, match="a token is required"):
            StreamServer(producer, host=host)
    assert StreamServer(producer, host="0.0.0.0", token="t0ken").token == "t0ken"
    for host in ("127.0.0.1", "127.0.0.2", "::1", "localhost"):
        assert is_loopback(host)
        StreamServer(producer, host=host)
    with pytest.raises(SystemExit) as exc:
        main(["--host", "0.0.0.0"])
    assert exc.value.code == 2 and "a token is required" in capsys.readouterr().err


def test_h264_can_be_preferred():
    async def scenario():
        async with running(codec="h264") as (server, _):
            client = PeerClient(server.page_url("ws"))
            answer = await client.connect()
            video = answer["sdp"].split("m=video", 1)[1]
            first_payload = video.split("\r\n", 1)[0].split()[2]  # " PORT PROTO PT..."
            assert f"a=rtpmap:{first_payload} H264/90000" in video and "VP8" not in video
            got = await client.receive(20)
            assert {(r.width, r.height) for r in got} == {(SIZE, SIZE)}
            await wait_for(lambda: sum(r.capture_ms is not None for r in got) >= 17)
            assert server.stats()["encoder"]["codec"] == "h264"
            await client.close()
    run(scenario())


def test_an_offer_without_the_stream_codec_is_refused():
    from aiortc import RTCPeerConnection
    from aiortc.rtcrtpsender import RTCRtpSender

    async def scenario():
        async with running(codec="h264") as (server, _):
            pc = RTCPeerConnection()
            transceiver = pc.addTransceiver("video", direction="recvonly")
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("video").codecs
                                             if c.mimeType == "video/VP8"])
            await pc.setLocalDescription(await pc.createOffer())
            client = PeerClient(server.page_url("ws"))
            reply = await client.request({"type": "offer", "sdp": pc.localDescription.sdp, "role": "viewer"})
            assert reply["type"] == "error" and "does not accept H264" in reply["message"], reply
            assert not server.sessions
            await pc.close()
            await client.connect()  # an offer that takes H.264 on the same connection works
            assert len(await client.receive(5)) == 5
            await client.close()
    run(scenario())


def test_signaling_connections_are_capped():
    async def scenario():
        async with running(max_sessions=1) as (server, _):
            url = server.page_url("ws")
            sockets = [await ws_connect(url) for _ in range(server.max_connections)]
            with pytest.raises(InvalidStatus, match="503"):
                await ws_connect(url)
            await sockets.pop().close()
            await wait_for(lambda: server._connections < server.max_connections)
            sockets.append(await ws_connect(url))
            for s in sockets:
                await s.close()
    run(scenario())


def test_odd_and_huge_camera_frames_are_made_acceptable():
    import av
    from realtime.stream.tracks import MAX_INPUT_SIDE, input_image

    odd = av.VideoFrame.from_ndarray(np.zeros((241, 321, 3), np.uint8), format="rgb24")
    assert input_image(odd).shape == (240, 320, 3)
    huge = av.VideoFrame.from_ndarray(np.zeros((2160, 3840, 3), np.uint8), format="rgb24")
    assert input_image(huge).shape == (720, MAX_INPUT_SIDE, 3)
    fine = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 77, np.uint8), format="rgb24")
    out = input_image(fine)
    assert out.shape == (480, 640, 3) and abs(int(out.mean()) - 77) <= 2


def test_bad_producer_frames_are_counted_and_a_failing_producer_is_reported():
    from realtime.frames import OutputFrame

    class Flaky(TestPatternProducer):
        async def frames(self):
            yield OutputFrame(np.zeros((SIZE, SIZE), np.uint8), time.monotonic_ns())  # not RGB
            yield OutputFrame(np.zeros((SIZE + 1, SIZE, 3), np.uint8), time.monotonic_ns())  # odd height
            for _ in range(5):
                yield self.make_frame()
            raise RuntimeError("renderer lost")

    async def scenario():
        producer = Flaky(SIZE, SIZE)
        async with StreamServer(producer, port=0) as server:
            await wait_for(lambda: server.producer_error is not None)
            stats = server.stats()
            assert stats["bad_frames"] == 2 and stats["frames"] == 5
            assert stats["producer_error"] == "RuntimeError: renderer lost"
    run(scenario())


def test_frame_messages_wait_for_no_stalled_client():
    """A client that stops reading its data channel gets no more frame messages (each skip is counted) instead of
    a queue of them; the video goes on."""
    from types import SimpleNamespace

    from realtime.stream.session import Session
    from realtime.stream.signaling import MAX_BUFFERED_BYTES
    from realtime.stream.tracks import EncodedFrame

    class Channel:
        readyState, bufferedAmount = "open", 0

        def __init__(self):
            self.sent = []

        def send(self, text):
            self.sent.append(json.loads(text))

    async def scenario():
        session = Session("s1", "viewer", SimpleNamespace(voice=None))  # a hub without a voice relay
        session.channel = Channel()
        frame = EncodedFrame(1, None, True, 2**32 + 7, 12_345_678_900, 0, {})
        session._on_frame_sent(frame)
        assert session.channel.sent == [{"type": "frame", "pts": 7, "capture_ms": 12345.679}]  # 32-bit RTP clock
        session.channel.bufferedAmount = MAX_BUFFERED_BYTES + 1
        session._on_frame_sent(frame)
        assert len(session.channel.sent) == 1 and session.info()["frame_messages_skipped"] == 1
        await session.pc.close()
    run(scenario())


def test_a_server_process_that_never_says_where_it_listens_is_given_up_on_at_its_deadline(tmp_path, monkeypatch):
    from realtime.stream.client import ServerProcess

    (tmp_path / "silent_server.py").write_text("import time\ntime.sleep(300)\n")  # no output, no exit
    (tmp_path / "failing_server.py").write_text("print('starting')\nraise SystemExit(3)\n")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path))
    started = time.monotonic()
    with pytest.raises(RuntimeError, match=r"did not start \(no address in 2 s\)"):
        with ServerProcess([], startup_timeout=2, module="silent_server"):
            pass
    assert time.monotonic() - started < 60  # the deadline, not the silent process's 300 s
    with pytest.raises(RuntimeError, match=r"exited with status 3\); its output: 'starting\\n'"):
        with ServerProcess([], module="failing_server"):
            pass
