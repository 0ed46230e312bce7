"""Render a session's arrangement into one type-1 Standard MIDI File.

Sections follow each other on the bar grid: a section starts where the
previous ones' bars end, at the session meter, and plays at its own tempo
override or the session tempo (written as ``set_tempo`` in the conductor
track). Each section's chosen take is placed at the section start; a take
longer than its section is cut at the section end (sounding notes get
note-offs there, a held sustain pedal and pitch bend are reset), a shorter one
leaves silence, and a section without a chosen take is silent bars.

Timing choice: a take is read through its *own* tempo map into seconds, then
laid out in beats at the section's tempo. For a take made at the section
tempo (what engines are asked for) that is exactly its beat positions; for a
file with a foreign tempo it keeps the performance's real timing instead of
stretching it to the grid.

Output tracks: a conductor track (name, time signature, key signature where
the key parses, tempo map) and one track per instrument, keyed by the source
(channel, program), shared by all sections so a DAW sees one lane per instrument.
"""

from __future__ import annotations

import bisect
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mido

from hub.errors import ErrorCode, HubError
from hub.model import Section, Session

TICKS_PER_BEAT = 480

_CARRIED = {"note_on", "note_off", "control_change", "pitchwheel", "aftertouch", "polytouch"}
_SUSTAIN = 64
# Same-tick order: note-offs first (a re-struck note survives), then controls and
# program changes, then note-ons.
_ORDER = {"note_off": 0, "note_on": 2}

InstrumentKey = tuple[int, int]  # (channel, program)


@dataclass(frozen=True, slots=True)
class SectionPlacement:
    section: str
    name: str
    start_bar: int  # 0-based bar of the rendered file where the section starts
    bars: int
    start_beat: float  # quarter-note beats
    tempo: float
    take: str | None
    artifact: str | None
    notes: int
    cut_notes: int  # notes still sounding at the section end, cut there


@dataclass(frozen=True, slots=True)
class RenderResult:
    midi: bytes
    sections: tuple[SectionPlacement, ...]
    notes: int
    bars: int
    beats: float
    seconds: float
    tracks: int  # including the conductor track

    def summary(self) -> dict[str, Any]:
        """JSON-friendly description for an ack or artifact metadata."""
        return {
            "notes": self.notes,
            "bars": self.bars,
            "beats": self.beats,
            "seconds": round(self.seconds, 6),
            "tracks": self.tracks,
            "ticks_per_beat": TICKS_PER_BEAT,
            "sections": [
                {
                    "section": p.section,
                    "name": p.name,
                    "start_bar": p.start_bar,
                    "bars": p.bars,
                    "start_beat": p.start_beat,
                    "tempo": p.tempo,
                    "take": p.take,
                    "notes": p.notes,
                    "cut_notes": p.cut_notes,
                }
                for p in self.sections
            ],
        }


@dataclass(slots=True)
class _Out:
    """Output events as (absolute tick, order, sequence, message)."""

    events: list[tuple[int, int, int, mido.Message | mido.MetaMessage]]
    seq: int = 0

    def add(self, tick: int, msg: mido.Message | mido.MetaMessage) -> None:
        self.events.append((tick, _ORDER.get(msg.type, 1), self.seq, msg))
        self.seq += 1


def render_session(
    session: Session,
    load_midi: Callable[[str], bytes],
    *,
    sections: list[str] | None = None,
) -> RenderResult:
    """The arrangement of ``sections`` (default: all, in session order) as one MIDI file."""
    chosen = _select(session, sections)
    beats_per_bar = session.meter.beats_per_bar
    conductor = _Out([])
    conductor.add(0, mido.MetaMessage("track_name", name=session.title))
    conductor.add(
        0,
        mido.MetaMessage(
            "time_signature",
            numerator=session.meter.numerator,
            denominator=session.meter.denominator,
        ),
    )
    instruments: dict[InstrumentKey, _Out] = {}
    names: dict[InstrumentKey, str] = {}
    placements: list[SectionPlacement] = []
    tick = 0
    bar = 0
    seconds = 0.0
    tempo: float | None = None
    key: str | None = None
    for sec in chosen:
        bpm = sec.tempo or session.tempo
        if bpm != tempo:
            conductor.add(tick, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
            tempo = bpm
        sec_key = _key_signature(sec.key or session.key)
        if sec_key is not None and sec_key != key:
            conductor.add(tick, mido.MetaMessage("key_signature", key=sec_key))
            key = sec_key
        length = round(sec.bars * beats_per_bar * TICKS_PER_BEAT)
        take = sec.take(sec.chosen_take) if sec.chosen_take else None
        notes = cut = 0
        if take is not None:
            parsed = _read_take(load_midi(take.artifact_id), take.id, sec.id)
            notes, cut = _place(parsed, bpm, tick, length, instruments, names)
        placements.append(
            SectionPlacement(
                section=sec.id,
                name=sec.name,
                start_bar=bar,
                bars=sec.bars,
                start_beat=tick / TICKS_PER_BEAT,
                tempo=bpm,
                take=take.id if take else None,
                artifact=take.artifact_id if take else None,
                notes=notes,
                cut_notes=cut,
            )
        )
        tick += length
        bar += sec.bars
        seconds += sec.bars * beats_per_bar * 60.0 / bpm
    if tempo is None:  # an empty arrangement still states the session tempo
        conductor.add(0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(session.tempo)))
    mid = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    mid.tracks.append(_track(conductor, tick))
    for ikey, out in instruments.items():
        out.events.insert(0, (0, -1, -1, mido.MetaMessage("track_name", name=names[ikey])))
        mid.tracks.append(_track(out, tick))
    buf = io.BytesIO()
    mid.save(file=buf)
    return RenderResult(
        midi=buf.getvalue(),
        sections=tuple(placements),
        notes=sum(p.notes for p in placements),
        bars=bar,
        beats=tick / TICKS_PER_BEAT,
        seconds=seconds,
        tracks=len(mid.tracks),
    )


def render_section(
    session: Session, section_id: str, load_midi: Callable[[str], bytes]
) -> RenderResult:
    """One section alone, starting at bar 0 at its own tempo."""
    return render_session(session, load_midi, sections=[section_id])


def _select(session: Session, wanted: list[str] | None) -> list[Section]:
    if wanted is None:
        return list(session.sections)
    missing = [w for w in wanted if session.section(w) is None]
    if missing:
        raise HubError(
            ErrorCode.unknown_section,
            f"session {session.id} has no section {missing[0]}",
            details={"session": session.id, "sections": missing},
        )
    keep = set(wanted)
    return [s for s in session.sections if s.id in keep]  # session order, each once


def _track(out: _Out, end_tick: int) -> mido.MidiTrack:
    track = mido.MidiTrack()
    now = 0
    for tick, _order, _seq, msg in sorted(out.events, key=lambda e: (e[0], e[1], e[2])):
        track.append(msg.copy(time=tick - now))
        now = tick
    # An explicit end keeps trailing silent bars in the file's length.
    track.append(mido.MetaMessage("end_of_track", time=max(0, end_tick - now)))
    return track


# --- reading a take ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _TakeMsg:
    seconds: float
    key: InstrumentKey
    msg: mido.Message


@dataclass(frozen=True, slots=True)
class _Take:
    messages: list[_TakeMsg]  # in time order
    names: dict[InstrumentKey, str]


def _read_take(data: bytes, take_id: str, section_id: str) -> _Take:
    try:
        mid = mido.MidiFile(file=io.BytesIO(data))
        if mid.ticks_per_beat <= 0:
            raise ValueError("SMPTE time division is not supported")
        return _take_messages(mid)
    except (OSError, EOFError, ValueError, KeyError, IndexError, TypeError) as exc:
        raise HubError(
            ErrorCode.invalid_midi,
            f"take {take_id} is not a valid MIDI file: {exc}",
            details={"take": take_id, "section": section_id, "reason": str(exc)},
        ) from exc


def _take_messages(mid: mido.MidiFile) -> _Take:
    tpb: int = mid.ticks_per_beat
    # Type 0/1 share one tempo map (any track may hold it); type 2 tracks are independent.
    shared = _TempoMap(tpb, [t for track in mid.tracks for t in _tempo_changes(track)])
    found: list[tuple[float, int, _TakeMsg]] = []
    names: dict[InstrumentKey, str] = {}
    seq = 0
    for track in mid.tracks:
        tempo_map = shared if mid.type != 2 else _TempoMap(tpb, _tempo_changes(track))
        programs: dict[int, int] = {}
        track_name: str | None = None
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "track_name":
                track_name = str(msg.name)
            elif msg.type == "program_change":
                programs[msg.channel] = msg.program
            elif msg.type in _CARRIED:
                key = (msg.channel, programs.get(msg.channel, 0))
                if track_name and key not in names:
                    names[key] = track_name
                sec = tempo_map.seconds(tick)
                found.append((sec, seq, _TakeMsg(sec, key, msg)))
                seq += 1
    found.sort(key=lambda f: (f[0], f[1]))
    return _Take([f[2] for f in found], names)


def _tempo_changes(track: mido.MidiTrack) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    tick = 0
    for msg in track:
        tick += msg.time
        if msg.type == "set_tempo":
            out.append((tick, int(msg.tempo)))
    return out


class _TempoMap:
    """Ticks to seconds through a piecewise-constant tempo (default 120 bpm)."""

    def __init__(self, tpb: int, changes: list[tuple[int, int]]) -> None:
        self._tpb = tpb
        self._ticks = [0]
        self._secs = [0.0]
        self._tempos = [500_000]
        for tick, tempo in sorted(changes):
            start = self.seconds(tick)
            if tick == self._ticks[-1]:  # a change at the same tick replaces the last
                self._tempos[-1] = tempo
            else:
                self._ticks.append(tick)
                self._secs.append(start)
                self._tempos.append(tempo)

    def seconds(self, tick: int) -> float:
        i = bisect.bisect_right(self._ticks, tick) - 1
        return self._secs[i] + (tick - self._ticks[i]) * self._tempos[i] / 1e6 / self._tpb


# --- placing a take in its section ----------------------------------------------------


def _place(
    take: _Take,
    bpm: float,
    start: int,
    length: int,
    instruments: dict[InstrumentKey, _Out],
    names: dict[InstrumentKey, str],
) -> tuple[int, int]:
    """Add the take's events to the instrument tracks; returns (notes, notes cut)."""
    per_tick = bpm / 60.0 * TICKS_PER_BEAT
    sounding: dict[tuple[int, int], list[InstrumentKey]] = {}
    pedal: dict[InstrumentKey, bool] = {}
    bent: dict[InstrumentKey, bool] = {}
    used: set[InstrumentKey] = set()
    notes = cut = 0

    def out(key: InstrumentKey) -> _Out:
        if key not in instruments:
            instruments[key] = _Out([])
            names[key] = take.names.get(key) or _default_name(key)
        if key not in used:  # each section states its program, so lanes stay right
            used.add(key)
            channel, program = key
            instruments[key].add(
                start, mido.Message("program_change", channel=channel, program=program)
            )
        return instruments[key]

    for tm in take.messages:
        rel = round(tm.seconds * per_tick)
        msg = tm.msg
        note = (msg.channel, msg.note) if msg.type in ("note_on", "note_off") else None
        if note is not None and msg.type == "note_on" and msg.velocity > 0:
            if rel >= length:
                continue  # starts after the section end: dropped with its note-off
            sounding.setdefault(note, []).append(tm.key)
            out(tm.key).add(start + rel, msg)
            notes += 1
        elif note is not None:
            owners = sounding.get(note)
            if not owners:
                continue  # a note-off for a note never placed
            key = owners.pop(0)
            if rel > length:
                cut += 1
            out(key).add(
                start + min(rel, length), mido.Message("note_off", channel=note[0], note=note[1])
            )
        elif rel < length:
            if msg.type == "control_change" and msg.control == _SUSTAIN:
                pedal[tm.key] = msg.value >= 64
            elif msg.type == "pitchwheel":
                bent[tm.key] = msg.pitch != 0
            out(tm.key).add(start + rel, msg)
    end = start + length
    for (channel, pitch), owners in sounding.items():
        for key in owners:  # still sounding at the end of the take: close at the section end
            out(key).add(end, mido.Message("note_off", channel=channel, note=pitch))
            cut += 1
    for key, down in pedal.items():
        if down:
            out(key).add(
                end, mido.Message("control_change", channel=key[0], control=_SUSTAIN, value=0)
            )
    for key, on in bent.items():
        if on:
            out(key).add(end, mido.Message("pitchwheel", channel=key[0], pitch=0))
    return notes, cut


def _default_name(key: InstrumentKey) -> str:
    channel, program = key
    return "Drums" if channel == 9 else f"Channel {channel + 1} program {program}"


# --- key names -------------------------------------------------------------------------

_KEY_RE = re.compile(r"^\s*([A-Ga-g])\s*([#b♯♭]?)\s*(m|min|minor|maj|major)?\s*$", re.IGNORECASE)
_ENHARMONIC = {
    "C#": "Db",
    "Db": "C#",
    "D#": "Eb",
    "Eb": "D#",
    "F#": "Gb",
    "Gb": "F#",
    "G#": "Ab",
    "Ab": "G#",
    "A#": "Bb",
    "Bb": "A#",
    "B": "Cb",
    "Cb": "B",
}
_VALID_KEYS = frozenset(
    [
        "A",
        "A#m",
        "Ab",
        "Abm",
        "Am",
        "B",
        "Bb",
        "Bbm",
        "Bm",
        "C",
        "C#",
        "C#m",
        "Cb",
        "Cm",
        "D",
        "D#m",
        "Db",
        "Dm",
        "E",
        "Eb",
        "Ebm",
        "Em",
        "F",
        "F#",
        "F#m",
        "Fm",
        "G",
        "G#m",
        "Gb",
        "Gm",
    ]
)


def _key_signature(key: str | None) -> str | None:
    """A mido key name for "C", "A minor", "f#m", "Bb major" (lowercase tonic = minor), or None."""
    if not key:
        return None
    m = _KEY_RE.match(key)
    if m is None:
        return None
    tonic = m.group(1).upper() + {"♯": "#", "♭": "b"}.get(m.group(2), m.group(2))
    mode = (m.group(3) or "").lower()
    minor = mode in ("m", "min", "minor") or (not mode and m.group(1).islower())
    if m.group(3) == "M":
        minor = False
    for name in (tonic, _ENHARMONIC.get(tonic)):
        if name and (name + ("m" if minor else "")) in _VALID_KEYS:
            return name + ("m" if minor else "")
    return None
