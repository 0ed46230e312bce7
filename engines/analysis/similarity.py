"""Per-bar features and the bar-by-bar self-similarity matrix behind structure detection.

Each bar is described by what sounds (a duration-weighted pitch histogram; drums get their own
bins so a kick never matches a bass note) and when things start (onset positions on a 16-step grid
of the bar).  Cosine similarities of both are blended; an empty bar is similar only to empty bars.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engines.analysis.notes import ParsedMidi
from engines.analysis.segments import locate, overlaps

F64 = NDArray[np.float64]
BoolArr = NDArray[np.bool_]

GRID = 16  # onset positions per bar
PITCH_WEIGHT = 0.65  # what sounds matters more than the rhythm when telling material apart


@dataclass(frozen=True, slots=True)
class BarFeatures:
    pitch: F64  # (n_bars, 256): pitched 0-127, drums 128-255, duration-weighted (quarters)
    onsets: F64  # (n_bars, GRID) onset counts per grid step
    note_count: F64  # (n_bars,)
    velocity_sum: F64  # (n_bars,)
    seconds: F64  # (n_bars,) length of each bar in seconds

    @property
    def empty(self) -> BoolArr:
        out: BoolArr = self.note_count == 0
        return out


def bar_features(p: ParsedMidi) -> BarFeatures:
    n_bars = p.n_bars
    notes = p.notes
    starts = p.bar_starts_ticks
    ends = np.append(starts[1:], max(float(p.end_tick), float(starts[-1]) + 1.0))
    on = notes.onset_ticks.astype(np.float64, copy=False)
    ov = overlaps(on, on + notes.duration_ticks, starts, float(ends[-1]))
    pitch_bin = notes.pitch + np.where(notes.is_drum, 128, 0)
    pitch_hist = np.bincount(
        ov.segment * 256 + pitch_bin[ov.note], weights=ov.amount / p.tpq, minlength=n_bars * 256
    ).reshape(n_bars, 256).astype(np.float64, copy=False)
    bar = locate(on, starts)
    frac = (on - starts[bar]) / (ends[bar] - starts[bar])
    step = np.clip((frac * GRID + 0.5).astype(np.int64), 0, GRID - 1)  # nearest grid step
    onset_hist = np.bincount(bar * GRID + step, minlength=n_bars * GRID).astype(np.float64, copy=False)
    seconds = p.tempo.to_seconds(ends) - p.tempo.to_seconds(starts)
    return BarFeatures(
        pitch=pitch_hist,
        onsets=onset_hist.reshape(n_bars, GRID),
        note_count=np.bincount(bar, minlength=n_bars).astype(np.float64),
        velocity_sum=np.bincount(bar, weights=notes.velocity, minlength=n_bars).astype(np.float64),
        seconds=np.maximum(seconds, 1e-6),
    )


def _cosine(m: F64) -> F64:
    m = m[:, m.any(axis=0)]  # only the bins in use: a much smaller matrix product
    norm = np.sqrt((m * m).sum(axis=1, keepdims=True))
    unit = m / np.where(norm > 0, norm, 1.0)
    out: F64 = unit @ unit.T
    return out


def self_similarity(f: BarFeatures) -> F64:
    """(n_bars, n_bars) similarity in [0, 1]."""
    s = PITCH_WEIGHT * _cosine(f.pitch) + (1.0 - PITCH_WEIGHT) * _cosine(f.onsets)
    empty = f.empty
    both_empty = empty[:, None] & empty[None, :]
    s = np.where(both_empty, 1.0, s)
    out: F64 = np.clip(s, 0.0, 1.0)
    return out
