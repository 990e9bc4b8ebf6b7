"""How much each section of the suite measures: the `full`, `quick` and `smoke` profiles.

Read by run_all (what to run) and by report (the Reproduce table), so neither imports the other for them.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    """How much each section measures."""

    name: str
    render_counts: tuple[int, ...]
    render_sizes: tuple[int, ...]
    render_frames: int
    render_max_cost: float | None  # grid cells with more Gaussians x pixels than this are skipped (None: none)
    render_first_call: bool
    deform_sizes: tuple[int, ...]
    deform_frames: int
    deform_seconds: float
    encode_frames: int
    stream_sizes: tuple[int, ...]
    stream_viewers: tuple[int, ...]
    stream_seconds: float
    stream_browser: bool
    quality_sizes: tuple[int, ...]  # stream_quality: received-frame PSNR at each size, then fan-out to viewers
    quality_viewers: tuple[int, ...]
    quality_seconds: float
    quality_contents: tuple[str, ...]  # "avatar" (the demo avatar's tour), "photo" (a panning photo)
    live_seconds: float
    scripts: tuple[str, ...]  # benchmarks/<script> files run as their own processes (python -m benchmarks.<name>)


PROFILES = {
    "full": Profile("full", render_counts=(10_000, 30_000, 100_000, 300_000, 1_000_000),
                    render_sizes=(256, 512, 1024), render_frames=20, render_max_cost=None, render_first_call=True,
                    deform_sizes=(10_000, 100_000, 1_000_000), deform_frames=100, deform_seconds=15.0,
                    encode_frames=150, stream_sizes=(256, 512), stream_viewers=(1, 4), stream_seconds=10.0,
                    stream_browser=True, quality_sizes=(256, 512), quality_viewers=(1, 4, 8), quality_seconds=8.0,
                    quality_contents=("avatar", "photo"), live_seconds=20.0,
                    scripts=("bench_track.py", "bench_builder.py", "bench_fidelity.py")),
    "quick": Profile("quick", render_counts=(10_000, 100_000, 1_000_000), render_sizes=(256, 512, 1024),
                     render_frames=3, render_max_cost=3e11, render_first_call=False,
                     deform_sizes=(10_000, 100_000), deform_frames=10, deform_seconds=3.0,
                     encode_frames=40, stream_sizes=(256,), stream_viewers=(1,), stream_seconds=4.0,
                     stream_browser=False, quality_sizes=(256, 512), quality_viewers=(1,), quality_seconds=3.0,
                     quality_contents=("photo",), live_seconds=8.0, scripts=()),
    "smoke": Profile("smoke", render_counts=(2_000,), render_sizes=(128,), render_frames=2,
                     render_max_cost=None, render_first_call=False,
                     deform_sizes=(2_000,), deform_frames=3, deform_seconds=1.0,
                     encode_frames=8, stream_sizes=(128,), stream_viewers=(1,), stream_seconds=1.0,
                     stream_browser=False, quality_sizes=(128,), quality_viewers=(1,), quality_seconds=1.0,
                     quality_contents=("photo",), live_seconds=3.0, scripts=()),
}
