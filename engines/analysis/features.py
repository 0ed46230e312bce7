"""Whole-piece statistics on note arrays: polyphony and the energy curve."""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from engines.analysis.similarity import BarFeatures

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]

DENSITY_KNEE = 8.0  # notes/s at which the density half of energy reaches 0.5


def polyphony(onset_ticks: I64, duration_ticks: I64) -> tuple[float, int]:
    """(time-weighted mean while anything sounds, max) of simultaneously sounding notes.

    Any note order.  The count of sounding notes at a time depends only on the sorted onsets and
    the sorted offsets, not on which offset belongs to which onset, so both are sorted on their own
    (no argsort, no gathers): pairing the i-th onset with the i-th offset gives intervals with the
    same count everywhere, hence the same union.  Their offsets are sorted, so the union is the sum
    of each interval's part past the previous offset.  Mean = total note time / union length;
    max = notes started minus notes ended, at each onset.  A note ending where the next begins
    (legato) does not count as an overlap.
    """
    if onset_ticks.shape[0] == 0:
        return 0.0, 0
    off = onset_ticks + np.maximum(duration_ticks, 1)
    total = float((off - onset_ticks).sum())
    # Tracks arrive time-sorted, so the stable sort (timsort for int64) only merges runs.
    on = np.sort(onset_ticks, kind="stable")
    off = np.sort(off, kind="stable")
    before = np.concatenate((on[:1], off[:-1]))
    union = float(np.maximum(off - np.maximum(on, before), 0).sum())
    # The count peaks at an onset, after all notes starting there: only the last note of each run
    # of equal onsets needs a look (notes started = its index + 1; no search over all onsets).
    last = np.flatnonzero(np.append(on[1:] != on[:-1], True))
    ended = np.searchsorted(off, on[last], side="right")
    return total / union, int((last + 1 - ended).max())


def energy_curve(f: BarFeatures) -> F64:
    """Per-bar energy in [0, 1]: mean of loudness (mean velocity) and saturating note density."""
    count = f.note_count
    loud = np.where(count > 0, f.velocity_sum / np.maximum(count, 1) / 127.0, 0.0)
    rate = count / f.seconds
    dense = rate / (rate + DENSITY_KNEE)
    raw = 0.5 * (loud + dense)
    if raw.shape[0] >= 3:  # 3-bar smoothing: one loud fill is not the peak of the piece
        padded = np.pad(raw, 1, mode="edge")
        raw = (padded[:-2] + padded[1:-1] + padded[2:]) / 3.0
    out: F64 = np.clip(raw, 0.0, 1.0)
    return out


def start_peak_end(curve: F64) -> tuple[float, float, float, int]:
    """Mean of the first and last tenth (at least one bar), the max, and the bar of the max."""
    n = curve.shape[0]
    if n == 0:
        return 0.0, 0.0, 0.0, 0
    k = max(1, n // 10)
    peak_bar = int(np.argmax(curve))
    return float(curve[:k].mean()), float(curve[peak_bar]), float(curve[-k:].mean()), peak_bar
