"""The stream's one encoder: keyframes when due or asked for, one packet a frame on the 90 kHz clock, pictures
that arrive whole (no block left from an earlier frame), bitrate by frame size, both codecs."""
import av
import numpy as np
import pytest
from skimage.data import astronaut

from realtime.stream.encoder import (
    BITS_PER_PIXEL, MAX_BITRATE, MIN_BITRATE, VIDEO_CLOCK_HZ, VIDEO_TIME_BASE, StreamEncoder, default_bitrate,
)

PERIOD = VIDEO_CLOCK_HZ // 25


def picture(size: int = 256) -> np.ndarray:
    return np.ascontiguousarray(astronaut()[:: 512 // size, :: 512 // size])


def with_blocks(image: np.ndarray, bits: np.ndarray) -> np.ndarray:
    """`image` with a row of 32 black/white blocks (8 px wide, 12 rows) along its bottom edge."""
    out = image.copy()
    out[-12:, : 32 * 8] = np.repeat(bits.astype(np.uint8) * 255, 8)[None, :, None]
    return out


def decode_all(codec: str, packets) -> list[av.VideoFrame]:
    decoder = av.CodecContext.create("libvpx" if codec == "vp8" else "h264", "r")
    return [f for p in packets for f in decoder.decode(av.Packet(bytes(p)))]


@pytest.mark.parametrize("codec", ["vp8", "h264"])
def test_keyframes_first_on_request_and_by_stream_time(codec):
    encoder = StreamEncoder(codec, keyframe_interval_s=1.0)
    image = picture()
    packets, keyframes = [], []
    for i in range(60):
        packet = encoder.encode(image, i * PERIOD, keyframe=(i == 10))
        assert packet.pts == i * PERIOD and packet.time_base == VIDEO_TIME_BASE
        packets.append(packet)
        if packet.is_keyframe:
            keyframes.append(i)
    # frame 0 starts the stream, 10 was asked for, then one a second of stream time after the last: 35 (60 is past)
    assert keyframes == [0, 10, 35]
    stats = encoder.stats()
    assert (stats.frames, stats.keyframes, stats.size) == (60, 3, (256, 256))
    assert stats.bytes == sum(p.size for p in packets)
    frames = decode_all(codec, packets)
    assert len(frames) == 60 and {(f.width, f.height) for f in frames} == {(256, 256)}


def test_every_frame_arrives_whole():
    """Small blocks that change every frame, over a still photo: each decoded frame shows its own blocks."""
    rng = np.random.default_rng(0)
    encoder, base = StreamEncoder(), picture()
    sent = [rng.integers(0, 2, 32).astype(bool) for _ in range(75)]
    frames = decode_all("vp8", [encoder.encode(with_blocks(base, bits), i * PERIOD) for i, bits in enumerate(sent)])
    for i, (frame, bits) in enumerate(zip(frames, sent)):
        strip = frame.to_ndarray(format="rgb24")[-9:-3, : 32 * 8].reshape(6, 32, 8, 3)[:, :, 2:6]
        assert np.array_equal(strip.mean(axis=(0, 2, 3)) > 127.5, bits), f"frame {i} shows other blocks"
        assert np.abs(frame.to_ndarray(format="rgb24")[:-16].astype(int) - base[:-16]).mean() < 6


def test_a_new_frame_size_reopens_the_encoder_with_a_keyframe():
    encoder = StreamEncoder()
    assert encoder.encode(picture(256), 0).is_keyframe
    assert not encoder.encode(picture(256), PERIOD).is_keyframe
    packet = encoder.encode(picture(128), 2 * PERIOD)
    assert packet.is_keyframe and encoder.stats().size == (128, 128)
    assert encoder.bitrate == default_bitrate(128, 128)


def test_bitrate_follows_the_frame_size_within_bounds():
    assert default_bitrate(512, 512, 25) == int(BITS_PER_PIXEL * 512 * 512 * 25)
    assert default_bitrate(512, 512, 25) == 4 * default_bitrate(256, 256, 25)
    assert default_bitrate(64, 64, 5) == MIN_BITRATE and default_bitrate(4096, 4096, 60) == MAX_BITRATE
    encoder = StreamEncoder(bitrate=2_000_000)
    encoder.encode(picture(512), 0)
    assert encoder.stats().bitrate == 2_000_000


@pytest.mark.parametrize("kwargs, message", [
    ({"codec": "av1"}, "codec must be one of vp8, h264"),
    ({"bitrate": 10}, "bitrate must be in"),
    ({"fps": 0}, r"fps must be in \(0, 120\]"),
    ({"keyframe_interval_s": 0}, "keyframe_interval_s must be positive"),
])
def test_bad_settings_are_named(kwargs, message):
    with pytest.raises(ValueError, match=message):
        StreamEncoder(**kwargs)
