"""The encoded stream's fan-out: every viewer reads every frame in order from a keyframe; one that falls behind
skips ahead to a fresh keyframe instead of queueing; keyframe requests are rate-limited."""
import asyncio

import av
import pytest

from realtime.stream.tracks import MIN_KEYFRAME_GAP_NS, RING, BroadcastTrack, FrameBroadcast


def packet(pts: int, keyframe: bool) -> av.Packet:
    p = av.Packet(b"frame %d" % pts)
    p.pts, p.is_keyframe = pts, keyframe
    return p


def run(coro):
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_a_viewer_gets_every_frame_in_order_from_the_newest_keyframe():
    async def scenario():
        broadcast, sent = FrameBroadcast(), []
        for pts, key in [(0, True), (1, False), (2, True)]:
            broadcast.publish(packet(pts, key), capture_ts_ns=pts)
        track = BroadcastTrack(broadcast, on_sent=sent.append)
        assert (await track.recv()).pts == 2  # the newest frame is a keyframe: start there, no request
        assert broadcast.keyframe_requests == 0
        broadcast.publish(packet(3, False), 3)
        broadcast.publish(packet(4, False), 4)
        assert [(await track.recv()).pts for _ in range(2)] == [3, 4]
        assert [f.pts for f in sent] == [2, 3, 4] and track.sent == 3 and track.skipped == 0
    run(scenario())


def test_a_viewer_joining_between_keyframes_asks_for_one_and_waits_for_it():
    async def scenario():
        broadcast = FrameBroadcast()
        broadcast.publish(packet(0, True), 0)
        broadcast.publish(packet(1, False), 1)
        track = BroadcastTrack(broadcast)
        first = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.01)
        assert not first.done() and broadcast.take_keyframe_request()
        broadcast.publish(packet(2, False), 2)  # the request had not reached the encoder yet
        await asyncio.sleep(0.01)
        assert not first.done()
        broadcast.publish(packet(3, True), 3)
        assert (await first).pts == 3
    run(scenario())


def test_a_viewer_that_falls_behind_skips_to_a_fresh_keyframe():
    async def scenario():
        broadcast = FrameBroadcast()
        broadcast.publish(packet(0, True), 0)
        track = BroadcastTrack(broadcast)
        assert (await track.recv()).pts == 0
        for pts in range(1, RING + 3):  # more frames than the ring holds go by while this viewer stalls
            broadcast.publish(packet(pts, False), pts)
        late = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.01)
        assert not late.done() and broadcast.take_keyframe_request()
        broadcast.publish(packet(RING + 3, True), RING + 3)
        assert (await late).pts == RING + 3
        assert track.resyncs == 1 and track.skipped == RING + 2
    run(scenario())


def test_keyframe_requests_are_acted_on_at_most_once_per_gap():
    broadcast = FrameBroadcast()
    assert not broadcast.take_keyframe_request(now_ns=0)  # nothing asked
    broadcast.request_keyframe()
    broadcast.request_keyframe()
    assert broadcast.take_keyframe_request(now_ns=10**9)
    assert not broadcast.take_keyframe_request(now_ns=10**9 + 1)  # both asks were served by one keyframe
    broadcast.request_keyframe()
    assert not broadcast.take_keyframe_request(now_ns=10**9 + MIN_KEYFRAME_GAP_NS - 1)  # too soon: it waits
    assert broadcast.take_keyframe_request(now_ns=10**9 + MIN_KEYFRAME_GAP_NS)
    assert broadcast.keyframe_requests == 3


def test_stream_time_is_the_90_khz_clock_and_always_moves_on():
    broadcast = FrameBroadcast()
    assert broadcast.next_pts(now_ns=5_000_000_000) == 0
    assert broadcast.next_pts(now_ns=5_040_000_000) == 3600  # 40 ms
    assert broadcast.next_pts(now_ns=5_040_000_000) == 3601  # the same instant: still increasing


def test_a_closed_broadcast_ends_its_viewers():
    from aiortc.mediastreams import MediaStreamError

    async def scenario():
        broadcast = FrameBroadcast()
        track = BroadcastTrack(broadcast)
        waiting = asyncio.ensure_future(track.recv())
        await asyncio.sleep(0.01)
        broadcast.close()
        with pytest.raises(MediaStreamError):
            await waiting
    run(scenario())
