"""Peers that vanish mid-call release everything: 50 cycles against a server subprocess."""
import asyncio

from realtime.stream.client import PeerClient, ServerProcess

CYCLES, WARMUP = 50, 10


def test_vanishing_peers_leave_no_tasks_threads_or_memory_behind():
    with ServerProcess(["--log-level", "WARNING", "--max-sessions", "2"]) as server:

        async def cycles():
            baseline = None
            for i in range(CYCLES):
                client = PeerClient(server.ws_url)
                await client.connect()
                got = await client.receive(3)  # mid-call: media is flowing
                assert len(got) == 3
                await client.vanish()  # TCP reset on signaling, no bye
                if i + 1 == WARMUP:
                    baseline = await settled()
            return baseline, await settled()

        async def settled():
            for _ in range(50):  # the server notices the reset within milliseconds
                stats = await asyncio.to_thread(server.stats)
                if stats["sessions"] == 0:
                    return stats["process"]
                await asyncio.sleep(0.1)
            raise AssertionError(f"sessions not released: {stats['session_list']}")

        before, after = asyncio.run(asyncio.wait_for(cycles(), 90))
    # with max_sessions=2, a leaked session would also have refused the third cycle
    assert after["tasks"] <= before["tasks"], (before, after)
    assert after["threads"] <= before["threads"], (before, after)
    assert after["rss_mb"] - before["rss_mb"] < 10, (before, after)  # measured: ~1 MB over 40 cycles
