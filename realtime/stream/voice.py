"""One session's part in the voice: what its offer's audio asks for, the sender's microphone in, a viewer's voice
out (the relay itself is ``audio.py``).

* A **sender** whose offer sends audio gets it received (``recvonly`` in the answer): every frame aiortc
  decodes goes to the relay, stamped on the camera frames' clock (``lipsync.voice_capture_ns``, with this
  lags of its camera and its voice from arrival to hand-over, and the skew between its picture's and its
  voice's way up, both from its packets, ``uplink.py``). Any
  audio codec aiortc decodes will do (Opus, G.722, PCMU, PCMA).
* A **viewer** whose offer receives audio and accepts Opus gets a ``VoiceTrack`` (``sendonly``): the relay's
  packets, encoded once for everyone. An offer whose audio lacks Opus is answered without voice (the audio
  section ``inactive``) and the reason kept for ``/stats``; its video is not affected.
* An offer without audio is exactly as before. An audio section with no codec aiortc knows at all (which would
  make aiortc refuse the whole offer) is answered rejected (``rejectmedia.py``): the session goes on with its
  video, and the reason is kept for ``/stats``.

The sender's own voice is never sent back to it.

aiortc's audio receiver holds each frame until four newer ones are in (``JitterBuffer(capacity=16,
prefetch=4)``, 80 ms of voice) before handing it over. That hold buys nothing here: packets out of order are
put in order by the jitter buffer whatever its prefetch, and the voice is re-timed by its capture time on the
way out; but it makes the voice arrive 80 ms after the camera frame of the same moment, too late to be put in
step with a fast pipeline. So a sender's audio receiver gets a buffer that hands each frame over as soon as
the next one begins (``shorten_receive_hold``, one frame, 20 ms): a private attribute of aiortc 1.16, replaced
only when it is exactly the buffer expected (otherwise left alone, with the 80 ms hold accounted for).
"""
from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.jitterbuffer import JitterBuffer
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from .audio import VoiceRelay, VoiceTrack
from .lipsync import AIORTC_AUDIO_HOLD_FRAMES, OPUS_LOOKAHEAD_NS, FrameCadence, VoiceClock, receive_hold_ns, \
    voice_capture_ns
from .rejectmedia import SetAside, put_back, set_aside
from .signaling import SignalingError
from .tracks import drain
from .uplink import Uplink

VOICE_CODEC = "audio/opus"


def _names(media) -> list[str]:
    return [c.mimeType.split("/")[-1].upper() for c in media.rtp.codecs]


def _known() -> set[str]:
    return {c.mimeType.split("/")[1].upper() for c in RTCRtpSender.getCapabilities("audio").codecs}


def offer_audio(sdp: str) -> tuple[str, list[str]] | None:
    """The direction and codec names (upper case, in the offer's order of preference) of the offer's first audio
    section with a codec aiortc knows; None without one. Raises SignalingError for SDP that does not parse."""
    try:
        desc = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on junk
        raise SignalingError(f"could not parse the offer's SDP: {exc}") from None
    known = _known()
    usable = [m for m in desc.media if m.kind == "audio" and set(_names(m)) & known]
    return (usable[0].direction or "sendrecv", _names(usable[0])) if usable else None


def _ms(ns: int | None) -> float | None:
    return None if ns is None else round(ns / 1e6, 1)


def shorten_receive_hold(pc: RTCPeerConnection, track: MediaStreamTrack) -> int:
    """Make the aiortc receiver of ``track`` hand each audio frame over one frame after it (module docstring);
    returns the hold now in force, in frames."""
    receiver = next((r for r in pc.getReceivers() if r.track is track), None)
    name = "_RTCRtpReceiver__jitter_buffer"
    buffer = getattr(receiver, name, None)
    if type(buffer) is not JitterBuffer or getattr(buffer, "_prefetch", None) != AIORTC_AUDIO_HOLD_FRAMES:
        return AIORTC_AUDIO_HOLD_FRAMES  # not the aiortc this was written against: leave it as it is
    setattr(receiver, name, JitterBuffer(capacity=buffer.capacity, prefetch=1))  # prefetch 0 and 1 both hold one
    return 1


class SessionVoice:
    """The voice side of one Session. relay: the server's VoiceRelay; role: ``sender`` or ``viewer``."""

    def __init__(self, relay: VoiceRelay, role: str) -> None:
        self.relay, self.role = relay, role
        self.track: VoiceTrack | None = None  # a viewer's outbound voice
        self.speaks = False  # a sender whose microphone is received
        self.declined: str | None = None
        self.frames_in = 0
        self._cadence = FrameCadence()
        self._clock = VoiceClock()
        self._uplink = Uplink()  # this sender's packets: hand-over lags, how much later its pictures arrive
        self._clock_rate = 48_000
        self._codec_delay_ns = 0  # how late the sender's codec returns the sound
        self._hold_frames = AIORTC_AUDIO_HOLD_FRAMES  # how long aiortc holds a received frame
        self._pc: RTCPeerConnection | None = None
        self._aside: list[SetAside] = []

    def prepare(self, pc: RTCPeerConnection, sdp: str) -> str:
        """Before the offer is applied: look at its audio and, for a viewer that takes Opus, add the voice.
        Returns the offer to apply: ``sdp`` less any audio section aiortc cannot answer (``answer`` puts it back,
        rejected). Raises SignalingError for SDP that does not parse."""
        self._pc = pc
        known = _known()
        try:
            sdp, self._aside = set_aside(sdp, lambda m: m.kind == "audio" and not set(_names(m)) & known)
        except Exception as exc:  # aiortc's parser raises assorted errors on junk
            raise SignalingError(f"could not parse the offer's SDP: {exc}") from None
        if self._aside:
            self.declined = (f"the offer's audio accepts none of the codecs this server takes "
                             f"({', '.join(sorted(known))}): answered without it, video only")
        audio = offer_audio(sdp)
        if audio is None:
            return sdp
        direction, codecs = audio
        if self.role == "sender":  # aiortc takes the first codec of the offer it knows
            uplink = next(name for name in codecs if name in known)
            self._codec_delay_ns = OPUS_LOOKAHEAD_NS if uplink == "OPUS" else 0
            self._clock_rate = 48_000 if uplink == "OPUS" else 8_000  # RTP clocks: Opus; G.722, PCMU, PCMA
        elif "recv" in direction and "OPUS" not in codecs:
            self.declined = (f"the offer's audio lacks Opus, the codec of this server's voice (it offers "
                             f"{', '.join(codecs)}): video only")
        elif "recv" in direction:
            self.track = VoiceTrack(self.relay)
            transceiver = pc.addTransceiver(self.track, direction="sendonly")
            transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs
                                             if c.mimeType.lower() == VOICE_CODEC])
        return sdp

    def answer(self, sdp: str) -> str:
        """aiortc's answer to the offer ``prepare`` returned, with the audio sections it set aside rejected."""
        return put_back(sdp, self._aside)

    def listen(self, track: MediaStreamTrack):
        """The coroutine that feeds a sender's microphone ``track`` to the relay, or None when this session's
        audio is not a voice to relay (a viewer's, or a second audio track)."""
        if self.role != "sender" or track.kind != "audio" or self.speaks:
            return None
        self.speaks = True
        if self._pc is not None:
            self._hold_frames = shorten_receive_hold(self._pc, track)
            for receiver in self._pc.getReceivers():
                if receiver.track is track:
                    self._uplink.watch(receiver, "audio", self._clock_rate)
                elif receiver.track is not None and receiver.track.kind == "video":
                    self._uplink.watch(receiver, "video", 90_000)
        return drain(track, self._on_frame)

    def camera_frame(self, frame, handed_ns: int) -> None:
        """A camera ``frame`` of this session was handed over at ``handed_ns`` (for the camera's lag)."""
        self._cadence.arrived(handed_ns)
        self._uplink.handed("video", frame.pts, handed_ns)

    def _on_frame(self, frame, handed_ns: int) -> None:
        self.frames_in += 1
        self._uplink.handed("audio", frame.pts, handed_ns)
        voice_lag = self._uplink.lag_ns("audio") or receive_hold_ns(frame, self._hold_frames)
        camera_lag = self._uplink.lag_ns("video") or self._cadence.interval_ns
        stamp = voice_capture_ns(handed_ns, voice_lag, camera_lag, self._codec_delay_ns) + self._uplink.skew_ns
        self.relay.push(frame, self._clock.stamp(frame.time, stamp))

    def _uplink_info(self) -> dict:
        return {"voice_lag_ms": _ms(self._uplink.lag_ns("audio")), "camera_lag_ms": _ms(self._uplink.lag_ns("video")),
                "skew_ms": _ms(self._uplink.skew_ns)}

    def close(self) -> None:
        if self.track is not None:
            self.track.stop()

    def info(self) -> dict:
        """This session's voice counters, JSON-serialisable."""
        return {
            "speaks": self.speaks,
            "listens": self.track is not None,
            "declined": self.declined,
            "frames_in": self.frames_in,
            "receive_hold_frames": self._hold_frames if self.speaks else None,
            "uplink": self._uplink_info() if self.speaks else None,
            "packets_sent": self.track.sent if self.track else 0,
            "packets_skipped": self.track.skipped if self.track else 0,
        }
