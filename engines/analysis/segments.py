"""Time-segment features: how much of each note falls into each bar or beat.

A note that spans several segments contributes its overlap to each of them (sustained chords count
in every bar they sound in).  The (note, segment) pairs are built with ``np.repeat``, so the cost
is linear in notes plus crossings, with no Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Overlaps:
    note: I64  # index of the note
    segment: I64  # index of the segment
    amount: F64  # overlap length, in the units of the inputs
    first: I64  # per note (not per pair): the segment its onset falls in


def locate(points: F64, seg_starts: F64, side: Literal["left", "right"] = "right") -> I64:
    """Segment index of each point (clipped to the valid range).

    side="right": a point on a boundary belongs to the segment it starts; "left": to the one it ends.
    """
    n_seg = seg_starts.shape[0]
    steps = np.diff(seg_starts)
    if n_seg > 1 and float(np.ptp(steps)) < 1e-9 * float(steps[0]):
        # evenly spaced (one meter): a division is several times cheaper than a binary search
        x = (points - seg_starts[0]) / steps[0]
        idx = (np.floor(x) if side == "right" else np.ceil(x) - 1).astype(np.int64)
    else:
        idx = np.searchsorted(seg_starts, points, side=side) - 1
    out: I64 = np.clip(idx, 0, n_seg - 1)
    return out


def overlaps(onsets: F64, offsets: F64, seg_starts: F64, seg_end: float) -> Overlaps:
    """Every (note, segment) pair with positive overlap; segments are [starts[i], starts[i+1])."""
    bounds = np.append(seg_starts, max(seg_end, float(seg_starts[-1]) + 1e-9))
    first = locate(onsets, seg_starts)
    # A note ending exactly on a boundary does not reach into the next segment.
    last = np.maximum(locate(offsets, seg_starts, side="left"), first)
    crossing = last > first
    if not crossing.any():
        return Overlaps(np.arange(onsets.shape[0], dtype=np.int64), first, offsets - onsets, first)
    inside = np.flatnonzero(~crossing)
    multi = np.flatnonzero(crossing)
    span = last[multi] - first[multi] + 1
    note = np.repeat(multi, span)
    # offset of each pair within its note's run: 0, 1, ... span-1
    run_start = np.repeat(np.cumsum(span) - span, span)
    segment = np.repeat(first[multi], span) + (np.arange(note.shape[0], dtype=np.int64) - run_start)
    lo = np.maximum(onsets[note], bounds[segment])
    hi = np.minimum(offsets[note], bounds[segment + 1])
    return Overlaps(
        note=np.concatenate((inside, note)),
        segment=np.concatenate((first[inside], segment)),
        amount=np.concatenate((offsets[inside] - onsets[inside], np.maximum(hi - lo, 0.0))),
        first=first,
    )


def chroma(ov: Overlaps, pitch: I64, n_segments: int) -> F64:
    """(n_segments, 12) duration-weighted pitch-class content."""
    flat = np.bincount(ov.segment * 12 + pitch[ov.note] % 12, weights=ov.amount,
                       minlength=n_segments * 12)
    out: F64 = flat[: n_segments * 12].reshape(n_segments, 12).astype(np.float64, copy=False)
    return out


def bass_pitch_class(ov: Overlaps, pitch: I64, n_segments: int) -> I64:
    """Lowest sounding pitch class per segment (-1 where silent)."""
    low = np.full(n_segments, 128, dtype=np.int64)
    np.minimum.at(low, ov.segment, pitch[ov.note])
    out: I64 = np.where(low < 128, low % 12, -1)
    return out
