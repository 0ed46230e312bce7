"""MIDI in and out for the transform engine: bytes <-> a small score model in ticks.

A :class:`Score` is the conductor data (tempo, meter, key maps) plus *parts*: one
per (track, channel) pair, each with one program, its notes, and its other
channel messages (controllers, pitch bend) kept so transforms do not flatten a
performance. Writing always produces a type-1 file: a conductor track, then one
track per part.
"""

from __future__ import annotations

import bisect
import io
from collections import defaultdict, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import mido

from engines.errors import EngineError
from engines.protocol import Note

DRUM_CHANNEL = 9
DRUM_INSTRUMENT = 128  # protocol.Note.instrument for drums
DEFAULT_TEMPO = 500_000  # microseconds per beat = 120 bpm
MAX_TEMPO = 0xFFFFFF  # the largest value a set_tempo event can hold


@dataclass(frozen=True, slots=True)
class MidiNote:
    start: int  # ticks
    end: int  # ticks, > start
    pitch: int
    velocity: int


@dataclass(frozen=True)
class Part:
    """One instrument line: one channel, one program."""

    name: str
    channel: int
    program: int
    notes: tuple[MidiNote, ...]
    controls: tuple[tuple[int, mido.Message], ...] = ()  # (tick, channel message)

    @property
    def is_drum(self) -> bool:
        return self.channel == DRUM_CHANNEL

    @property
    def instrument(self) -> int:
        return DRUM_INSTRUMENT if self.is_drum else self.program


@dataclass(frozen=True)
class Score:
    ticks_per_beat: int
    tempos: tuple[tuple[int, int], ...] = ((0, DEFAULT_TEMPO),)  # (tick, us per beat)
    meters: tuple[tuple[int, int, int], ...] = ((0, 4, 4),)  # (tick, numerator, denominator)
    keys: tuple[tuple[int, str], ...] = ()  # (tick, mido key name such as "C" or "Am")
    parts: tuple[Part, ...] = field(default_factory=tuple)

    @property
    def note_count(self) -> int:
        return sum(len(p.notes) for p in self.parts)

    @property
    def end_tick(self) -> int:
        return max((n.end for p in self.parts for n in p.notes), default=0)


def invalid_midi(message: str, **details: object) -> EngineError:
    return EngineError(message, code="invalid_midi", details=dict(details))


# --- reading -------------------------------------------------------------------------------


def read_midi(data: bytes) -> Score:
    """Parse a standard MIDI file; any malformed input raises ``invalid_midi``."""
    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError ...
        raise invalid_midi(f"not a readable MIDI file: {exc}", size=len(data)) from None
    tpb = midi.ticks_per_beat
    if not 0 < tpb < 0x8000:  # the top bit set means SMPTE timing, which we do not map to beats
        raise invalid_midi("MIDI file uses SMPTE time division", ticks_per_beat=tpb)
    tempos: dict[int, int] = {}
    meters: dict[int, tuple[int, int]] = {}
    keys: dict[int, str] = {}
    parts: list[Part] = []
    for track in midi.tracks:
        tick = 0
        name = ""
        programs: dict[int, int] = {}
        notes: dict[int, list[MidiNote]] = defaultdict(list)
        controls: dict[int, list[tuple[int, mido.Message]]] = defaultdict(list)
        sounding: dict[tuple[int, int], deque[tuple[int, int]]] = defaultdict(deque)
        for msg in track:
            tick += msg.time
            if msg.is_meta:
                if msg.type == "set_tempo":
                    tempos[tick] = msg.tempo
                elif msg.type == "time_signature":
                    meters[tick] = (msg.numerator, msg.denominator)
                elif msg.type == "key_signature":
                    keys[tick] = msg.key
                elif msg.type == "track_name" and not name:
                    name = msg.name
                continue
            if not hasattr(msg, "channel"):
                continue  # sysex: not kept
            ch = msg.channel
            if msg.type == "note_on" and msg.velocity > 0:
                sounding[(ch, msg.note)].append((tick, msg.velocity))
            elif msg.type in ("note_on", "note_off"):
                held = sounding[(ch, msg.note)]
                if held:  # a stray note-off with nothing sounding is ignored
                    start, velocity = held.popleft()
                    notes[ch].append(MidiNote(start, max(tick, start + 1), msg.note, velocity))
            elif msg.type == "program_change":
                programs.setdefault(ch, msg.program)
            else:
                controls[ch].append((tick, msg))
        for (ch, pitch), held in sounding.items():  # never released: end at the track's end
            for start, velocity in held:
                notes[ch].append(MidiNote(start, max(tick, start + 1), pitch, velocity))
        channels = sorted(set(notes) | set(controls))
        for ch in channels:
            if not notes[ch]:
                continue
            label = name if len(channels) == 1 else f"{name or 'Track'} ch{ch + 1}".strip()
            parts.append(
                Part(
                    name=label,
                    channel=ch,
                    program=programs.get(ch, 0),
                    notes=tuple(sorted(notes[ch], key=lambda n: (n.start, n.pitch))),
                    controls=tuple(controls[ch]),
                )
            )
    return Score(
        ticks_per_beat=tpb,
        tempos=tuple(sorted(tempos.items()))
        if 0 in tempos
        else ((0, DEFAULT_TEMPO), *sorted(tempos.items())),
        meters=_with_origin(sorted((t, n, d) for t, (n, d) in meters.items()), (0, 4, 4)),
        keys=tuple(sorted(keys.items())),
        parts=tuple(parts),
    )


def _with_origin(
    items: list[tuple[int, int, int]], default: tuple[int, int, int]
) -> tuple[tuple[int, int, int], ...]:
    if not items or items[0][0] != 0:
        items.insert(0, default)
    return tuple(items)


# --- writing -------------------------------------------------------------------------------


def write_midi(score: Score) -> bytes:
    """A type-1 file: conductor track, then one track per part (channels kept distinct)."""
    midi = mido.MidiFile(type=1, ticks_per_beat=score.ticks_per_beat)
    conductor: list[tuple[int, int, mido.MetaMessage | mido.Message]] = []
    for tick, num, den in score.meters:
        conductor.append(
            (tick, 0, mido.MetaMessage("time_signature", numerator=num, denominator=den))
        )
    for tick, key in score.keys:
        conductor.append((tick, 0, mido.MetaMessage("key_signature", key=key)))
    for tick, tempo in score.tempos:
        tempo = min(max(tempo, 1), MAX_TEMPO)
        conductor.append((tick, 1, mido.MetaMessage("set_tempo", tempo=tempo)))
    midi.tracks.append(_track(conductor))
    for part, channel in zip(score.parts, assign_channels(score.parts), strict=True):
        events: list[tuple[int, int, mido.MetaMessage | mido.Message]] = [
            (0, 0, mido.MetaMessage("track_name", name=part.name)),
            (0, 1, mido.Message("program_change", channel=channel, program=part.program)),
        ]
        events += [(tick, 1, msg.copy(channel=channel)) for tick, msg in part.controls]
        for note in part.notes:
            end = max(note.end, note.start + 1)
            on = mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)
            off = mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)
            # At equal ticks: note-offs first, so a repeated note is released then struck.
            events += [(note.start, 2, on), (end, 0, off)]
        midi.tracks.append(_track(events))
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


def _track(events: list[tuple[int, int, mido.MetaMessage | mido.Message]]) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track


def assign_channels(parts: Sequence[Part]) -> list[int]:
    """Keep each part's channel unless two parts with different programs would share one."""
    owner: dict[int, int] = {}  # channel -> program of the part that holds it
    result: list[int] = []
    free = [c for c in range(16) if c != DRUM_CHANNEL]
    for part in parts:
        if part.is_drum:
            result.append(DRUM_CHANNEL)
            continue
        ch = part.channel
        if ch in owner and owner[ch] != part.program:
            ch = next((c for c in free if c not in owner), ch)  # past 15 lines: share
        owner.setdefault(ch, part.program)
        result.append(ch)
    return result


# --- time ---------------------------------------------------------------------------------


class TempoMap:
    """Ticks -> seconds over a piecewise-constant tempo map."""

    def __init__(self, tempos: Iterable[tuple[int, int]], ticks_per_beat: int) -> None:
        self.tpb = ticks_per_beat
        self.ticks: list[int] = []
        self.tempos: list[int] = []
        self.seconds_at: list[float] = []
        elapsed = 0.0
        for tick, tempo in tempos:
            if self.ticks:
                elapsed += (tick - self.ticks[-1]) * self.tempos[-1] / 1e6 / self.tpb
            self.ticks.append(tick)
            self.tempos.append(tempo)
            self.seconds_at.append(elapsed)
        if not self.ticks:
            self.ticks, self.tempos, self.seconds_at = [0], [DEFAULT_TEMPO], [0.0]

    def tempo_at(self, tick: int) -> int:
        return self.tempos[max(bisect.bisect_right(self.ticks, tick) - 1, 0)]

    def seconds(self, tick: int) -> float:
        i = max(bisect.bisect_right(self.ticks, tick) - 1, 0)
        return self.seconds_at[i] + (tick - self.ticks[i]) * self.tempos[i] / 1e6 / self.tpb


def to_notes(score: Score, variation: int = 0) -> list[Note]:
    """The score's notes as protocol notes (seconds), ordered by onset then pitch."""
    tmap = TempoMap(score.tempos, score.ticks_per_beat)
    out = [
        Note(
            variation=variation,
            onset=round(tmap.seconds(n.start), 6),
            duration=round(tmap.seconds(n.end) - tmap.seconds(n.start), 6),
            pitch=n.pitch,
            velocity=n.velocity,
            instrument=part.instrument,
        )
        for part in score.parts
        for n in part.notes
    ]
    out.sort(key=lambda n: (n.onset, n.pitch, n.instrument))
    return out
