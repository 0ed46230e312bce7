"""Drawing the next token of every row: temperature, nucleus, one inverse-CDF draw each.

Each row draws from its open ids only (``masks.open_ranges`` plus an optional extra note
mask), with its own ``torch.Generator``: exactly one uniform per token, so a row's random
stream depends on its own history alone. The rows of a step are drawn together: their open
logits go into one padded float64 block, and the exponentials, cumulative sums and
searches run once over the block instead of once per row (per-row numpy calls on a few
thousand ids cost more than their arithmetic). A row's numbers do not depend on the block
around it: padding and blocked ids are -inf, which adds an exact 0.0 to its cumulative sum,
so a row draws the same token alone or among others. A nucleus row keeps only its nucleus
(moved to the front of its block row), so a step at top_p < 1 sums a few dozen ids per
row, not thousands.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import numpy.typing as npt
import torch

from engines.amt.errors import SamplerError
from engines.amt.masks import NEG_INF, Logits, Mask, Ranges

Ids = npt.NDArray[np.int64]

NUCLEUS_CANDIDATES = 64  # first guess at the nucleus size (grown 8x while too small)


@dataclass(frozen=True)
class RowDraw:
    """What one row draws from.

    ranges: the open id ranges of its logits; note_mask: extra blocked ids (the note
    slot's constraints) or None; top_p, temperature: its sampling transform.
    """

    ranges: Ranges
    generator: torch.Generator
    note_mask: Mask | None = None
    top_p: float = 1.0
    temperature: float = 1.0


def draw_rows(logits: npt.NDArray[np.floating], rows: Sequence[RowDraw]) -> list[int]:
    """One token per row: row i draws from ``logits[i]`` restricted to ``rows[i].ranges``.

    Raises ``SamplerError`` when a row has no id left to draw or a bad transform.
    """
    if len(rows) != logits.shape[0]:
        raise SamplerError(f"{len(rows)} rows to draw for {logits.shape[0]} logit rows")
    sizes = [sum(high - low for low, high in row.ranges) for row in rows]
    block = np.empty((len(rows), max(sizes, default=0) or 1))  # tails: -inf below
    nuclei: dict[int, Ids] = {}  # a nucleus row's nucleus (positions in its open ids)
    for i, (row, size) in enumerate(zip(rows, sizes, strict=True)):
        nucleus = _fill(block[i, :size], logits[i], row)
        if nucleus is not None:
            sizes[i] = nucleus.size
            nuclei[i] = nucleus
    # a nucleus is a few dozen ids: the block narrows to the widest row still in use
    width = max(sizes, default=0) or 1
    block = block[:, :width]
    for i, size in enumerate(sizes):
        if size < width:
            block[i, size:] = NEG_INF
    top = block.max(axis=1, keepdims=True)
    if not np.isfinite(top).all():
        empty = int(np.flatnonzero(~np.isfinite(top[:, 0]))[0])
        raise SamplerError(f"every token is masked for row {empty}")
    cdf = np.exp(block - top).cumsum(axis=1)  # unnormalised: blocked ids add exact zeros
    last = np.asarray(sizes) - 1
    uniforms = np.array(
        [float(torch.rand((), generator=row.generator, dtype=torch.float64)) for row in rows]
    )
    targets = uniforms * cdf[np.arange(len(rows)), last]
    # per row: the first position whose cumulative mass exceeds the target (bisect right)
    positions = (cdf <= targets[:, None]).sum(axis=1)
    tokens: list[int] = []
    for i, (row, position) in enumerate(zip(rows, positions.tolist(), strict=True)):
        if position > last[i]:  # a uniform within rounding of 1: the last id that can occur
            position = int(np.flatnonzero(block[i, : sizes[i]] > NEG_INF)[-1])
        if i in nuclei:
            position = int(nuclei[i][position])
        tokens.append(_id_at(row.ranges, position))
    return tokens


def _fill(values: Logits, logits: npt.NDArray[np.floating], row: RowDraw) -> Ids | None:
    """Write the row's open logits, masked and tempered, into ``values`` (its block row).
    A nucleus row is compacted to its nucleus at the front; returns the nucleus's
    positions among the open ids (None when every open id stays)."""
    if row.temperature <= 0 or not 0.0 < row.top_p <= 1.0:
        raise SamplerError("temperature must be > 0 and top_p in (0, 1]")
    if len(row.ranges) == 1:
        low, high = row.ranges[0]
        values[:] = logits[low:high]
    elif values.size:
        values[:] = logits[range_ids(row.ranges)]
    if row.note_mask is not None:
        values[row.note_mask[_ids(row.ranges)]] = NEG_INF
    if row.temperature != 1.0:
        values /= row.temperature
    if row.top_p == 1.0:
        return None
    nucleus = _nucleus(values, row.top_p)
    values[: nucleus.size] = values[nucleus]
    return nucleus


def nucleus_indices(values: Logits, top_p: float) -> Ids:
    """Positions (ascending) of the nucleus of ``values`` (finite logits): the highest
    values in the order of a stable descending sort, up to and including the first whose
    cumulative probability exceeds ``top_p`` (the HF rule the reference uses).

    The nucleus is usually a few dozen of 1k-16k open ids, so candidates are picked by a
    partition (linear) instead of sorting them all: everything at least as large as the
    k-th largest value, ties included, which is exactly the full sort's first entries.
    """
    n = values.size
    shifted = np.exp(values - values.max())
    total = shifted.sum()
    k = NUCLEUS_CANDIDATES
    while True:
        if k >= n:
            candidates: Ids = np.arange(n)
        else:
            kth = np.partition(values, n - k)[n - k]
            candidates = np.flatnonzero(values >= kth)
        order = candidates[np.argsort(-values[candidates], kind="stable")]
        cumulative = np.cumsum(shifted[order] / total)
        # keep up to and including the first id whose cumulative mass exceeds top_p
        keep = int(cumulative.searchsorted(top_p, side="right")) + 1
        if keep <= order.size or k >= n:
            chosen: Ids = np.sort(order[:keep])
            return chosen
        k *= 8


def _nucleus(values: Logits, top_p: float) -> Ids:
    """Positions (ascending) of the nucleus among the finite ``values`` (none if none)."""
    if values.size and values.min() > NEG_INF:
        return nucleus_indices(values, top_p)
    finite = np.flatnonzero(values > NEG_INF)
    if finite.size == 0:
        return finite
    chosen: Ids = finite[nucleus_indices(values[finite], top_p)]
    return chosen


@lru_cache(maxsize=64)
def range_ids(ranges: Ranges) -> Ids:
    """The ids of ``ranges``, ascending (read-only; cached: instrument sets recur)."""
    if not ranges:
        return np.zeros(0, dtype=np.int64)
    ids: Ids = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in ranges])
    ids.flags.writeable = False
    return ids


def _ids(ranges: Ranges) -> Ids:
    if len(ranges) == 1:
        low, high = ranges[0]
        return np.arange(low, high, dtype=np.int64)
    return range_ids(ranges)


def _id_at(ranges: Ranges, position: int) -> int:
    """The id at ``position`` of the concatenated ranges."""
    for low, high in ranges:
        if position < high - low:
            return low + position
        position -= high - low
    raise IndexError(position)
