"""Temporal smoothing of tracked parameters: the One-Euro filter (Casiez, Roussel, Vogel, CHI 2012).

A low-pass filter whose cutoff rises with the signal's speed: still inputs are
smoothed hard (no jitter), fast motion passes with little lag.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from realtime.rig.model import RigParams

MIN_DT = 1e-4  # seconds; repeated or reversed timestamps count as this


def smoothing_factor(dt: float, cutoff: np.ndarray) -> np.ndarray:
    """Exponential smoothing factor of a first-order low-pass at `cutoff` Hz for a step of `dt` seconds."""
    tau = 1.0 / (2.0 * np.pi * cutoff)
    return 1.0 / (1.0 + tau / dt)


class OneEuroFilter:
    """One-Euro filter over a vector of N values.

    min_cutoff: (N,) or scalar, Hz, the cutoff at rest (lower: smoother, more lag when slow)
    beta:       (N,) or scalar, how fast the cutoff rises with speed (Hz per unit/s; higher: less lag when fast)
    d_cutoff:   Hz, the cutoff of the speed estimate
    """

    def __init__(self, min_cutoff: np.ndarray | float, beta: np.ndarray | float, d_cutoff: float = 1.0):
        self.min_cutoff = np.asarray(min_cutoff, dtype=np.float64)
        self.beta = np.asarray(beta, dtype=np.float64)
        self.d_cutoff = float(d_cutoff)
        if np.any(self.min_cutoff <= 0) or self.d_cutoff <= 0 or np.any(self.beta < 0):
            raise ValueError("One-Euro cutoffs must be positive and beta non-negative")
        self.reset()

    def reset(self) -> None:
        """Forget the past: the next value passes through unchanged."""
        self._value: np.ndarray | None = None
        self._speed: np.ndarray | None = None
        self._time = 0.0

    def __call__(self, value: np.ndarray, time: float) -> np.ndarray:
        """Filter `value` (N,) observed at `time` seconds; returns the (N,) float64 filtered value."""
        x = np.asarray(value, dtype=np.float64)
        if self._value is None:
            self._value, self._speed, self._time = x.copy(), np.zeros_like(x), float(time)
            return x.copy()
        if x.shape != self._value.shape:
            raise ValueError(f"filter holds {self._value.shape} values, got {x.shape}")
        dt = max(float(time) - self._time, MIN_DT)
        speed = (x - self._value) / dt
        self._speed = self._speed + smoothing_factor(dt, self.d_cutoff) * (speed - self._speed)
        cutoff = self.min_cutoff + self.beta * np.abs(self._speed)
        self._value = self._value + smoothing_factor(dt, cutoff) * (x - self._value)
        self._time = float(time)
        return self._value.copy()


@dataclass(frozen=True)
class FilterSettings:
    """One-Euro (min_cutoff Hz, beta) per parameter group of RigParams. Units differ (radians, metres, unitless),
    so each group has its own beta. The defaults were tuned on real clips (a still photo's jitter against the lag
    on talking-head videos): head turns and moves need high betas not to lag."""

    rotation: tuple[float, float] = (1.0, 100.0)
    translation: tuple[float, float] = (4.0, 80.0)
    jaw_pose: tuple[float, float] = (2.0, 4.0)
    eyes_pose: tuple[float, float] = (1.5, 2.0)
    expr: tuple[float, float] = (2.0, 4.0)


FILTERED = ("rotation", "translation", "jaw_pose", "eyes_pose", "expr")


class RigParamsFilter:
    """A One-Euro filter over every moving part of RigParams (identity and neck pass through)."""

    def __init__(self, n_expr: int, settings: FilterSettings = FilterSettings()):
        sizes = {"rotation": 3, "translation": 3, "jaw_pose": 3, "eyes_pose": 6, "expr": n_expr}
        self._slices = {}
        start = 0
        for name in FILTERED:
            self._slices[name] = slice(start, start + sizes[name])
            start += sizes[name]
        min_cutoff = np.concatenate([np.full(sizes[n], getattr(settings, n)[0]) for n in FILTERED])
        beta = np.concatenate([np.full(sizes[n], getattr(settings, n)[1]) for n in FILTERED])
        self._filter = OneEuroFilter(min_cutoff, beta)

    def reset(self) -> None:
        self._filter.reset()

    def __call__(self, params: RigParams, time: float) -> RigParams:
        """The filtered copy of `params` observed at `time` seconds."""
        vector = np.concatenate([np.asarray(getattr(params, n), np.float64) for n in FILTERED])
        out = self._filter(vector, time)
        return replace(params, **{n: out[s] for n, s in self._slices.items()})
