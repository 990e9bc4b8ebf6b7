"""What a viewer may ask of a frame producer: typed control messages.

A leaf that both sides of the server <-> producer edge import: the stream
server's signaling (``realtime.stream.signaling``) parses the wire form into one
of these once, at the edge, and producers (``realtime.pipeline.LivePipeline``,
the test pattern) dispatch on the type. A producer raises ValueError, with a
message the viewer is shown, for a control it cannot carry out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Recalibrate:
    """Take the face as it is now as the neutral face."""


@dataclass(frozen=True)
class SetBackground:
    """Paint the background in `rgb`: (r, g, b), integers in [0, 255]."""

    rgb: tuple[int, int, int]

    def __post_init__(self) -> None:
        rgb = self.rgb
        if (not isinstance(rgb, tuple) or len(rgb) != 3
                or not all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c <= 255 for c in rgb)):
            raise ValueError(f"a background colour must be three integers (r, g, b) in [0, 255], got {rgb!r}")


@dataclass(frozen=True)
class SwitchAvatar:
    """Draw the avatar called `name` (one of those the producer offers) from now on."""

    name: str


Control = Recalibrate | SetBackground | SwitchAvatar


def not_a_control(message: object) -> ValueError:
    """The error a producer raises for a message that is none of the controls."""
    return ValueError(f"expected a control (Recalibrate, SetBackground or SwitchAvatar), got {message!r}")
