"""Lip sync: voice and the avatar's mouth on one clock, and how far to hold the voice back.

The avatar's picture of a moment leaves the server the pipeline's latency after the camera frame of that
moment arrived (tracking, fitting, deforming, rendering, encoding: ``published_ns - capture_ts_ns`` of each
encoded frame, tens to hundreds of milliseconds). The voice of the same moment needs none of that work, so
relayed as it comes it would play ahead of the mouth by that whole latency.

Two ways to put them back in step were weighed:

* **The receiver's own A/V sync (RTCP sender reports).** A browser plays the audio and video of one
  MediaStream in step by mapping each stream's RTP timestamps onto one NTP clock with the sender reports of
  each stream. aiortc 1.16 writes each ``RTCRtpSender``'s report itself (``_run_rtcp``): its NTP time is
  ``clock.current_ntp_time()`` read just after the last RTP packet went out, and its RTP time that packet's.
  The mapping is per sender and always "this RTP time was *sent* at this wall-clock time": there is no way to
  tell it that a frame was captured earlier than it was sent (and aiortc implements no
  abs-capture-time header extension). A receiver that trusts those reports lines up voice and picture that
  were sent together, so the voice still leads by the pipeline latency.
* **Hold the voice back in the server** by the measured camera→output latency of the video, so that the
  voice of a moment is *sent* together with the picture of that moment. Then the sender reports say the
  truth about what belongs together, and the receiver's A/V sync (Chrome syncs the tracks of one MediaStream;
  aiortc gives every track of a peer connection the same msid stream id) removes what differs after that:
  jitter buffers, decoding, rendering.

This module does the second. The delay follows the video: the median of ``published_ns - capture_ts_ns`` over
the last ``WINDOW_FRAMES`` video frames (about three seconds), changed only when it moves by more than
``DELAY_STEP_MS`` after the first (each change is a small gap or a short burst in the voice, which the
receiver's jitter buffer smooths), within ``[0, MAX_DELAY_MS]``. With no video yet there is nothing to wait
for: no delay. What the delay leaves between each video frame and its voice (the delay less that frame's
latency) is kept as the A/V offset at the server's output.

Capture times on one clock. A camera frame is stamped when aiortc's receiver hands it over decoded: after the
first packet of the *next* frame arrives (its jitter buffer cannot know a frame is complete before), about one
camera frame interval after the frame itself arrived, and after its decoding (in aiortc's decoder thread,
which waits for a CPU on a busy machine: tens of milliseconds with two browsers on two cores). aiortc's audio
receiver hands a frame over once ``AIORTC_AUDIO_HOLD_FRAMES`` (4) newer frames are buffered
(``JitterBuffer(capacity=16, prefetch=4)``), 80 ms for 20 ms Opus frames; the server shortens that to one frame
(``voice.shorten_receive_hold``), since a voice that arrives later than the picture of its moment cannot be put
back in step by holding it. An audio frame is stamped with the time a camera frame captured with it would have
been stamped (``voice_capture_ns``): its hand-over time, less its own lag from arrival to hand-over, plus the
camera's. Both lags are measured frame by frame from the packets' arrival times (``uplink.py``); until they
are, the holds stand in for them (the audio hold, one camera frame interval: ``FrameCadence``). The stamps are
then evened out along the sender's own audio clock (``VoiceClock``), so that the jitter of the uplink does not
reach the viewers. A feed on this
machine (a video file's sound) stamps its frames as it plays them, like its pictures, and needs no correction.
What the sender itself adds to its picture and not to its voice on the way up (a browser's video encoder and
pacer, some milliseconds to tens) is measured from its own sender reports and added too (``uplink.py``).

Opus itself delays the sound: a libopus encoder looks ahead 312 samples at 48 kHz (``OPUS_LOOKAHEAD_NS``,
6.5 ms), and a decoder that starts from the packets as aiortc's (and a browser's jitter buffer) do returns the
sound that much later than the packets' timestamps say (measured here: a click encoded and decoded through
PyAV's libopus comes out 311 samples late). So an Opus uplink's frames are stamped 6.5 ms earlier, and the
relay sends each frame 6.5 ms before its due time to make up for its own encoder.
"""
from __future__ import annotations

import statistics
from collections import deque

import av

AIORTC_AUDIO_HOLD_FRAMES = 4  # aiortc 1.16 rtcrtpreceiver: audio JitterBuffer(capacity=16, prefetch=4)
OPUS_LOOKAHEAD_NS = 312 * 1_000_000_000 // 48_000  # libopus at 48 kHz: 2.5 ms + 4 ms
MAX_DELAY_MS = 1000.0  # a pipeline slower than this is broken; the voice does not wait longer
DELAY_STEP_MS = 10.0  # the delay follows the video latency in steps of at least this
CADENCE_FRAMES = 30  # camera frame intervals the cadence is the median of
WINDOW_FRAMES = 75  # video frames the delay is the median latency of: 3 s at 25 fps


def receive_hold_ns(frame: av.AudioFrame, hold_frames: int = AIORTC_AUDIO_HOLD_FRAMES) -> int:
    """How long aiortc's audio receiver holds ``frame`` (``hold_frames`` frames of its duration) before handing it
    over."""
    return hold_frames * frame.samples * 1_000_000_000 // frame.sample_rate


def voice_capture_ns(handed_ns: int, voice_lag_ns: int, camera_lag_ns: int, codec_delay_ns: int = 0) -> int:
    """The capture time of a received audio frame on the camera frames' clock: the time a camera frame that
    arrived with it would be stamped (see the module docstring). handed_ns: when aiortc handed it over,
    voice_lag_ns after it arrived; camera_lag_ns: how long after arriving a camera frame is handed over;
    codec_delay_ns: how late its codec returns the sound (OPUS_LOOKAHEAD_NS for Opus)."""
    return handed_ns - voice_lag_ns + camera_lag_ns - codec_delay_ns


class FrameCadence:
    """The median interval between the last ``CADENCE_FRAMES`` arrivals of a stream (0 before two)."""

    def __init__(self, frames: int = CADENCE_FRAMES) -> None:
        self._intervals: deque[int] = deque(maxlen=frames)
        self._last_ns: int | None = None

    def arrived(self, ns: int) -> None:
        if self._last_ns is not None and ns > self._last_ns:
            self._intervals.append(ns - self._last_ns)
        self._last_ns = ns

    @property
    def interval_ns(self) -> int:
        return int(statistics.median(self._intervals)) if self._intervals else 0


class VoiceClock:
    """Capture times that keep the sender's own pace: a received frame's media time (its RTP time, ``frame.time``)
    plus the median of (stamp - media time) over the last ``window`` frames. A stamp from arrival carries the
    jitter of the way in; this one keeps the spacing the sender gave the frames, at the stamps' median delay
    (so it stays on the camera frames' clock, whose stamps carry their own jitter), and follows a drifting sender
    clock within the window. A frame without a media time keeps its stamp."""

    def __init__(self, window: int = CADENCE_FRAMES * 3) -> None:
        self._offsets: deque[int] = deque(maxlen=window)

    def stamp(self, media_time_s: float | None, stamp_ns: int) -> int:
        if media_time_s is None:
            return stamp_ns
        media_ns = int(media_time_s * 1e9)
        self._offsets.append(stamp_ns - media_ns)
        return media_ns + int(statistics.median(self._offsets))


class LipSync:
    """The voice's delay: the video's current camera→output latency, followed in steps (module docstring)."""

    def __init__(self, step_ms: float = DELAY_STEP_MS, max_ms: float = MAX_DELAY_MS,
                 window: int = WINDOW_FRAMES) -> None:
        if step_ms < 0 or max_ms <= 0 or window < 1:
            raise ValueError(f"step_ms must be >= 0, max_ms > 0 and window >= 1, got {step_ms}, {max_ms}, {window}")
        self.step_ms, self.max_ms = step_ms, max_ms
        self._latencies: deque[float] = deque(maxlen=window)
        self._offsets: deque[float] = deque(maxlen=window)
        self._seq = 0
        self.delay_ms = 0.0
        self.changes = 0
        self.capped = False  # the video latency exceeded max_ms: the voice leads by the excess

    def video_frame(self, seq: int, latency_ms: float) -> None:
        """The newest video frame (numbered ``seq``, increasing) left ``latency_ms`` after its capture; a frame
        seen before is ignored."""
        if seq <= self._seq:
            return
        self._seq = seq
        self._latencies.append(latency_ms)
        self._offsets.append(self.delay_ms - latency_ms)

    def follow(self) -> float:
        """The delay (ms), updated from the latencies seen."""
        if not self._latencies:
            return self.delay_ms
        target = statistics.median(self._latencies)
        self.capped = target > self.max_ms
        target = min(max(0.0, target), self.max_ms)
        if self.changes == 0 or abs(target - self.delay_ms) > self.step_ms:  # the first latency seen is taken
            self.delay_ms = target
            self.changes += 1
        return self.delay_ms

    @property
    def offsets_ms(self) -> list[float]:
        """For each recent video frame, the delay its voice got less the frame's latency (ms; positive: the voice
        left after the picture)."""
        return list(self._offsets)
