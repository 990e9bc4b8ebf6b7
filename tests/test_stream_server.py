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


def test_viewer_receives_stamped_test_pattern_and_latency_is_measured():
    async def scenario():
        async with running() as (server, _):
            client = PeerClient(server.page_url("ws"))
            answer = await client.connect()
            assert answer["stamp_rows"] == 16
            got = await client.receive(60, keep_images=True)
            # a stamp whose blocks VP8 mixed with the previous frame's fails its CRC and is skipped
            assert sum(r.stamp is not None for r in got) >= 54
            assert {(r.width, r.height) for r in got} == {(SIZE, SIZE)}
            # the picture is the test pattern: its colour bars are fixed
            bars = draw_pattern(0, SIZE, SIZE, (0, 0, 0))[: SIZE // 4 - 8]
            top = got[-1].image[: SIZE // 4 - 8].astype(int)
            assert np.abs(top - bars).mean() < 8
            # the server's estimate (echo + half RTT) agrees with the direct measurement on this clock
            await wait_for(lambda: server.latency.count >= 30 and client.messages)
            direct = np.median([r.latency_ms for r in got[20:] if r.stamp is not None])
            est = server.stats()["glass_to_glass_ms"]["p50"]
            assert 0 < direct < 300
            assert abs(est - direct) < 20, (est, direct)
            await wait_for(lambda: client.messages[-1]["session"]["frames_sent"] >= 60, 3)
            stats = client.messages[-1]
            assert stats["type"] == "stats" and stats["fps"] > 20 and stats["session"]["rtt_ms"] is not None
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


def test_one_render_fans_out_to_every_viewer():
    async def scenario():
        async with running() as (server, producer):
            a, b = PeerClient(server.page_url("ws")), PeerClient(server.page_url("ws"))
            await a.connect()
            await b.connect()
            got_a, got_b = await asyncio.gather(a.receive(45), b.receive(45))
            # both viewers see the same published frames ...
            common = {r.stamp for r in got_a} & {r.stamp for r in got_b}
            assert len(common) >= 30
            # ... and each producer frame was published once, not once per viewer
            assert server.frames <= producer.frames_made <= server.frames + 1
            assert server.broadcast.latest.seq == server.frames
            await a.close()
            await b.close()
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
            assert sum(r.stamp is not None for r in got) >= 27
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
            assert status == 200 and "javascript" in kind and b"decodeStamp" in body
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
            assert f"a=rtpmap:{first_payload} H264/90000" in video
            got = await client.receive(20)
            assert sum(r.stamp is not None for r in got) >= 18
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
