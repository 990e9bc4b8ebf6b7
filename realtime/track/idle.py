"""What a face does while nobody drives it: it blinks at a resting rate.

When the tracker loses the face (or the sender pauses), the avatar eases to its neutral face. A face that
then never blinks looks frozen, so the idle face blinks as a resting person does: one blink of BLINK_S
seconds in every slot of BLINK_EVERY_S seconds, placed within the slot by a hash of the slot's number, so
blinks come at uneven intervals but the same time always gives the same picture (offline renders repeat).
"""

from __future__ import annotations

import numpy as np

BLINK_EVERY_S = 4.0  # resting adults blink about 15 times a minute
BLINK_S = 0.3        # one blink, closing and opening
BLINK_NAMES = ("eyeBlinkLeft", "eyeBlinkRight")  # the expression shapes an idle blink drives (ARKit names)


def slot_offset(slot: int) -> float:
    """A number in [0, 1) that looks random from slot to slot (Knuth's multiplicative hash)."""
    return ((slot * 2654435761) % 2**32) / 2**32


def idle_blink(t: float) -> float:
    """How closed the eyes are (0 open, 1 closed) `t` seconds into idling: a raised-cosine blink of BLINK_S
    somewhere in each slot of BLINK_EVERY_S seconds (none before t = 0)."""
    if t < 0:
        return 0.0
    slot = int(t // BLINK_EVERY_S)
    start = slot * BLINK_EVERY_S + slot_offset(slot) * (BLINK_EVERY_S - BLINK_S)
    x = (t - start) / BLINK_S
    return float(0.5 - 0.5 * np.cos(2 * np.pi * x)) if 0.0 <= x <= 1.0 else 0.0


def blink_indices(expr_names: tuple[str, ...]) -> np.ndarray:
    """(K,) indices of the blink shapes among a rig's expression names (empty for rigs without them)."""
    return np.array([expr_names.index(n) for n in BLINK_NAMES if n in expr_names], dtype=np.int64)
