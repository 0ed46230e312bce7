"""Harmony analysis: global key, local keys (modulations) and a chord per bar or beat."""

from __future__ import annotations

from typing import Literal

import numpy as np
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from engines.analysis.chords import recognise, roman_numeral
from engines.analysis.keys import estimate_key, key_name, key_scores
from engines.analysis.notes import ParsedMidi
from engines.analysis.segments import bass_pitch_class, chroma, overlaps

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
Resolution = Literal["bar", "beat"]

KEY_WINDOW_BARS = 2  # local key from bars i-2 .. i+2
SWITCH_PENALTY = 0.5  # correlation units; a modulation must pay for itself over several bars
MIN_BARS_FOR_MODULATION = 8


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ChordEvent(_Model):
    bar: int  # 1-based
    beat: float  # 1-based beat within the bar, in quarter notes
    time_seconds: float
    symbol: str  # "Em", "D7"
    root: str
    quality: str
    roman: str  # relative to the local key
    key: str


class Modulation(_Model):
    bar: int  # 1-based bar where the new key starts
    time_seconds: float
    from_key: str
    to_key: str


class HarmonyAnalysis(_Model):
    key: str | None
    key_confidence: float
    resolution: Resolution
    chords: list[ChordEvent]
    modulations: list[Modulation]


def beat_starts(p: ParsedMidi) -> F64:
    """Start tick of every beat (the time signature's denominator note, dotted in compound meters)."""
    parts = []
    for i, ts in enumerate(p.time_signatures):
        unit = p.tpq * 4.0 / ts.denominator
        if ts.numerator % 3 == 0 and ts.numerator > 3:
            unit *= 3
        stop = p.time_signatures[i + 1].tick if i + 1 < len(p.time_signatures) else p.end_tick
        parts.append(np.arange(ts.tick, max(stop, ts.tick + 1), unit, dtype=np.float64))
    out: F64 = np.concatenate(parts)
    return out


def local_keys(bar_chroma: F64) -> I64:
    """Key index (0-23) per bar: windowed K-S scores smoothed by a Viterbi path."""
    n = bar_chroma.shape[0]
    k = KEY_WINDOW_BARS
    csum = np.vstack((np.zeros((1, 12)), np.cumsum(bar_chroma, axis=0)))
    lo = np.clip(np.arange(n) - k, 0, n)
    hi = np.clip(np.arange(n) + k + 1, 0, n)
    scores = np.nan_to_num(key_scores(csum[hi] - csum[lo]))  # (n, 24)
    trans = np.where(np.eye(24, dtype=bool), 0.0, -SWITCH_PENALTY)
    total = scores[0].copy()
    back = np.zeros((n, 24), dtype=np.int64)
    for i in range(1, n):  # per bar, 24x24 each: the analysis path, not the metadata path
        cand = total[:, None] + trans
        back[i] = np.argmax(cand, axis=0)
        total = cand[back[i], np.arange(24)] + scores[i]
    path = np.empty(n, dtype=np.int64)
    path[-1] = int(np.argmax(total))
    for i in range(n - 1, 0, -1):
        path[i - 1] = back[i, path[i]]
    return path


def analyze_harmony(p: ParsedMidi, resolution: Resolution = "bar") -> HarmonyAnalysis:
    notes = p.notes.select(~p.notes.is_drum)
    on = notes.onset_ticks.astype(np.float64)
    off = on + notes.duration_ticks
    end = float(p.end_tick)
    bar_ov = overlaps(on, off, p.bar_starts_ticks, end)
    bar_chroma = chroma(bar_ov, notes.pitch, p.n_bars)
    global_key = estimate_key(bar_chroma.sum(axis=0))
    if global_key is None:
        return HarmonyAnalysis(key=None, key_confidence=0.0, resolution=resolution, chords=[],
                               modulations=[])
    if p.n_bars >= MIN_BARS_FOR_MODULATION:
        keys = local_keys(bar_chroma)
    else:
        keys = np.full(p.n_bars, global_key.index, dtype=np.int64)

    starts = p.bar_starts_ticks if resolution == "bar" else beat_starts(p)
    ov = bar_ov if resolution == "bar" else overlaps(on, off, starts, end)
    seg_chroma = chroma(ov, notes.pitch, starts.shape[0])
    guesses = recognise(seg_chroma, bass_pitch_class(ov, notes.pitch, starts.shape[0]))
    seg_bar = p.bar_of_ticks(starts)
    seg_sec = p.tempo.to_seconds(starts)
    chords = []
    for i, g in enumerate(guesses):  # one per bar or beat, not per note
        if g is None:
            continue
        bar = int(seg_bar[i])
        k = int(keys[bar])
        chords.append(ChordEvent(
            bar=bar + 1,
            beat=round(1.0 + (float(starts[i]) - float(p.bar_starts_ticks[bar])) / p.tpq, 3),
            time_seconds=round(float(seg_sec[i]), 3),
            symbol=g.symbol,
            root=g.symbol[: len(g.symbol) - len(g.quality.suffix)],
            quality=g.quality.name,
            roman=roman_numeral(g, k % 12, "major" if k < 12 else "minor"),
            key=key_name(k),
        ))
    changes = np.flatnonzero(keys[1:] != keys[:-1]) + 1
    bar_sec = p.tempo.to_seconds(p.bar_starts_ticks)
    modulations = [
        Modulation(bar=int(b) + 1, time_seconds=round(float(bar_sec[b]), 3),
                   from_key=key_name(int(keys[b - 1])), to_key=key_name(int(keys[b])))
        for b in changes
    ]
    return HarmonyAnalysis(
        key=global_key.name,
        key_confidence=round(global_key.confidence, 3),
        resolution=resolution,
        chords=chords,
        modulations=modulations,
    )
