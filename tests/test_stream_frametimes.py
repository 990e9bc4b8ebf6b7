"""Matching shown frames (by RTP timestamp) with the server's frame messages (by pts): the Python matcher and
its browser twin, client_web/frametimes.js, on the same sequences."""
import json
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from realtime.stream.frametimes import MAX_FRAMES, MAX_PENDING, MIN_MATCHES, RTP_MASK, FrameTimes

FRAMETIMES_JS = Path(__file__).resolve().parents[1] / "client_web" / "frametimes.js"


def stream(n: int, seed: int, start: int = 0) -> tuple[list[int], list[float]]:
    """pts and capture times of `n` frames at about 25 fps with the jitter of a real clock (90 kHz ticks)."""
    rng = np.random.default_rng(seed)
    gaps = 3600 + rng.integers(-200, 200, n)
    pts = [(start + int(p)) & RTP_MASK for p in np.cumsum(gaps)]
    capture = [1000.0 + i * 40.0 + float(rng.uniform(0, 5)) for i in range(n)]
    return pts, capture


def events(pts, capture, offset, drop_messages=(), late_every=3, first=0):
    """A session as a viewer sees it: each frame's message, and the frame shown with RTP timestamp
    (pts + offset) mod 2**32 (its token: its index, counted from `first`); every `late_every`-th message
    arrives after its frame."""
    out = []
    for i, (p, c) in enumerate(zip(pts, capture), first):
        shown = ("shown", (p + offset) & RTP_MASK, i)
        message = [] if i in drop_messages else [("announce", p, c)]
        out += [shown, *message] if i % late_every == 0 else [*message, shown]
    return out


def replay(evts) -> tuple[dict, FrameTimes]:
    """Run `evts` through a FrameTimes; token -> capture time of every resolved frame."""
    times, resolved = FrameTimes(), {}
    for kind, a, b in evts:
        done = times.announce(a, b) if kind == "announce" else times.shown(a, b)
        for token, capture in done:
            assert token not in resolved, f"frame {token} resolved twice"
            resolved[token] = capture
    return resolved, times


@pytest.mark.parametrize("offset", [0, 123_456_789, RTP_MASK - 5_000])
def test_every_frame_gets_its_own_capture_time(offset):
    pts, capture = stream(60, seed=offset % 97)
    resolved, times = replay(events(pts, capture, offset))
    assert times.offset == offset
    assert resolved == dict(enumerate(capture))  # messages before or after their frames, all matched exactly
    assert times.matched == 60 and times.unmatched == 0


def test_the_rtp_clock_may_wrap():
    pts, capture = stream(40, seed=3, start=RTP_MASK - 20 * 3600)  # pts wrap mid-stream
    resolved, times = replay(events(pts, capture, offset=77))
    assert resolved == dict(enumerate(capture))


def test_frames_whose_message_was_skipped_are_given_up_not_guessed():
    pts, capture = stream(80, seed=4)
    dropped = set(range(10, 80, 7))
    resolved, times = replay(events(pts, capture, offset=999, drop_messages=dropped))
    assert resolved == {i: c for i, c in enumerate(capture) if i not in dropped}
    assert times.unmatched <= len(dropped)  # those still waiting at the end are neither matched nor given up


def test_evenly_spaced_frames_are_ambiguous_and_not_matched():
    """If every gap were the same, any shift would explain the frames equally well: no offset is taken."""
    pts = [i * 3000 for i in range(30)]
    resolved, times = replay(events(pts, [float(i) for i in range(30)], offset=5))
    assert times.offset is None and resolved == {}


def test_memory_is_bounded_and_a_changed_offset_is_found_again():
    pts, capture = stream(400, seed=5)
    first = events(pts[:200], capture[:200], offset=10)
    second = events(pts[200:], capture[200:], offset=50_000, first=200)  # another clock origin from frame 200
    resolved, times = replay(first + second)
    assert len(times._capture) <= MAX_FRAMES and len(times._pending) <= MAX_PENDING
    assert times.offset == 50_000
    assert sum(i >= 200 for i in resolved) >= 200 - MAX_PENDING - MIN_MATCHES


@pytest.mark.skipif(shutil.which("node") is None, reason="needs node to run the web client's matcher")
def test_the_browser_twin_resolves_the_same_frames():
    rng = np.random.default_rng(6)
    cases = []
    for k in range(4):
        pts, capture = stream(150, seed=10 + k, start=int(rng.integers(0, 2**32)))
        dropped = set(rng.choice(150, 12, replace=False).tolist())
        offset = int(rng.integers(0, 2**32))
        cases.append(events(pts, capture, offset, drop_messages=dropped, late_every=2 + k))
    cases.append(events([i * 3000 for i in range(30)], [float(i) for i in range(30)], offset=5))
    script = (f"const {{ FrameTimes }} = require({json.dumps(str(FRAMETIMES_JS))});\n"
              "const cases = JSON.parse(require('fs').readFileSync(0, 'utf8'));\n"
              "console.log(JSON.stringify(cases.map((evts) => {\n"
              "  const t = new FrameTimes(), steps = [];\n"
              "  for (const [kind, a, b] of evts) steps.push(kind === 'announce' ? t.announce(a, b) : t.shown(a, b));\n"
              "  return { steps, offset: t.offset, matched: t.matched, unmatched: t.unmatched };\n"
              "})));")
    out = subprocess.run(["node", "-e", script], input=json.dumps(cases), capture_output=True, text=True,
                         timeout=60, check=True)
    for evts, js in zip(cases, json.loads(out.stdout)):
        times = FrameTimes()
        steps = [[list(r) for r in (times.announce(a, b) if kind == "announce" else times.shown(a, b))]
                 for kind, a, b in evts]
        assert js["steps"] == steps
        assert (js["offset"], js["matched"], js["unmatched"]) == (times.offset, times.matched, times.unmatched)
