"""Musical statistics of a set of pieces (generated or from the corpus), for ``tutti eval``.

- in-key share: notes whose pitch class belongs to the piece's estimated key (Albrecht-
  Shanahan profile on the duration-weighted pitch-class histogram, as the analysis engine
  does); the scale is the major scale, or natural minor plus the raised 6th and 7th that
  minor-key music uses as a matter of course.
- pitch-class histogram: note counts per pitch class over all pieces, normalised; two sets
  are compared by total-variation distance (0 = identical, 1 = disjoint).
- notes per second (over the span from 0 to the last note-off), mean polyphony while
  anything sounds.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from engines.amt import vocab as V
from engines.amt.evaluate.events import Notes
from engines.analysis.features import polyphony
from engines.analysis.keys import estimate_key, pitch_class_histogram

F64 = npt.NDArray[np.float64]

MAJOR_SCALE = frozenset({0, 2, 4, 5, 7, 9, 11})
MINOR_SCALE = frozenset({0, 2, 3, 5, 7, 8, 9, 10, 11})  # natural + raised 6th and 7th


def in_key_share(notes: Notes) -> float:
    if len(notes) == 0:
        return float("nan")
    key = estimate_key(pitch_class_histogram(notes.pitch, notes.duration.astype(np.float64)))
    if key is None:
        return float("nan")
    scale = MAJOR_SCALE if key.mode == "major" else MINOR_SCALE
    relative = (notes.pitch - key.tonic) % 12
    return float(np.isin(relative, sorted(scale)).mean())


def pitch_class_distribution(pieces: Sequence[Notes]) -> F64:
    counts = np.zeros(12)
    for notes in pieces:
        counts += np.bincount(notes.pitch % 12, minlength=12)[:12]
    total = counts.sum()
    out: F64 = counts / total if total > 0 else counts
    return out


def total_variation(p: F64, q: F64) -> float:
    return float(0.5 * np.abs(p - q).sum())


def notes_per_second(notes: Notes) -> float:
    if len(notes) == 0:
        return 0.0
    span = float((notes.onset + notes.duration).max()) / V.TIME_RESOLUTION
    return len(notes) / span if span > 0 else float("nan")


def mean_polyphony(notes: Notes) -> float:
    return polyphony(notes.onset, notes.duration)[0]


@dataclass(frozen=True)
class Summary:
    """Means over pieces (NaNs ignored) and the pooled pitch-class distribution."""

    pieces: int
    in_key: float
    notes_per_second: float
    polyphony: float
    pitch_classes: F64


def summarise(pieces: Sequence[Notes]) -> Summary:
    def mean(values: list[float]) -> float:
        finite = [v for v in values if np.isfinite(v)]
        return float(np.mean(finite)) if finite else float("nan")

    return Summary(
        pieces=len(pieces),
        in_key=mean([in_key_share(p) for p in pieces]),
        notes_per_second=mean([notes_per_second(p) for p in pieces]),
        polyphony=mean([mean_polyphony(p) for p in pieces]),
        pitch_classes=pitch_class_distribution(pieces),
    )
