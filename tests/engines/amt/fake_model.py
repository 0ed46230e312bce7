"""The fixtures' deterministic fake model (tests/fixtures/amt/README.md, "The fake model").

It reads the whole input window, so it is driven through ``FullRecomputeStep``; every call
is recorded (input length and sha256 prefix) to compare with the reference's calls.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from engines.amt import vocab as V

_IDS = np.arange(V.VOCAB_SIZE, dtype=np.float64)
_NOTE_INSTRUMENTS = (0, 40, 128)


def fake_target(x: list[int]) -> int:
    """The id the fake model favours after window ``x``."""
    n = len(x)
    slot = (n - 1) % 3
    h = sum((j + 1) * tok for j, tok in enumerate(x)) % 1_000_003
    if slot == 0:
        last = x[n - 3] if n >= 4 else 0
        if V.CONTROL_OFFSET <= last < V.SPECIAL_OFFSET:
            last -= V.CONTROL_OFFSET
        return min(last + h % 40, 9999)
    if slot == 1:
        return V.DUR_OFFSET + 5 + h % 60
    return V.NOTE_OFFSET + V.MAX_PITCH * _NOTE_INSTRUMENTS[h % 3] + 40 + h % 50


def fake_logits(x: list[int]) -> np.ndarray:
    """float32 logits over the vocabulary: -1000 * (2|v - target| + [v < target])."""
    target = fake_target(x)
    distance = 2.0 * np.abs(_IDS - target) + (target > _IDS)
    return (-1000.0 * distance).astype(np.float32)


class FakeModel:
    """Callable like a causal LM: ids [1, L] -> logits [1, 1, VOCAB] (last position only)."""

    def __init__(self) -> None:
        self.lengths: list[int] = []
        self.sha16: list[str] = []

    def __call__(self, input_ids: torch.Tensor) -> torch.Tensor:
        x = [int(t) for t in input_ids[0].tolist()]
        self.lengths.append(len(x))
        self.sha16.append(hashlib.sha256(",".join(map(str, x)).encode()).hexdigest()[:16])
        return torch.from_numpy(fake_logits(x)).reshape(1, 1, V.VOCAB_SIZE)
