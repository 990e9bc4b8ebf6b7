"""Glass-to-glass from echoed capture times, and the latency window's percentiles."""
import numpy as np
import pytest

from realtime.stream.latency import LatencyWindow, glass_to_glass_ms


def test_glass_to_glass_subtracts_half_rtt_and_client_hold():
    assert glass_to_glass_ms(10_000 - 80, 10_000, rtt_ms=20.0, held_ms=5.0) == pytest.approx(65.0)
    # an echo sent before the frame's expected display time (negative hold) counts the wait for the screen
    assert glass_to_glass_ms(10_000 - 80, 10_000, rtt_ms=20.0, held_ms=-8.0) == pytest.approx(78.0)
    assert glass_to_glass_ms(10_000, 10_000, rtt_ms=20.0, held_ms=0.0) == 0.0  # never negative


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
