"""One session's part in the voice: what its offer's audio asks for, the sender's microphone in, a viewer's voice
out (the relay itself is ``audio.py``).

* A **sender** whose offer sends audio gets it received (``recvonly`` in the answer): every frame aiortc
  decodes goes to the relay, stamped on the camera frames' clock (``lipsync.voice_capture_ns``, with this
  session's camera cadence). Any audio codec aiortc decodes will do (Opus, G.722, PCMU, PCMA).
* A **viewer** whose offer receives audio and accepts Opus gets a ``VoiceTrack`` (``sendonly``): the relay's
  packets, encoded once for everyone. An offer whose audio lacks Opus is answered without voice (the audio
  section ``inactive``) and the reason kept for ``/stats``; its video is not affected.
* An offer without audio is exactly as before. An audio section with no codec aiortc knows at all is refused
  with an error naming its codecs, since aiortc cannot answer it (it has no way to reject a single media
  section); the connection stays usable for an offer without that section.

The sender's own voice is never sent back to it.
"""
from __future__ import annotations

from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from aiortc.rtcrtpsender import RTCRtpSender
from aiortc.sdp import SessionDescription

from .audio import VoiceRelay, VoiceTrack
from .lipsync import OPUS_LOOKAHEAD_NS, FrameCadence, voice_capture_ns
from .signaling import SignalingError
from .tracks import drain

VOICE_CODEC = "audio/opus"


def offer_audio(sdp: str) -> tuple[str, list[str]] | None:
    """The direction and codec names (upper case, in the offer's order of preference) of the offer's first audio
    section; None without one.

    Raises SignalingError when an audio section offers no codec aiortc can receive or send."""
    try:
        desc = SessionDescription.parse(sdp)
    except Exception as exc:  # aiortc's parser raises assorted errors on junk
        raise SignalingError(f"could not parse the offer's SDP: {exc}") from None
    known = {c.mimeType.split("/")[1].upper() for c in RTCRtpSender.getCapabilities("audio").codecs}
    sections = [m for m in desc.media if m.kind == "audio"]
    for media in sections:
        names = {c.mimeType.split("/")[-1].upper() for c in media.rtp.codecs}
        if not names & known:
            raise SignalingError(
                f"the offer's audio accepts none of the codecs this server takes ({', '.join(sorted(known))}); "
                f"it offers {', '.join(sorted(names)) or 'none'}: offer one of them, or no audio (the video "
                "needs none)")
    if not sections:
        return None
    return sections[0].direction or "sendrecv", [c.mimeType.split("/")[-1].upper() for c in sections[0].rtp.codecs]


class SessionVoice:
    """The voice side of one Session. relay: the server's VoiceRelay; role: ``sender`` or ``viewer``."""

    def __init__(self, relay: VoiceRelay, role: str) -> None:
        self.relay, self.role = relay, role
        self.track: VoiceTrack | None = None  # a viewer's outbound voice
        self.speaks = False  # a sender whose microphone is received
        self.declined: str | None = None
        self.frames_in = 0
        self._cadence = FrameCadence()
        self._codec_delay_ns = 0  # how late the sender's codec returns the sound

    def prepare(self, pc: RTCPeerConnection, sdp: str) -> None:
        """Before the offer is applied: check its audio and, for a viewer that takes Opus, add the voice.
        Raises SignalingError (see ``offer_audio``)."""
        audio = offer_audio(sdp)
        if audio is None:
            return
        direction, codecs = audio
        if self.role == "sender":  # aiortc takes the first codec of the offer it knows
            known = {c.mimeType.split("/")[1].upper() for c in RTCRtpSender.getCapabilities("audio").codecs}
            uplink = next(name for name in codecs if name in known)
            self._codec_delay_ns = OPUS_LOOKAHEAD_NS if uplink == "OPUS" else 0
            return
        if "recv" not in direction:
            return
        if "OPUS" not in codecs:
            self.declined = (f"the offer's audio lacks Opus, the codec of this server's voice (it offers "
                             f"{', '.join(codecs)}): video only")
            return
        self.track = VoiceTrack(self.relay)
        transceiver = pc.addTransceiver(self.track, direction="sendonly")
        transceiver.setCodecPreferences([c for c in RTCRtpSender.getCapabilities("audio").codecs
                                         if c.mimeType.lower() == VOICE_CODEC])

    def listen(self, track: MediaStreamTrack):
        """The coroutine that feeds a sender's microphone ``track`` to the relay, or None when this session's
        audio is not a voice to relay (a viewer's, or a second audio track)."""
        if self.role != "sender" or track.kind != "audio" or self.speaks:
            return None
        self.speaks = True
        return drain(track, self._on_frame)

    def camera_frame(self, handed_ns: int) -> None:
        """A camera frame of this session was handed over at ``handed_ns`` (for the camera's cadence)."""
        self._cadence.arrived(handed_ns)

    def _on_frame(self, frame, handed_ns: int) -> None:
        self.frames_in += 1
        self.relay.push(frame, voice_capture_ns(frame, handed_ns, self._cadence.interval_ns, self._codec_delay_ns))

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
            "packets_sent": self.track.sent if self.track else 0,
            "packets_skipped": self.track.skipped if self.track else 0,
        }
