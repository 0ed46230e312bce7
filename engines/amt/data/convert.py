"""One music21 score -> compound note tuples (time, duration, pitch, GM program, velocity).

The notes are written straight into the codec's compound format (what MIDI -> compound
gives, in 10 ms ticks) with each part's General MIDI program. Going through music21's own
MIDI export instead costs ~14 s for one quartet movement on this machine, fails on scores
taken out of ABC opuses, and would make every part a piano anyway.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from engines.amt import vocab as V
from engines.amt.data.instruments import part_program

DEFAULT_QPM = 120.0  # music21's default when a score has no metronome mark


@dataclass
class Piece:
    """One piece (a score, or one tune of an ABC opus) ready for tokenizing."""

    piece_id: str  # "collection/file" or "collection/file#tune-number"
    title: str
    composer: str
    compound: list[int]
    programs: list[int] = field(default_factory=list)  # per part, in part order
    program_sources: list[str] = field(default_factory=list)  # "name" / "music21" / "default"
    repeats_expanded: bool = False


class _Clock:
    """Quarter-length offsets -> seconds through the score's tempo map."""

    def __init__(self, score: Any) -> None:
        self.starts: list[float] = []
        self.seconds: list[float] = []  # seconds elapsed at each segment start
        self.spq: list[float] = []  # seconds per quarter in each segment
        elapsed = 0.0
        try:
            boundaries = score.metronomeMarkBoundaries()
        except Exception:  # music21 raises assorted errors on odd tempo maps
            boundaries = []
        for start, end, mark in boundaries:
            spq = mark.secondsPerQuarter() if mark.number else 60.0 / DEFAULT_QPM
            self.starts.append(float(start))
            self.seconds.append(elapsed)
            self.spq.append(float(spq))
            elapsed += (float(end) - float(start)) * float(spq)
        if not self.starts:
            self.starts, self.seconds, self.spq = [0.0], [0.0], [60.0 / DEFAULT_QPM]

    def __call__(self, offset: float) -> float:
        i = max(0, bisect.bisect_right(self.starts, offset) - 1)
        return self.seconds[i] + (offset - self.starts[i]) * self.spq[i]


def _names(part: Any) -> list[str | None]:
    inst = part.getInstrument(returnDefault=False)
    names: list[str | None] = [part.partName, part.partAbbreviation]
    if inst is not None:
        names += [inst.partName, inst.instrumentName, inst.instrumentAbbreviation]
    return names


def _music21_program(part: Any) -> int | None:
    inst = part.getInstrument(returnDefault=False)
    program = getattr(inst, "midiProgram", None) if inst is not None else None
    return int(program) if program is not None else None


def _sounding(element: Any) -> list[tuple[int, str | None]]:
    """(MIDI pitch, tie type or None) of each note in a Note or Chord."""
    members = list(element.notes) if element.isChord else [element]
    out: list[tuple[int, str | None]] = []
    for member in members:
        tie = member.tie if member.tie is not None else element.tie
        out.append((int(member.pitch.midi), tie.type if tie is not None else None))
    return out


def _part_notes(part: Any, program: int, clock: _Clock) -> list[tuple[int, int, int, int]]:
    """(onset tick, duration ticks, pitch, program) of every sounding note of one part.

    Tied notes are merged here rather than with music21's ``stripTies``, which deep-copies
    the whole part and took ~90% of the conversion time.
    """
    from music21 import harmony  # local import: training machines have no music21

    spans: list[tuple[float, float, int]] = []  # (start ql, end ql, pitch)
    open_ties: dict[int, tuple[float, float]] = {}  # pitch -> (start, end) of a tied note
    for element in part.flatten().notes:
        if isinstance(element, harmony.Harmony) or element.duration.isGrace:
            continue  # chord symbols do not sound; grace notes have no notated length
        start = float(element.offset)
        end = start + float(element.duration.quarterLength)
        for pitch, tie in _sounding(element):
            held = open_ties.get(pitch)
            if held is not None and tie in ("continue", "stop") and abs(held[1] - start) < 1e-6:
                open_ties[pitch] = (held[0], end)
                if tie == "stop":
                    spans.append((held[0], end, pitch))
                    del open_ties[pitch]
                continue
            if held is not None:  # a tie that never stopped: keep what it had
                spans.append((held[0], held[1], pitch))
                del open_ties[pitch]
            if tie in ("start", "continue"):
                open_ties[pitch] = (start, end)
            else:
                spans.append((start, end, pitch))
    spans.extend((s, e, p) for p, (s, e) in open_ties.items())
    out: list[tuple[int, int, int, int]] = []
    for start, end, pitch in spans:
        onset_s, end_s = clock(start), clock(end)
        # rounded on its own, like the codec does for MIDI input
        duration = round(V.TIME_RESOLUTION * (end_s - onset_s))
        if duration > 0 and 0 <= pitch < V.MAX_PITCH:
            out.append((round(V.TIME_RESOLUTION * onset_s), duration, pitch, program))
    return out


def score_to_piece(score: Any, piece_id: str, rel_path: str, expand_repeats: bool) -> Piece:
    """Convert one music21 ``Score`` (expanding repeats when asked and possible)."""
    expanded = False
    if expand_repeats:
        try:
            score = score.expandRepeats()
            expanded = True
        except Exception:  # malformed repeat marks: keep the score as written
            expanded = False
    clock = _Clock(score)
    md = score.metadata
    piece = Piece(
        piece_id=piece_id,
        title=str(md.title or "") if md is not None else "",
        composer=str(md.composer or "") if md is not None else "",
        compound=[],
        repeats_expanded=expanded,
    )
    notes: list[tuple[int, int, int, int, int]] = []
    parts = list(score.parts) or [score]
    for index, part in enumerate(parts):
        program, source = part_program(rel_path, _names(part), _music21_program(part))
        piece.programs.append(program)
        piece.program_sources.append(source)
        notes.extend((t, index, p, d, prog) for t, d, p, prog in _part_notes(part, program, clock))
    # time order, part order, then pitch: what a merged type-1 MIDI export would give
    notes.sort()
    for onset, _index, pitch, duration, program in notes:
        piece.compound.extend((onset, duration, pitch, program, V.DEFAULT_VELOCITY))
    return piece
