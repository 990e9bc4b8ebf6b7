"""A sender's two streams on their way up, timed from their packets: how long after arriving aiortc hands each
frame over, and how much later the picture of a moment arrives than its voice (from the sender's own RTCP
sender reports).

* **Hand-over lag.** aiortc hands a camera frame over when the next one begins to arrive and once its decoder
  thread has decoded it, an audio frame when the one after it arrives (``lipsync.py``). Each packet that
  completes a frame (the video frame's last, marked packet; every audio packet) is noted with its RTP
  timestamp and arrival time; a frame handed over carries ``pts = RTP timestamp - the first one received``
  (aiortc's receiver counts from its first frame), so its lag is its hand-over time less the arrival noted
  for ``first + pts``. The medians of the last ``WINDOW`` lags are ``Uplink.lag_ns``.
* **Skew.** A browser encodes and paces its video for longer than its audio, so the camera frame of a moment
  arrives some milliseconds to tens after the voice of that moment. The sender says what belongs together:
  each of its streams' sender reports maps that stream's RTP timestamps onto its one NTP clock (the capture
  clock, for a browser; the send clock, for aiortc). A frame's transit is its arrival (this machine's wall
  clock) less the NTP time of its RTP timestamp; the two machines' clocks differ by the same amount for both
  streams, so the difference of the two streams' median transits is the skew (``Uplink.skew_ns``).

aiortc hands the sender reports and the packets to each ``RTCRtpReceiver`` through its ``_handle_rtcp_packet``
and ``_handle_rtp_packet`` methods and keeps them to itself; ``Uplink.watch`` wraps those two methods of one
receiver (looked up per instance, so only that receiver is touched) and leaves a receiver without them alone:
there is then no measure, and the voice falls back on the holds aiortc is known to keep.
"""
from __future__ import annotations

import statistics
import time
from collections import OrderedDict, deque

from aiortc.rtp import RtcpSrPacket

NTP_UNIX_S = 2_208_988_800  # seconds from 1900 (NTP's epoch) to 1970
RTP_MASK = 0xFFFFFFFF
WINDOW = 200  # transits and lags kept per stream
MIN_SAMPLES = 10  # before a median counts
MAX_SOURCES = 4  # SSRCs followed per stream (the media one, its retransmissions)
ARRIVALS = 64  # frame arrivals remembered per SSRC, for the frames still to be handed over


def ntp_seconds(ntp: int) -> float:
    """A 64-bit NTP timestamp in seconds since 1970."""
    return (ntp >> 32) + (ntp & 0xFFFFFFFF) / 2**32 - NTP_UNIX_S


def _median(samples) -> float | None:
    return statistics.median(samples) if len(samples) >= MIN_SAMPLES else None


class _Stream:
    """One stream's packets, per SSRC: the first RTP timestamp, recent frame arrivals, the latest sender report,
    transits; and the lags of its frames handed over."""

    def __init__(self, clock_rate: int) -> None:
        self.clock_rate = clock_rate
        self._first: dict[int, int] = {}
        self._arrivals: dict[int, OrderedDict[int, int]] = {}
        self._reports: dict[int, tuple[float, int]] = {}  # ssrc -> (ntp seconds, rtp timestamp) of the latest
        self._transits: dict[int, deque[float]] = {}
        self.lags: deque[int] = deque(maxlen=WINDOW)

    def report(self, ssrc: int, ntp: int, rtp: int) -> None:
        if ssrc in self._reports or len(self._reports) < MAX_SOURCES:
            self._reports[ssrc] = (ntp_seconds(ntp), rtp)

    def packet(self, ssrc: int, rtp: int, completes_frame: bool) -> None:
        if ssrc not in self._first:
            if len(self._first) >= MAX_SOURCES:
                return
            self._first[ssrc] = rtp
        if not completes_frame:
            return
        arrivals = self._arrivals.setdefault(ssrc, OrderedDict())
        arrivals[rtp] = time.monotonic_ns()
        if len(arrivals) > ARRIVALS:
            arrivals.popitem(last=False)
        report = self._reports.get(ssrc)
        if report is not None:
            ntp_s, rtp0 = report
            ticks = (rtp - rtp0 + 2**31) % 2**32 - 2**31  # signed, across the 32-bit wrap
            transit = time.time() - (ntp_s + ticks / self.clock_rate)
            self._transits.setdefault(ssrc, deque(maxlen=WINDOW)).append(transit)

    def handed(self, pts: int, handed_ns: int) -> None:
        for ssrc, first in self._first.items():
            arrived = self._arrivals.get(ssrc, {}).get((first + pts) & RTP_MASK)
            if arrived is not None:
                self.lags.append(handed_ns - arrived)
                return

    def transit_s(self) -> float | None:
        """The median transit of the SSRC with the most transits."""
        return _median(max(self._transits.values(), key=len, default=()))


class Uplink:
    """A sender's ``video`` and ``audio`` streams on their way up (module docstring)."""

    def __init__(self) -> None:
        self._streams: dict[str, _Stream] = {}

    def watch(self, receiver, kind: str, clock_rate: int) -> bool:
        """Follow ``receiver``'s reports and packets as the ``video`` or ``audio`` stream (RTP clock ``clock_rate``);
        False when this aiortc has no such methods to follow them by."""
        on_rtcp, on_rtp = (getattr(receiver, name, None) for name in ("_handle_rtcp_packet", "_handle_rtp_packet"))
        if on_rtcp is None or on_rtp is None:
            return False
        stream = self._streams[kind] = _Stream(clock_rate)

        async def rtcp(packet):
            if isinstance(packet, RtcpSrPacket):
                stream.report(packet.ssrc, packet.sender_info.ntp_timestamp, packet.sender_info.rtp_timestamp)
            await on_rtcp(packet)

        async def rtp(packet, arrival_time_ms):
            stream.packet(packet.ssrc, packet.timestamp, bool(packet.marker) or kind == "audio")
            await on_rtp(packet, arrival_time_ms=arrival_time_ms)

        receiver._handle_rtcp_packet, receiver._handle_rtp_packet = rtcp, rtp
        return True

    def handed(self, kind: str, pts: int | None, handed_ns: int) -> None:
        """A frame of ``kind`` with this ``pts`` (as aiortc hands it over) was handed over at ``handed_ns``."""
        if kind in self._streams and pts is not None:
            self._streams[kind].handed(int(pts), handed_ns)

    def lag_ns(self, kind: str) -> int | None:
        """The median time from a frame's arrival to its hand-over (ns); None until measured."""
        lag = _median(self._streams[kind].lags) if kind in self._streams else None
        return None if lag is None else int(lag)

    @property
    def skew_ns(self) -> int:
        """How much later the picture of a moment arrives than its voice (ns; 0 until both streams are known)."""
        video, audio = (self._streams[k].transit_s() if k in self._streams else None for k in ("video", "audio"))
        return 0 if video is None or audio is None else int((video - audio) * 1e9)
