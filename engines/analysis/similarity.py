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
from engines.analysis.segments import overlaps

F64 = NDArray[np.float64]
BoolArr = NDArray[np.bool_]

GRID = 16  # onset positions per bar
PITCH_WEIGHT = 0.65  # what sounds matters more than the rhythm when telling material apart


@dataclass(frozen=True, slots=True)
class BarFeatures:
    # (n_bars, k) duration-weighted (quarters), one column per bin in use; bins: pitched 0-127,
    # drums 128-255 (pitch_bins).  Unused bins are left out: they add nothing to a cosine.
    pitch: F64
    pitch_bins: NDArray[np.int64]  # (k,) the 0-255 bin of each column
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
    on = notes.onset_ticks.astype(np.float64)
    ov = overlaps(on, on + notes.duration_ticks, starts, float(ends[-1]))
    pitch_bin = notes.pitch + (notes.is_drum.astype(np.int64) << 7)
    used = np.bincount(pitch_bin, minlength=256) > 0
    bins = np.flatnonzero(used)
    column = np.cumsum(used) - 1  # bin -> column in the compact histogram
    k = bins.shape[0]
    pitch_hist: F64 = np.bincount(
        ov.segment * k + column[pitch_bin[ov.note]], weights=ov.amount / p.tpq, minlength=n_bars * k
    ).astype(np.float64, copy=False).reshape(n_bars, k)
    bar = ov.first
    pos = (on - starts[bar]) * (GRID / (ends - starts))[bar]
    step = np.minimum((pos + 0.5).astype(np.int64), GRID - 1)  # nearest grid step
    onset_hist = np.bincount(bar * GRID + step, minlength=n_bars * GRID).reshape(n_bars, GRID)
    seconds = p.tempo.to_seconds(ends) - p.tempo.to_seconds(starts)
    return BarFeatures(
        pitch=pitch_hist,
        pitch_bins=bins,
        onsets=onset_hist.astype(np.float64),
        note_count=onset_hist.sum(axis=1).astype(np.float64),
        velocity_sum=np.bincount(bar, weights=notes.velocity, minlength=n_bars).astype(
            np.float64, copy=False
        ),
        seconds=np.maximum(seconds, 1e-6),
    )


def _unit_rows(m: F64, scale: float) -> F64:
    norm = np.sqrt(np.einsum("ij,ij->i", m, m))
    out: F64 = m * (scale / np.where(norm > 0, norm, 1.0))[:, None]
    return out


# Multiply-adds per matrix product: under OpenBLAS's threading threshold (4 * 65536), so no product
# wakes its thread pool.  Threads cost far more than they save at this size: on a busy 2-core
# machine a threaded 300 x 60 x 300 product took 10-40 ms (spin-up, then workers spinning and
# stealing the CPU from the code after it), the same product in row blocks ~0.3 ms.
_BLAS_BLOCK = 200_000


def gram(u: F64) -> F64:
    """``u @ u.T`` in row blocks small enough to stay single-threaded in BLAS."""
    n, k = u.shape
    ut = np.ascontiguousarray(u.T)  # also keeps numpy from choosing syrk, threaded at any size
    out: F64 = np.empty((n, n), dtype=np.float64)
    rows = max(1, _BLAS_BLOCK // max(n * k, 1))
    for i in range(0, n, rows):
        np.matmul(u[i : i + rows], ut, out=out[i : i + rows])
    return out


def self_similarity(f: BarFeatures) -> F64:
    """(n_bars, n_bars) similarity in [0, 1]."""
    # Both cosines in one product: rows scaled by sqrt(weight), side by side, give the weighted sum.
    u = np.hstack((_unit_rows(f.pitch, PITCH_WEIGHT**0.5),
                   _unit_rows(f.onsets, (1.0 - PITCH_WEIGHT) ** 0.5)))
    s = gram(u)
    empty = f.empty
    if empty.any():
        s[np.ix_(empty, empty)] = 1.0  # an empty bar is similar only to empty bars
    np.clip(s, 0.0, 1.0, out=s)
    return s
