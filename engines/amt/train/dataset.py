"""Batches of packed 1024-token sequences from the committed uint16 arrays.

Batch order is a pure function of (seed, step): each epoch is a permutation drawn from
``seed + epoch``, so a resumed run sees exactly the batches an uninterrupted run would,
with no loader state in the checkpoint.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import torch

from engines.amt import vocab as V


class Batches:
    def __init__(self, sequences: npt.NDArray[np.uint16], batch_size: int, seed: int) -> None:
        if len(sequences) < batch_size:
            raise ValueError(f"{len(sequences)} sequences cannot fill a batch of {batch_size}")
        self.sequences = sequences
        self.batch_size = batch_size
        self.seed = seed
        self.per_epoch = len(sequences) // batch_size  # the last partial batch is dropped
        self._epoch = -1
        self._order: npt.NDArray[np.int64] = np.arange(0)

    def epoch_of(self, step: int) -> float:
        return step / self.per_epoch

    def batch(self, step: int) -> torch.Tensor:
        """The (batch_size, 1024) int64 batch of global step ``step`` (0-based)."""
        epoch, index = divmod(step, self.per_epoch)
        if epoch != self._epoch:
            self._order = np.random.default_rng(self.seed + epoch).permutation(len(self.sequences))
            self._epoch = epoch
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        return torch.from_numpy(self.sequences[rows].astype(np.int64))


def eval_batches(
    sequences: npt.NDArray[np.uint16], batch_size: int, limit: int = 0
) -> list[torch.Tensor]:
    """Validation batches in a fixed order (the first ``limit`` sequences, 0 = all)."""
    chosen = sequences if limit <= 0 else sequences[:limit]
    return [
        torch.from_numpy(chosen[i : i + batch_size].astype(np.int64))
        for i in range(0, len(chosen), batch_size)
    ]


def instruments_in(sequences: npt.NDArray[np.uint16]) -> list[int]:
    """Instruments whose notes (as events or controls) occur anywhere in ``sequences``."""
    ids = np.unique(sequences)
    notes = ids[(ids >= V.NOTE_OFFSET) & (ids < V.REST)] - V.NOTE_OFFSET
    controls = ids[(ids >= V.ANOTE_OFFSET) & (ids < V.SPECIAL_OFFSET)] - V.ANOTE_OFFSET
    return sorted({int(n) // V.MAX_PITCH for n in np.concatenate([notes, controls])})
