"""Rhythm analysis: meter, tempo, syncopation and swing, on the quarter-note beat grid."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from engines.analysis.metadata import tempo_changes
from engines.analysis.models import TempoChange
from engines.analysis.notes import ParsedMidi

F64 = NDArray[np.float64]

GRID = 48  # onset quantisation: 1/48 of a beat catches triplets and 32nds alike
ON_BEAT = 2  # grid steps (1/24 beat) of slack around the beat for human timing
MIN_SWING_BEATS = 4  # beats of two-eighths evidence needed before judging swing

SwingLabel = Literal["straight", "light swing", "swing", "hard swing", "undetermined"]
SyncopationLabel = Literal["none", "low", "medium", "high"]


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Meter(_Model):
    time_signature: str
    kind: str  # e.g. "simple quadruple"
    changes: list[str]


class TempoSummary(_Model):
    initial_bpm: float
    mean_bpm: float  # time-weighted over the piece
    min_bpm: float
    max_bpm: float
    changes: list[TempoChange]


class RhythmAnalysis(_Model):
    meter: Meter
    tempo: TempoSummary
    syncopation: float  # share of notes that start off the beat and are held across it
    syncopation_level: SyncopationLabel
    swing_ratio: float | None  # long:short of paired eighths; 1.0 straight, 2.0 triplet swing
    swing: SwingLabel
    swing_evidence_beats: int


def meter_kind(numerator: int, denominator: int) -> str:
    compound = numerator % 3 == 0 and numerator > 3
    beats = numerator // 3 if compound else numerator
    names = {2: "duple", 3: "triple", 4: "quadruple"}
    return f"{'compound' if compound else 'simple'} {names.get(beats, f'{beats}-beat')}"


def _tempo_summary(p: ParsedMidi) -> TempoSummary:
    t = p.tempo
    bpm = t.bpm
    inside = t.ticks < max(p.end_tick, 1)
    bounds = np.append(t.seconds[inside], max(p.end_s, float(t.seconds[inside][-1])))
    spans = np.diff(bounds)
    used = bpm[inside]
    mean = float((used * spans).sum() / spans.sum()) if spans.sum() > 0 else float(used[0])
    return TempoSummary(
        initial_bpm=round(float(bpm[0]), 2),
        mean_bpm=round(mean, 2),
        min_bpm=round(float(used.min()), 2),
        max_bpm=round(float(used.max()), 2),
        changes=tempo_changes(p),
    )


def syncopation(p: ParsedMidi) -> float:
    """Share of pitched onsets that fall off the beat, are held across the next beat, and meet no
    new onset on that beat (the textbook tie-over syncopation).  Drums stand in if nothing else."""
    notes = p.notes
    use = notes.select(~notes.is_drum) if (~notes.is_drum).any() else notes
    if len(use) == 0:
        return 0.0
    pos = np.round(use.onset_beats * GRID).astype(np.int64)
    frac = pos % GRID
    off_beat = (frac > ON_BEAT) & (frac < GRID - ON_BEAT)
    next_beat = (pos // GRID + 1) * GRID
    held = (use.onset_beats + use.duration_beats) * GRID > next_beat + ON_BEAT
    all_pos = np.unique(np.round(notes.onset_beats * GRID).astype(np.int64))
    # an onset within the slack around the next beat counts as "on" it
    idx = np.searchsorted(all_pos, next_beat - ON_BEAT)
    hit = (idx < all_pos.shape[0]) & (all_pos[np.minimum(idx, all_pos.shape[0] - 1)] <= next_beat + ON_BEAT)
    synced = off_beat & held & ~hit
    return float(synced.sum() / len(use))


def syncopation_label(x: float) -> SyncopationLabel:
    if x < 0.02:
        return "none"
    if x < 0.10:
        return "low"
    return "medium" if x < 0.25 else "high"


def swing(p: ParsedMidi) -> tuple[float | None, SwingLabel, int]:
    """Long:short ratio of beats split into exactly two onsets, the first on the beat.

    Straight eighths put the second onset at 1/2 of the beat (ratio 1), triplet swing at 2/3
    (ratio 2), dotted swing at 3/4 (ratio 3).
    """
    pos = np.unique(np.round(p.notes.onset_beats * GRID).astype(np.int64))
    if pos.shape[0] == 0:
        return None, "undetermined", 0
    # positions within ON_BEAT after a beat count as on it
    shifted = pos + ON_BEAT
    beat, frac = shifted // GRID, shifted % GRID - ON_BEAT
    _, first, counts = np.unique(beat, return_index=True, return_counts=True)
    two = counts == 2
    on_beat = np.abs(frac[first]) <= ON_BEAT
    second = frac[np.minimum(first + 1, frac.shape[0] - 1)] / GRID
    pair = two & on_beat & (second > 0.4) & (second < 0.8)
    evidence = int(pair.sum())
    if evidence < MIN_SWING_BEATS:
        return None, "undetermined", evidence
    x = float(np.median(second[pair]))
    ratio = x / (1.0 - x)
    label: SwingLabel
    if ratio < 1.25:
        label = "straight"
    elif ratio < 1.6:
        label = "light swing"
    elif ratio < 2.5:
        label = "swing"
    else:
        label = "hard swing"
    return round(ratio, 2), label, evidence


def analyze_rhythm(p: ParsedMidi) -> RhythmAnalysis:
    first = p.time_signatures[0]
    sync = syncopation(p)
    ratio, label, evidence = swing(p)
    return RhythmAnalysis(
        meter=Meter(
            time_signature=first.label,
            kind=meter_kind(first.numerator, first.denominator),
            changes=[ts.label for ts in p.time_signatures],
        ),
        tempo=_tempo_summary(p),
        syncopation=round(sync, 3),
        syncopation_level=syncopation_label(sync),
        swing_ratio=ratio,
        swing=label,
        swing_evidence_beats=evidence,
    )
