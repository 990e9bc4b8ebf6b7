"""Publishing into a real SFU: Janus (the Debian package), started by the test as a user would, with a minimal
configuration bound to 127.0.0.1; the stream server publishes its one encoded stream into a VideoRoom
(``--publish``, ``realtime/stream/janus.py``), and subscribers watch through Janus."""
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from janus_subscribers import feed_of, subscribe
from realtime.stream.client import ServerProcess
from realtime.stream.janus import JanusApi, PublishTarget

pytestmark = pytest.mark.slow

ROOM = 1234
SUBSCRIBERS = 16
MIN_FPS = 24.0
HERE = Path(__file__).resolve().parent
LIBDIR = Path("/usr/lib/x86_64-linux-gnu/janus")
PLUGINS = ("audiobridge", "duktape", "echotest", "lua", "nosip", "recordplay", "sip", "streaming", "textroom",
           "videocall", "voicemail")  # every plugin but the VideoRoom is disabled
TRANSPORTS = ("mqtt", "nanomsg", "pfunix", "rabbitmq", "websockets")  # every transport but HTTP


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def janus_config(folder: Path, http_port: int, rtp_ports: str) -> Path:
    """The three files Janus needs for this: the core (VideoRoom and HTTP only, media on 127.0.0.1), the HTTP
    transport (127.0.0.1 only, no admin API), and one VideoRoom room for the avatar. Returns the core file."""
    libdir = next((p for p in (LIBDIR, Path("/usr/lib/janus")) if p.is_dir()), LIBDIR)
    (folder / "janus.jcfg").write_text(f"""general: {{
	configs_folder = "{folder}"
	plugins_folder = "{libdir}/plugins"
	transports_folder = "{libdir}/transports"
	events_folder = "{libdir}/events"
	loggers_folder = "{libdir}/loggers"
	debug_level = 4
}}
media: {{
	rtp_port_range = "{rtp_ports}"
}}
nat: {{
	ice_enforce_list = "127.0.0.1"
}}
plugins: {{
	disable = "{','.join(f'libjanus_{p}.so' for p in PLUGINS)}"
}}
transports: {{
	disable = "{','.join(f'libjanus_{t}.so' for t in TRANSPORTS)}"
}}
loggers: {{
	disable = "libjanus_jsonlog.so"
}}
""")
    (folder / "janus.transport.http.jcfg").write_text(f"""general: {{
	base_path = "/janus"
	http = true
	ip = "127.0.0.1"
	port = {http_port}
	https = false
}}
admin: {{
	admin_http = false
}}
""")
    (folder / "janus.plugin.videoroom.jcfg").write_text(f"""general: {{
}}
room-{ROOM}: {{
	description = "avatar"
	publishers = 1
	bitrate = 4000000
	fir_freq = 0
	videocodec = "vp8"
}}
""")
    return folder / "janus.jcfg"


class Janus:
    """``janus -C janus.jcfg -F FOLDER`` in a subprocess, as a user starts it; ``api`` is its HTTP API URL."""

    def __init__(self, folder: Path) -> None:
        self.folder, self.port = folder, free_port()
        base = 20000 + (os.getpid() % 400) * 100
        self.config = janus_config(folder, self.port, f"{base}-{base + 99}")
        self.api = f"http://127.0.0.1:{self.port}/janus"
        self.proc: subprocess.Popen | None = None
        self.log = folder / "janus.log"

    def start(self) -> "Janus":
        with open(self.log, "a") as log:
            self.proc = subprocess.Popen(["janus", "-C", str(self.config), "-F", str(self.folder), "-o"],
                                         stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"janus exited: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.api}/info", timeout=2) as reply:
                    if json.loads(reply.read()).get("janus") == "server_info":
                        return self
            except OSError:
                time.sleep(0.2)
        raise RuntimeError(f"janus did not answer at {self.api}: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def janus(tmp_path):
    if not shutil.which("janus"):
        if shutil.which("apt-get"):
            pytest.fail("janus is not installed: `make setup` installs it (apt-get install janus)")
        pytest.skip("janus is not installed and this machine has no apt-get to install it")
    server = Janus(tmp_path).start()
    yield server
    server.stop()


def subscribers(api: str, count: int, seconds: float, vanish: int = 0) -> dict:
    """Run ``janus_subscribers.py`` (frames counted without decoding) and return its result."""
    out = subprocess.run([sys.executable, str(HERE / "janus_subscribers.py"), api, str(ROOM), "--count", str(count),
                          "--seconds", str(seconds), "--vanish", str(vanish)],
                         capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])


async def watch(api_url: str, frames: int) -> list:
    """Subscribe one decoding peer through Janus and return its first ``frames`` decoded frames."""
    async with aiohttp.ClientSession() as http:
        lister = JanusApi(http, api_url)
        await lister.create()
        feed = await feed_of(lister, await lister.attach(), ROOM)
        api, pc = await subscribe(http, api_url, ROOM, feed)
        try:
            receiver = next(t.receiver for t in pc.getTransceivers() if t.kind == "video")
            return [await asyncio.wait_for(receiver.track.recv(), 20) for _ in range(frames)]
        finally:
            await pc.close()
            await api.destroy()
            await lister.destroy()


def wait_publishing(server: ServerProcess, publishes: int, timeout: float = 30.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        publish = server.stats()["publish"]
        if publish["state"] == "publishing" and publish["publishes"] >= publishes:
            return publish
        time.sleep(0.2)
    raise AssertionError(f"not publishing ({publishes}) in {timeout} s: {server.stats()['publish']}")


def test_publish_target_parsing():
    target = PublishTarget.parse("http://127.0.0.1:8088/janus?room=1234&pin=p1n&display=Ada&id=7")
    assert target == PublishTarget("http://127.0.0.1:8088/janus", 1234, "p1n", "Ada", 7)
    for bad, says in (("ws://127.0.0.1:8188", "HTTP API"), ("http://127.0.0.1:8088/janus", "which VideoRoom"),
                      ("http://h/janus?room=abc", "positive integer"), ("http://h/janus?room=1&colour=red", "unknown")):
        with pytest.raises(ValueError, match=says):
            PublishTarget.parse(bad)


def test_sixteen_subscribers_through_janus_while_the_server_encodes_once(janus):
    url = f"{janus.api}?room={ROOM}&id=42"
    with ServerProcess(["--publish", url, "--fps", "30"]) as server:
        wait_publishing(server, 1)
        frames = asyncio.run(watch(janus.api, 10))
        assert {(f.width, f.height) for f in frames} == {(256, 256)}

        result = subscribers(janus.api, SUBSCRIBERS, seconds=6.0, vanish=1)
        print(f"through Janus, frames a second per subscriber: {result}")
        assert result["feed"] == 42
        assert len(result["fps"]) == SUBSCRIBERS and min(result["fps"]) >= MIN_FPS, result
        # a subscriber that vanished without a word left the others (and the publish) as they were
        after = result["after_vanish"]
        assert after[0] == 0 and min(after[1:]) >= MIN_FPS, result
        stats = server.stats()
        assert stats["publish"]["publishes"] == 1 and stats["publish"]["state"] == "publishing", stats["publish"]
        # the server encoded one stream for all of them: one encoder, no direct viewers
        assert stats["sessions"] == 0
        assert stats["encoder"]["frames"] <= stats["frames"] + 1

        # Janus restarts: the publisher notices, publishes again (the same feed id), and viewers watch again
        janus.stop()
        janus.start()
        wait_publishing(server, 2, timeout=40)
        frames = asyncio.run(watch(janus.api, 25))
        assert len(frames) == 25
        assert "Traceback" not in server.log(), server.log()[-3000:]


def test_realtime_serve_publishes_the_avatar_into_janus(janus):
    with ServerProcess(["serve", "--driver", "tour", "--size", "256", "--backend", "cpu",
                        "--publish", f"{janus.api}?room={ROOM}"], module="realtime.app.cli",
                       startup_timeout=180) as server:
        publish = wait_publishing(server, 1, timeout=60)
        frames = asyncio.run(watch(janus.api, 25))
        assert {(f.width, f.height) for f in frames} == {(256, 256)}
        assert server.stats()["publish"]["frames_sent"] > publish["frames_sent"]
