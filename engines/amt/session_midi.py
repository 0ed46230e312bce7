"""Model events -> a playable MIDI file on the session's grid (not the fixture-exact writer).

The AMT writer (``codec.events_to_midi``: 50 ticks per beat, no tempo, velocity 72) stays
what ``tutti detokenize`` uses. Here events (10 ms ticks) are placed on the session's
tempo and meter at 480 ticks per beat, optionally quantized, and given velocities from
metrical position and phrase (AMT has one velocity), in a type-1 file with a conductor
track whose end can be pinned (a loop is exactly its bars long).
"""

from __future__ import annotations

import bisect
import io
from collections.abc import Sequence
from dataclasses import dataclass, replace

import mido

from engines.amt import ops
from engines.amt import vocab as V
from engines.protocol import MusicalContext, Note
from engines.transform import ops as tops
from engines.transform.midi import (
    DRUM_CHANNEL,
    MidiNote,
    Part,
    Score,
    TempoMap,
    read_midi,
    write_midi,
)

TICKS_PER_BEAT = 480


@dataclass(frozen=True)
class Rendering:
    """How events become MIDI: grid, dynamics, and where the file ends."""

    quantize_beats: float | None = None  # grid in quarter notes; None = as generated
    velocity: int = 80  # mean velocity
    accent: float = 0.5  # metrical accent amount 0..1 (transform's velocity shaping)
    end_seconds: float | None = None  # pin the file's length (loops), else the last note


def beats_per_second(context: MusicalContext) -> float:
    return context.tempo / 60.0


def bar_seconds(context: MusicalContext) -> float:
    """Length of one bar in seconds (the meter's beats are 4/denominator quarter notes)."""
    quarters = context.meter_numerator * 4.0 / context.meter_denominator
    return quarters * 60.0 / context.tempo


def to_tick(seconds: float, context: MusicalContext) -> int:
    return round(seconds * beats_per_second(context) * TICKS_PER_BEAT)


def events_to_score(events: Sequence[int], context: MusicalContext) -> Score:
    """Events (ticks of 10 ms) -> a Score at the session tempo, one part per instrument."""
    by_instrument: dict[int, list[MidiNote]] = {}
    for time, dur, note in ops.triples(events):
        if note >= V.REST:
            continue  # RESTs, controls, separators are not notes
        instr, pitch = divmod(note - V.NOTE_OFFSET, V.MAX_PITCH)
        onset = (time - V.TIME_OFFSET) / V.TIME_RESOLUTION
        length = (dur - V.DUR_OFFSET) / V.TIME_RESOLUTION
        start = to_tick(onset, context)
        end = max(to_tick(onset + length, context), start + 1)
        by_instrument.setdefault(instr, []).append(MidiNote(start, end, pitch, V.DEFAULT_VELOCITY))
    parts: list[Part] = []
    channels = iter(c for c in range(16) if c != DRUM_CHANNEL)
    for instr, notes in by_instrument.items():
        drums = instr == V.DRUMS
        channel = DRUM_CHANNEL if drums else next(channels, 0)
        parts.append(
            Part(
                name="Drums" if drums else f"Program {instr}",
                channel=channel,
                program=0 if drums else instr,
                notes=tuple(sorted(notes, key=lambda n: (n.start, n.pitch))),
            )
        )
    tempo = tops.bpm_to_tempo(context.tempo)
    meter = (0, context.meter_numerator, context.meter_denominator)
    return Score(TICKS_PER_BEAT, tempos=((0, tempo),), meters=(meter,), parts=tuple(parts))


def render(score: Score, rendering: Rendering) -> Score:
    if rendering.quantize_beats:
        score = tops.quantize(score, rendering.quantize_beats)
    shape = tops.Shape(accent=rendering.accent, contour=0.2, center=rendering.velocity)
    return tops.shape_velocity(score, shape)


def write_session_midi(
    events: Sequence[int], context: MusicalContext, rendering: Rendering = Rendering()
) -> bytes:
    """A type-1 file: conductor track (tempo, meter), then one track per instrument."""
    score = render(events_to_score(events, context), rendering)
    if rendering.end_seconds is None:
        return write_midi(score)
    end = to_tick(rendering.end_seconds, context)
    # quantizing may have pulled a late onset onto the end: keep everything inside
    parts = tuple(
        replace(
            p,
            notes=tuple(replace(n, end=min(n.end, end)) for n in p.notes if n.start < end),
        )
        for p in score.parts
    )
    return pin_length(write_midi(replace(score, parts=parts)), end)


def pin_length(data: bytes, end_tick: int) -> bytes:
    """Make every track end exactly at ``end_tick`` (notes past it were clipped before)."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    for track in midi.tracks:
        total = sum(msg.time for msg in track)
        last = track[-1]
        if last.type == "end_of_track" and total < end_tick:
            last.time += end_tick - total
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def score_length_ticks(data: bytes) -> int:
    """The longest track's length in ticks (what a DAW shows as the clip length)."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    return max(int(sum(msg.time for msg in track)) for track in midi.tracks)


def events_to_notes(
    events: Sequence[int], variation: int, velocity: int = 80, shift_ticks: int = 0
) -> list[Note]:
    """Streaming view of events (seconds, one velocity; shaping happens in the file)."""
    notes: list[Note] = []
    for time, dur, note in ops.triples(events):
        if note >= V.REST:
            continue
        instr, pitch = divmod(note - V.NOTE_OFFSET, V.MAX_PITCH)
        onset = (time - V.TIME_OFFSET + shift_ticks) / V.TIME_RESOLUTION
        notes.append(
            Note(
                variation=variation,
                onset=max(onset, 0.0),
                duration=(dur - V.DUR_OFFSET) / V.TIME_RESOLUTION,
                pitch=pitch,
                velocity=velocity,
                instrument=instr,
            )
        )
    return notes


def _seconds_to_tick(tmap: TempoMap, seconds: float) -> int:
    """Inverse of ``TempoMap.seconds`` over the file's own tempo map."""
    i = max(bisect.bisect_right(tmap.seconds_at, seconds) - 1, 0)
    return round(tmap.ticks[i] + (seconds - tmap.seconds_at[i]) * 1e6 * tmap.tpb / tmap.tempos[i])


def infill_midi(
    original: bytes, events: Sequence[int], start: float, end: float, velocity: int = 80
) -> bytes:
    """The original file with notes starting in [start, end) s replaced by ``events``.

    Everything else (notes outside the range with their velocities, channels, controllers,
    tempo and meter) is carried over from the original as it was.
    """
    score = read_midi(original)
    tmap = TempoMap(score.tempos, score.ticks_per_beat)
    lo, hi = _seconds_to_tick(tmap, start), _seconds_to_tick(tmap, end)
    added: dict[int, list[MidiNote]] = {}
    for time, dur, note in ops.triples(events):
        if note >= V.REST:
            continue
        instr, pitch = divmod(note - V.NOTE_OFFSET, V.MAX_PITCH)
        onset = (time - V.TIME_OFFSET) / V.TIME_RESOLUTION
        tick = max(_seconds_to_tick(tmap, onset), lo)
        if tick >= hi:
            continue
        off = _seconds_to_tick(tmap, onset + (dur - V.DUR_OFFSET) / V.TIME_RESOLUTION)
        added.setdefault(instr, []).append(MidiNote(tick, max(off, tick + 1), pitch, velocity))
    parts: list[Part] = []
    for part in score.parts:
        kept = [n for n in part.notes if not lo <= n.start < hi]
        kept += added.pop(part.instrument, [])
        parts.append(replace(part, notes=tuple(sorted(kept, key=lambda n: (n.start, n.pitch)))))
    used = {p.channel for p in parts}
    free = iter(c for c in range(16) if c != DRUM_CHANNEL and c not in used)
    for instr, notes in added.items():
        drums = instr == V.DRUMS
        parts.append(
            Part(
                name="Drums" if drums else f"Program {instr}",
                channel=DRUM_CHANNEL if drums else next(free, 0),
                program=0 if drums else instr,
                notes=tuple(sorted(notes, key=lambda n: (n.start, n.pitch))),
            )
        )
    return write_midi(replace(score, parts=tuple(parts)))
