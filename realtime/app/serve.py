"""`realtime serve`: the live loop behind the WebRTC server.

Drivers:
    browser        the browser's camera (a 'sender' page) drives the avatar; while no sender streams,
                   the built-in expression tour plays, so the demo always moves (default)
    webcam[:N]     an OpenCV camera on this machine (device N, default 0)
    tour           the built-in expression tour, looped
    VIDEO          a face video file, played in a loop at its own frame rate, as if it were a camera, with its
                   sound (if it has any) as the avatar's voice, in lip sync
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path

from realtime.app.motions import tour
from realtime.app.feeds import MotionFeed, Feed, VideoFeed, WebcamFeed
from realtime.app.library import resolve_avatar
from realtime.painter import AvatarPainter
from realtime.pipeline import LivePipeline

log = logging.getLogger("realtime.app.serve")


def build_live(avatar_specs: list[str], driver: str, size: int, backend: str) -> tuple[LivePipeline, Feed]:
    """The pipeline and its feed for `driver` (see the module doc), drawing the first of `avatar_specs`."""
    if size % 2 or not 128 <= size <= 2048:
        raise ValueError(f"--size must be an even number of pixels between 128 and 2048, got {size}")
    avatars = {spec: resolve_avatar(spec)[0] for spec in avatar_specs}
    first = avatars[avatar_specs[0]]
    painter = AvatarPainter(first, first.camera.resized(size, size), backend=backend)
    tracks = driver != "tour"

    def make_tracker(rig):
        """A tracker whose head turns are read in the axes of the camera the avatar is drawn through."""
        from realtime.track.tracker import Tracker

        return Tracker(rig, view=pipeline.painter.camera.viewmat[:3, :3])

    pipeline = LivePipeline(painter, tracker_factory=make_tracker if tracks else None,
                            avatar_loader=avatars.__getitem__, avatar_names=list(avatars), driver=driver)
    if driver in ("browser", "tour"):
        feed: Feed = MotionFeed(pipeline, tour(first.rig, first.shape), pause_while_camera=(driver == "browser"))
    elif driver == "webcam" or driver.startswith("webcam:"):
        device = driver.partition(":")[2] or "0"
        if not device.isdigit():
            raise ValueError(f"--driver webcam:N needs a device number, got {driver!r}")
        feed = WebcamFeed(pipeline, int(device))
    elif Path(driver).is_file():
        feed = VideoFeed(pipeline, driver)
    else:
        raise ValueError(f"--driver must be browser, webcam[:N], tour or a video file; {driver!r} is none of these")
    return pipeline, feed


async def run_server(pipeline: LivePipeline, feed: Feed, host: str, port: int, token: str | None,
                     stop: asyncio.Event, **options) -> None:
    """Start the pipeline, its feed and the server; run until `stop` is set; then shut all down. A feed with sound
    (a video file's) speaks into the server's voice relay, beside a browser sender's microphone."""
    from realtime.stream.audio import VoiceRelay
    from realtime.stream.server import serve

    voice = VoiceRelay()
    feed.voice = voice
    pipeline.start()
    feed.start()
    try:
        await serve(pipeline, host, port, token, stop=stop, voice=voice, **options)
    finally:
        feed.stop()
        pipeline.stop()


def serve_main(avatar_specs: list[str], driver: str, host: str, port: int, token: str | None, size: int,
               backend: str, max_sessions: int, *, codec: str, bitrate: int | None, keyframe_interval_s: float,
               publish: str | None = None) -> None:
    """Build the live loop and serve it until SIGINT or SIGTERM. codec, bitrate (bits/s, None: by frame size) and
    keyframe_interval_s are the stream's, as StreamServer takes them; publish: a Janus VideoRoom to publish the
    stream into as well (``realtime.stream.janus``), None for none."""
    from realtime.stream.encoder import StreamEncoder
    from realtime.stream.janus import PublishTarget
    from realtime.stream.server import check_bind, run_until_signalled

    check_bind(host, token)  # before the minutes an avatar build may take
    if publish is not None:
        PublishTarget.parse(publish)  # a bad --publish URL is refused as early
    StreamEncoder(codec, bitrate, keyframe_interval_s=keyframe_interval_s)  # refuses bad stream options, as early
    started = time.monotonic()
    pipeline, feed = build_live(avatar_specs, driver, size, backend)
    log.info("avatar ready in %.1f s (backend %s)", time.monotonic() - started, pipeline.painter.backend)

    options = dict(max_sessions=max_sessions, codec=codec, bitrate=bitrate, keyframe_interval_s=keyframe_interval_s,
                   publish=publish)
    run_until_signalled(lambda stop: run_server(pipeline, feed, host, port, token, stop, **options))
