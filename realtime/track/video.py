"""Track a whole video file offline: one parameter set per frame, nothing dropped (the twin of live tracking)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from realtime.rig.model import Rig
from realtime.track.params_file import TrackedSequence
from realtime.track.sources import VideoFileSource
from realtime.track.tracker import Tracker, TrackerSettings


def track_video(path: str | Path, rig: Rig, settings: TrackerSettings = TrackerSettings(), detector=None,
                camera=None, progress: bool = False, view: np.ndarray | None = None) -> TrackedSequence:
    """Track every frame of the video at `path` with a fresh Tracker for `rig`: one parameter set per input frame.
    view: the (3, 3) rotation of the camera the parameters will be seen through (see Tracker)."""
    frames, stamps, found = [], [], []
    with (VideoFileSource(path) as source,
          Tracker(rig, detector=detector, camera=camera, settings=settings, view=view) as tracker):
        iterator = source
        if progress:
            from tqdm import tqdm

            iterator = tqdm(source, total=source.frame_count or None, unit="frame", desc="track")
        for frame in iterator:
            result = tracker.track(frame)
            frames.append(result.params)
            stamps.append(frame.time)
            found.append(result.face_found)
        fps = source.fps
    return TrackedSequence(frames=frames, fps=fps, timestamps=np.asarray(stamps, np.float64),
                           face_found=np.asarray(found, bool))
