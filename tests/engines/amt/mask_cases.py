"""Random masking situations shared by the mask and draw tests: logits (some -inf, as a
model may block ids itself), a slot, a current time, seen instruments and constraints,
with the reference-masked vector and the open ranges the sampler would use."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engines.amt import vocab as V
from engines.amt.masks import Constraints, Mask, Ranges, mask_logits, note_instruments, open_ranges

CONSTRAINTS: list[Constraints | None] = [
    None,
    Constraints(),
    Constraints(block_rest=True, max_time_step=20),
    Constraints(max_time_step=0),
    Constraints(instruments=[0, 33], drums=False, pitch_range=(48, 72), scale=[0, 2, 4, 7]),
    Constraints(instruments=[5], block_rest=True),
    Constraints(drums=False),
]


@dataclass(frozen=True)
class MaskCase:
    logits: np.ndarray  # float32 [VOCAB]
    slot: int
    masked: np.ndarray  # float64 [VOCAB]: mask_logits of the case
    ranges: Ranges  # open_ranges of the case
    note_mask: Mask | None  # the constraints' extra note mask (note slot only)


def mask_case(
    seed: int,
    *,
    times: Sequence[int] = (-5, 0, 37, 5000, 9990, 10000, 12000),
    counts: Sequence[int] = (0, 5, 14, 15, 20),
) -> MaskCase:
    """Case ``seed``: current time from ``times``, that many seen instruments from ``counts``."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=V.VOCAB_SIZE).astype(np.float32)
    logits[rng.integers(0, V.VOCAB_SIZE, 2000)] = -np.inf  # a model may block ids itself
    slot = seed % 3
    current_time = int(rng.choice(list(times)))
    count = int(rng.choice(list(counts)))
    instruments = {int(i) for i in rng.choice(130, size=count, replace=False)}
    constraints = CONSTRAINTS[seed % len(CONSTRAINTS)]
    extra = constraints.note_mask() if constraints is not None else None
    masked = mask_logits(
        logits,
        slot,
        current_time=current_time,
        instruments=instruments,
        extra_note_mask=extra,
        constraints=constraints,
    )
    ranges = open_ranges(
        slot,
        current_time=current_time,
        instruments=instruments,
        constraints=constraints,
        allowed_instruments=note_instruments(extra),
    )
    return MaskCase(logits, slot, masked, ranges, extra if slot == 2 else None)
