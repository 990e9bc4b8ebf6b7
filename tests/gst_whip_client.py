"""A WHIP client (RFC 9725) on GStreamer's own WebRTC stack (webrtcbin + libnice), for the system Python with
PyGObject: ``/usr/bin/python3 tests/gst_whip_client.py -u URL [-t TOKEN] -V PIPELINE``.

It stands in for Debian's ``simple-whip-client`` (``whip-client``), which takes the same ``-u`` / ``-t`` / ``-V``
arguments and builds the same pipeline, but which bookworm cannot run: it links libsoup 2.4, while bookworm's
GStreamer nice and webrtc plugins pull in libsoup 3 (through libnice → gupnp-igd → gupnp 1.6), and libsoup 3
aborts any process that already holds libsoup 2 (``libsoup2 symbols detected``). Nothing here is this project's
code: the media, the ICE, DTLS and SRTP are GStreamer's, and the HTTP is the standard library's.

What it does, as the RFC says: builds ``PIPELINE ! webrtcbin`` (send-only), waits for ICE gathering to finish,
POSTs the complete offer (``application/sdp``, ``Authorization: Bearer TOKEN`` when given), applies the
``201 Created`` answer, and on SIGINT / SIGTERM (or the end of the stream) DELETEs the ``Location`` resource.
Prints ``whip: resource <url>`` once the answer is applied and ``whip: deleted <status>`` at the end.
"""
import argparse
import signal
import sys
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import GLib, Gst, GstSdp, GstWebRTC  # noqa: E402


def http(method: str, url: str, token: str | None, body: bytes | None = None) -> tuple[int, dict, bytes]:
    request = urllib.request.Request(url, data=body, method=method)
    if body is not None:
        request.add_header("Content-Type", "application/sdp")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=15) as reply:
            return reply.status, dict(reply.headers), reply.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


class WhipClient:
    def __init__(self, url: str, token: str | None, video: str) -> None:
        self.url, self.token = url, token
        self.resource: str | None = None
        self.loop = GLib.MainLoop()
        self.pipeline = Gst.parse_launch(f"webrtcbin name=send bundle-policy=max-bundle {video} ! send.")
        self.webrtc = self.pipeline.get_by_name("send")
        for pad in self.webrtc.sinkpads:  # one transceiver a linked pad: send only, as WHIP wants
            pad.get_property("transceiver").set_property("direction",
                                                         GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
        self.webrtc.connect("on-negotiation-needed", self._on_negotiation_needed)
        self.webrtc.connect("notify::ice-gathering-state", self._on_gathering)
        bus = self.pipeline.get_bus()
        bus.add_signal_watch()
        bus.connect("message", self._on_bus)

    def run(self) -> int:
        for sig in (signal.SIGINT, signal.SIGTERM):
            GLib.unix_signal_add(GLib.PRIORITY_DEFAULT, sig, self.stop)
        self.pipeline.set_state(Gst.State.PLAYING)
        self.loop.run()
        return 0 if self.resource else 1

    def _on_negotiation_needed(self, webrtc) -> None:
        GLib.idle_add(self._make_offer)  # webrtcbin's thread: the offer is made on the main loop's

    def _make_offer(self) -> bool:
        promise = Gst.Promise.new()
        self.webrtc.emit("create-offer", None, promise)
        promise.wait()
        reply = promise.get_reply()  # held while the offer is used: the offer is a view into it
        self.webrtc.emit("set-local-description", reply.get_value("offer"), Gst.Promise.new())
        return False

    def _on_gathering(self, webrtc, _) -> None:
        if webrtc.get_property("ice-gathering-state") == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            GLib.idle_add(self._post_offer)

    def _post_offer(self) -> bool:
        sdp = self.webrtc.get_property("local-description").sdp.as_text()
        status, headers, body = http("POST", self.url, self.token, sdp.encode())
        if status != 201 or "Location" not in headers:
            print(f"whip: offer refused: {status} {body.decode(errors='replace').strip()}", flush=True)
            self.stop()
            return False
        self.resource = urllib.parse.urljoin(self.url, headers["Location"])
        _, message = GstSdp.SDPMessage.new_from_text(body.decode())
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, message)
        self.webrtc.emit("set-remote-description", answer, Gst.Promise.new())
        print(f"whip: resource {self.resource}", flush=True)
        return False

    def _on_bus(self, bus, message) -> None:
        if message.type == Gst.MessageType.EOS:
            self.stop()
        elif message.type == Gst.MessageType.ERROR:
            error, debug = message.parse_error()
            print(f"whip: pipeline error: {error.message} ({debug})", flush=True)
            self.stop()

    def stop(self) -> bool:
        if self.resource:
            status, _, _ = http("DELETE", self.resource, self.token)
            print(f"whip: deleted {status}", flush=True)
            self.resource = None
        self.pipeline.set_state(Gst.State.NULL)
        self.loop.quit()
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-u", "--url", required=True, help="the WHIP endpoint")
    parser.add_argument("-t", "--token", help="bearer token")
    parser.add_argument("-V", "--video", required=True, help="GStreamer pipeline ending in RTP caps")
    args = parser.parse_args()
    Gst.init(None)
    return WhipClient(args.url, args.token, args.video).run()


if __name__ == "__main__":
    sys.exit(main())
