"""``compute_metadata``: the summary attached to every MIDI artifact.

Budget: a few milliseconds for a 10-minute, 8-track file, so everything is numpy over the note
arrays; Python loops only run over tracks, tempo changes, time signatures and sections.
"""

from __future__ import annotations

from typing import Literal

import numpy as np

from engines.analysis.features import energy_curve, polyphony, start_peak_end
from engines.analysis.form import has_repeats, sections
from engines.analysis.gm import instrument_name, note_name
from engines.analysis.keys import estimate_key, pitch_class_histogram
from engines.analysis.models import (
    Density,
    EnergyProfile,
    Instrument,
    MidiMetadata,
    PitchRange,
    Polyphony,
    StructureSummary,
    TempoChange,
    TimeSignatureChange,
)
from engines.analysis.notes import ParsedMidi, parse_midi
from engines.analysis.similarity import bar_features, self_similarity

MAX_TEMPOS = 32  # tempo ramps can hold thousands of events; the summary keeps the first ones
LOW_DENSITY = 4.0  # notes per second
HIGH_DENSITY = 10.0


def _r(x: float, nd: int = 3) -> float:
    return round(float(x), nd)


def density_label(notes_per_second: float) -> Literal["low", "medium", "high"]:
    if notes_per_second < LOW_DENSITY:
        return "low"
    return "medium" if notes_per_second < HIGH_DENSITY else "high"


def tempo_changes(p: ParsedMidi) -> list[TempoChange]:
    """The tempo map with repeated identical tempos dropped."""
    t = p.tempo
    bpm = np.round(t.bpm, 2)
    keep = np.append(True, bpm[1:] != bpm[:-1])
    # a trailing tempo event after the music ends says nothing about it
    keep &= (t.ticks < p.end_tick) | (np.arange(keep.shape[0]) == 0)
    # model_construct: every value is a plain float computed here, so validation would only cost time.
    return [
        TempoChange.model_construct(
            time_seconds=_r(s), bar=_r(p.bar_position(float(tick)) + 1, 2), bpm=float(b)
        )
        for tick, s, b in zip(t.ticks[keep], t.seconds[keep], bpm[keep], strict=True)
    ]


def metadata_from_parsed(p: ParsedMidi) -> MidiMetadata:
    """The summary of parsed MIDI; the notes may come in any order."""
    notes = p.notes
    # Only the three arrays the summary needs: a full ``select`` costs more than all the statistics.
    tonal = ~notes.is_drum
    pitch, dur, onset = notes.pitch[tonal], notes.duration_ticks[tonal], notes.onset_ticks[tonal]
    duration = p.end_s

    key = estimate_key(pitch_class_histogram(pitch, dur.astype(np.float64)))
    feats = bar_features(p)
    ssm = self_similarity(feats)
    mean_poly, max_poly = polyphony(onset, dur)
    curve = energy_curve(feats)
    e_start, e_peak, e_end, peak_bar = start_peak_end(curve)
    peak_time = p.tempo.tick_to_seconds(float(p.bar_starts_ticks[peak_bar]))
    nps = len(notes) / duration if duration > 0 else 0.0
    tempos = tempo_changes(p)

    pitch_range = None
    if pitch.shape[0]:
        lo, hi = int(pitch.min()), int(pitch.max())
        pitch_range = PitchRange.model_construct(
            lowest=note_name(lo), highest=note_name(hi), lowest_midi=lo, highest_midi=hi
        )
    # model_construct throughout: the values are built here with the right types and ranges (the
    # energy values are clipped to [0, 1]); pydantic's checks would add ~0.2 ms for nothing.
    return MidiMetadata.model_construct(
        duration_seconds=_r(duration),
        duration_bars=_r(p.bar_position(float(p.end_tick)), 2),
        tempos=tempos[:MAX_TEMPOS],
        tempo_change_count=max(len(tempos) - 1, 0),
        time_signatures=[
            TimeSignatureChange.model_construct(time_seconds=_r(ts.seconds), bar=ts.bar + 1, signature=ts.label)
            for ts in p.time_signatures
        ],
        key=key.name if key else None,
        key_confidence=_r(key.confidence) if key else 0.0,
        instruments=[
            Instrument.model_construct(
                name=instrument_name(i.program, i.is_drum),
                program=i.program,
                is_drum=i.is_drum,
                track_name=i.name,
                note_count=i.note_count,
            )
            for i in p.instruments
        ],
        note_count=len(notes),
        density=Density.model_construct(notes_per_second=_r(nps, 2), label=density_label(nps)),
        pitch_range=pitch_range,
        polyphony=Polyphony.model_construct(mean=_r(mean_poly, 2), max=max_poly),
        energy=EnergyProfile.model_construct(
            start=_r(e_start), peak=_r(e_peak), end=_r(e_end), peak_time_seconds=_r(peak_time)
        ),
        structure=StructureSummary.model_construct(
            sections=len(sections(ssm)), repeats=has_repeats(ssm, feats.empty)
        ),
    )


def compute_metadata(midi: bytes) -> MidiMetadata:
    """Metadata of a Standard MIDI File; raises ``AnalysisError`` (``invalid_midi``) on bad bytes."""
    # Every statistic here ignores note order, so the onset sort of the notes is skipped.
    return metadata_from_parsed(parse_midi(midi, sort_notes=False))
