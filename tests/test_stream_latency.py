"""The latency stamp: exact round trips, corruption detection, survival through real VP8."""
import json
import shutil
import subprocess
from pathlib import Path

import av
import numpy as np
import pytest

from realtime.stream.latency import (
    STAMP_MODULUS, STAMP_ROWS, LatencyWindow, crc8, draw_stamp, glass_to_glass_ms, read_frame_stamp,
    read_stamp, stamp_age_ms, stamp_bits, stamp_value,
)


def test_crc8_matches_the_standard_check_value():
    # CRC-8/ITU of ASCII "123456789" is 0xA1 (the catalogued check value).
    assert crc8(b"123456789") == 0xA1


@pytest.mark.parametrize("width", [128, 256, 250, 512, 640])
def test_stamp_round_trip(width):
    rng = np.random.default_rng(width)
    for stamp in [0, 1, STAMP_MODULUS - 1, *rng.integers(0, STAMP_MODULUS, 20)]:
        strip = draw_stamp(int(stamp), width)
        assert strip.shape == (STAMP_ROWS, width, 3) and strip.dtype == np.uint8
        assert read_stamp(strip) == stamp


def test_stamp_bits_layout():
    bits = stamp_bits(0xABCDEF)
    value = int("".join("1" if b else "0" for b in bits), 2)
    assert value >> 8 == 0xABCDEF
    assert value & 0xFF == crc8(bytes([0xAB, 0xCD, 0xEF]))
    guard = np.arange(256 * 3, dtype=np.uint8).reshape(256, 3)
    strip = draw_stamp(0xABCDEF, 256, guard)
    assert (strip[:4] == guard).all()  # guard rows repeat the picture's last row
    blocks = strip[4:, : 8 * 32].reshape(12, 32, 8, 3)  # 8 px wide blocks at 256
    assert (blocks == (bits * 255).astype(np.uint8)[None, :, None, None]).all()


def test_corrupted_stamp_is_rejected():
    strip = draw_stamp(123456, 256)
    for block in range(32):
        bad = strip.copy()
        bad[4:, block * 8:(block + 1) * 8] = 255 - bad[4:, block * 8:(block + 1) * 8]
        assert read_stamp(bad) is None, f"flipping block {block} went unnoticed"
    assert read_stamp(np.zeros((STAMP_ROWS, 256, 3), np.uint8)) is None
    assert read_stamp(np.full((STAMP_ROWS, 256, 3), 255, np.uint8)) is None


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="too narrow"):
        draw_stamp(5, 100)
    with pytest.raises(ValueError, match="outside"):
        draw_stamp(STAMP_MODULUS, 256)
    with pytest.raises(ValueError, match="strip must be"):
        read_stamp(np.zeros((8, 256, 3), np.uint8))


def test_stamp_survives_vp8_compression():
    """Noisy pictures above the strip, a low bitrate: every decoded frame still reads back exactly."""
    w, h = 256, 256
    enc = av.CodecContext.create("libvpx", "w")
    enc.width, enc.height, enc.pix_fmt, enc.bit_rate = w, h + STAMP_ROWS, "yuv420p", 150_000
    enc.options = {"deadline": "realtime", "cpu-used": "-6", "lag-in-frames": "0"}
    dec = av.CodecContext.create("libvpx", "r")
    rng = np.random.default_rng(0)
    sent, got = [], []
    for i in range(30):
        stamp = int(rng.integers(0, STAMP_MODULUS))
        sent.append(stamp)
        picture = rng.integers(0, 256, (h, w, 3), np.uint8)
        image = np.concatenate([picture, draw_stamp(stamp, w, picture[-1])])
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i
        for packet in enc.encode(frame):
            got += [read_frame_stamp(d.to_ndarray(format="rgb24")) for d in dec.decode(packet)]
    for packet in enc.encode(None):
        got += [read_frame_stamp(d.to_ndarray(format="rgb24")) for d in dec.decode(packet)]
    assert got == sent


def test_ages_wrap_modulo_2_24():
    ms = 1_000_000
    assert stamp_value(5 * ms) == 5
    assert stamp_value((STAMP_MODULUS + 7) * ms) == 7
    assert stamp_age_ms(STAMP_MODULUS - 10, (STAMP_MODULUS + 30) * ms) == 40
    assert stamp_age_ms(100, 142 * ms + 999_999) == 42


def test_glass_to_glass_subtracts_half_rtt_and_client_hold():
    now_ns = 10_000 * 1_000_000
    assert glass_to_glass_ms(10_000 - 80, now_ns, rtt_ms=20.0, held_ms=5.0) == pytest.approx(65.0)
    assert glass_to_glass_ms(10_000, now_ns, rtt_ms=20.0, held_ms=0.0) == 0.0  # never negative


def test_latency_window_percentiles():
    window = LatencyWindow(size=100)
    assert window.summary()["p50"] is None
    values = np.arange(250, dtype=float)
    for v in values:
        window.add(v)
    s = window.summary()
    kept = values[-100:]
    assert s["count"] == 250 and s["last"] == 249
    assert s["p50"] == pytest.approx(np.percentile(kept, 50))
    assert s["p95"] == pytest.approx(np.percentile(kept, 95))


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the web client's decoder")
def test_web_client_decoder_reads_python_stamps():
    """client_web/app.js decodes the strips drawn here (RGBA, as a canvas hands them over)."""
    rng = np.random.default_rng(1)
    cases = []
    for width in (128, 256, 512):
        for stamp in [0, STAMP_MODULUS - 1, *rng.integers(0, STAMP_MODULUS, 5).tolist()]:
            strip = draw_stamp(stamp, width).astype(int)
            strip = np.clip(strip + rng.integers(-40, 41, strip.shape), 0, 255)  # codec noise
            rgba = np.concatenate([strip, np.full((STAMP_ROWS, width, 1), 255)], axis=2)
            cases.append({"width": width, "stamp": stamp, "rgba": rgba.ravel().tolist()})
    cases.append({"width": 256, "stamp": None, "rgba": [0] * (STAMP_ROWS * 256 * 4)})
    app = Path(__file__).resolve().parents[1] / "client_web" / "app.js"
    script = (f"const {{ decodeStamp }} = require({json.dumps(str(app))});\n"
              "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
              f"console.log(JSON.stringify(cases.map(c => decodeStamp(c.rgba, c.width, {STAMP_ROWS}))));")
    out = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True,
                         timeout=30, check=True)
    assert json.loads(out.stdout) == [c["stamp"] for c in cases]
