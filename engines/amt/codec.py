"""MIDI <-> AMT arrival-time tokens, bit-compatible with the reference implementation.

Pipeline: MIDI file -> compound 5-tuples (time, duration, pitch, instrument, velocity)
-> arrival-time events (flat ``list[int]`` of (time, duration, note) triples) and back:
events -> compound -> ``mido.MidiFile`` written the way the reference writer does it.
The quirks kept on purpose (they are what the model was trained on and what the golden
vectors pin) are described in ``shared/AMT-FORMAT.md`` §1; each is commented where it is
implemented.
"""

from __future__ import annotations

import io
from collections import defaultdict, deque
from collections.abc import Sequence
from pathlib import Path
from typing import TypeAlias

import mido

from engines.amt import vocab as V
from engines.amt.errors import CodecError

Tokens: TypeAlias = list[int]
MidiSource: TypeAlias = "str | Path | bytes | bytearray | mido.MidiFile"

# Exceptions mido raises on malformed input; turned into CodecError at this boundary.
_MIDO_ERRORS = (OSError, EOFError, ValueError, KeyError, IndexError, TypeError)


# ----------------------------------------------------------------------------------------
# reading
# ----------------------------------------------------------------------------------------


def load_midi(source: MidiSource) -> mido.MidiFile:
    """Parse a MIDI file from a path, raw bytes or an already-parsed ``MidiFile``."""
    if isinstance(source, mido.MidiFile):
        return source
    try:
        if isinstance(source, bytes | bytearray):
            return mido.MidiFile(file=io.BytesIO(bytes(source)))
        path = Path(source)
        if not path.is_file():
            raise CodecError(f"MIDI file not found: {path}", details={"path": str(path)})
        return mido.MidiFile(str(path))
    except _MIDO_ERRORS as exc:
        raise CodecError(f"invalid or truncated MIDI data: {exc}") from exc


def _timed_messages(midi: mido.MidiFile) -> list[mido.Message]:
    """All messages in merged time order with ``time`` = delta seconds (mido applies tempo).

    Materialised up front so that a malformed file fails here, inside one try block.
    """
    if midi.type == 2:
        raise CodecError("MIDI type 2 (asynchronous tracks) has no single timeline")
    try:
        return list(midi)
    except _MIDO_ERRORS as exc:
        raise CodecError(f"cannot read MIDI messages: {exc}") from exc


def midi_to_compound(source: MidiSource) -> Tokens:
    """MIDI -> flat compound 5-tuples (time, duration or -1, pitch, instrument, velocity)."""
    midi = load_midi(source)
    out: Tokens = []
    programs: defaultdict[int, int] = defaultdict(int)  # channel -> last program (default 0)
    # FIFO of open onsets per (instrument, pitch, channel): (compound index, onset seconds)
    open_notes: defaultdict[tuple[int, int, int], deque[tuple[int, float]]] = defaultdict(deque)
    now = 0.0  # seconds; accumulated exactly like the reference so rounding matches
    for msg in _timed_messages(midi):
        now += msg.time
        if msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type in ("note_on", "note_off"):
            # The instrument is looked up at message time, so a program change between a
            # note's on and off makes the off miss (the note then keeps the default length).
            instr = V.DRUMS if msg.channel == V.DRUM_CHANNEL else programs[msg.channel]
            key = (instr, msg.note, msg.channel)
            if msg.type == "note_on" and msg.velocity > 0:
                open_notes[key].append((len(out) // V.COMPOUND_SIZE, now))
                out.extend((round(V.TIME_RESOLUTION * now), -1, msg.note, instr, msg.velocity))
            elif open_notes[key]:
                idx, onset = open_notes[key].popleft()
                # rounded on its own, not off-tick minus on-tick (reference behaviour)
                out[V.COMPOUND_SIZE * idx + 1] = round(V.TIME_RESOLUTION * (now - onset))
            # an unmatched note-off is ignored
    return out


def compound_to_events_with_stats(compound: Sequence[int]) -> tuple[Tokens, int]:
    """Compound -> events, plus how many durations were truncated to 999 ticks."""
    if len(compound) % V.COMPOUND_SIZE:
        raise CodecError("compound sequence length is not a multiple of 5")
    events: Tokens = []
    truncations = 0
    for j in range(0, len(compound), V.COMPOUND_SIZE):
        time, dur, pitch, instr, _velocity = compound[j : j + V.COMPOUND_SIZE]
        if time < 0 or not 0 <= pitch < V.MAX_PITCH or not 0 <= instr < V.MAX_INSTR:
            raise CodecError(f"invalid compound tuple at {j // 5}: {compound[j : j + 5]}")
        if dur >= V.MAX_DUR:
            truncations += 1
        dur = V.UNKNOWN_DURATION_TICKS if dur == -1 else min(dur, V.MAX_DUR - 1)
        events.extend(
            (V.TIME_OFFSET + time, V.DUR_OFFSET + dur, V.NOTE_OFFSET + V.MAX_PITCH * instr + pitch)
        )
    return events, truncations


def compound_to_events(compound: Sequence[int]) -> Tokens:
    """Compound 5-tuples -> arrival-time events (velocity dropped, durations capped)."""
    return compound_to_events_with_stats(compound)[0]


def midi_to_events(source: MidiSource) -> Tokens:
    """MIDI -> arrival-time events in absolute ticks (no flag token, no RESTs)."""
    return compound_to_events(midi_to_compound(source))


# ----------------------------------------------------------------------------------------
# writing
# ----------------------------------------------------------------------------------------


def _strip_flag(tokens: Sequence[int]) -> Sequence[int]:
    """Accept a model sequence with its leading AUTOREGRESS/ANTICIPATE flag."""
    if len(tokens) % V.EVENT_SIZE == 1 and tokens[0] in (V.AUTOREGRESS, V.ANTICIPATE):
        return tokens[1:]
    return tokens


def events_to_compound(tokens: Sequence[int]) -> Tokens:
    """Events (controls, RESTs and SEPARATORs allowed) -> compound tuples at velocity 72.

    Controls become plain events, RESTs are dropped and every segment after a SEPARATOR
    triple is shifted by the previous segment's end (max onset + duration), as the reference
    does for synthesis.
    """
    tokens = _strip_flag(tokens)
    if len(tokens) % V.EVENT_SIZE:
        raise CodecError(f"token count {len(tokens)} is not a multiple of 3")
    out: Tokens = []
    offset = 0  # accumulated ends of earlier segments
    segment_end = 0
    for j in range(0, len(tokens), V.EVENT_SIZE):
        time, dur, note = tokens[j : j + V.EVENT_SIZE]
        if note == V.SEPARATOR:
            if time != V.SEPARATOR or dur != V.SEPARATOR:
                raise CodecError(f"incomplete SEPARATOR triple at event {j // 3}")
            offset += segment_end
            segment_end = 0
            continue
        if note == V.REST:
            continue
        # a triple is a control when its note is one; shift the whole triple back
        shift = V.CONTROL_OFFSET if note >= V.CONTROL_OFFSET else 0
        time, dur, note = time - shift, dur - shift, note - shift
        if time < 0 or not 0 <= dur - V.DUR_OFFSET < V.MAX_DUR:
            raise CodecError(f"invalid time/duration token in event {j // 3}: {tokens[j : j + 3]}")
        if not 0 <= note - V.NOTE_OFFSET < V.MAX_NOTE:
            raise CodecError(f"invalid note token in event {j // 3}: {tokens[j : j + 3]}")
        time -= V.TIME_OFFSET
        dur -= V.DUR_OFFSET
        note -= V.NOTE_OFFSET
        segment_end = max(segment_end, time + dur)
        instr, pitch = divmod(note, V.MAX_PITCH)
        out.extend((time + offset, dur, pitch, instr, V.DEFAULT_VELOCITY))
    return out


class _TrackWriter:
    """One track per instrument in order of first onset, with the reference's channel rule.

    Channels are handed out 0, 1, 2, ... skipping 9; the drum track always sits on channel 9
    but still consumes a counter slot (reference quirk, pinned by the fixtures).
    """

    def __init__(self) -> None:
        self.midi = mido.MidiFile(type=1, ticks_per_beat=V.TICKS_PER_BEAT)
        # instrument -> (track, tick of its last message, channel)
        self._tracks: dict[int, tuple[mido.MidiTrack, int, int]] = {}
        self._next_channel = 0

    def has(self, instr: int) -> bool:
        return instr in self._tracks

    def _open(self, instr: int) -> None:
        channel = V.DRUM_CHANNEL if instr == V.DRUMS else self._next_channel
        if channel > 15:
            raise CodecError("more instruments than the 16 MIDI channels can hold")
        track = mido.MidiTrack()
        self.midi.tracks.append(track)
        program = 0 if instr == V.DRUMS else instr
        track.append(mido.Message("program_change", channel=channel, program=program))
        self._tracks[instr] = (track, 0, channel)
        self._next_channel += 1
        if self._next_channel == V.DRUM_CHANNEL:
            self._next_channel += 1

    def note(self, tick: int, instr: int, pitch: int, velocity: int | None) -> None:
        """Append a note-on (``velocity`` given) or a note-off (mido's default velocity 64)."""
        if instr not in self._tracks:
            self._open(instr)
        track, last_tick, channel = self._tracks[instr]
        if velocity is None:
            msg = mido.Message("note_off", channel=channel, note=pitch, time=tick - last_tick)
        else:
            msg = mido.Message(
                "note_on", channel=channel, note=pitch, velocity=velocity, time=tick - last_tick
            )
        track.append(msg)
        self._tracks[instr] = (track, tick, channel)


def compound_to_midi(compound: Sequence[int]) -> mido.MidiFile:
    """Compound tuples -> type-1 MIDI exactly as the reference writer lays it out."""
    if len(compound) % V.COMPOUND_SIZE:
        raise CodecError("compound sequence length is not a multiple of 5")
    # (tick, 0 = onset / 1 = offset, order of appearance, pitch, instrument, velocity):
    # sorting puts onsets before offsets at equal ticks and keeps input order within a kind
    edges: list[tuple[int, int, int, int, int, int]] = []
    for n, j in enumerate(range(0, len(compound), V.COMPOUND_SIZE)):
        time, dur, pitch, instr, vel = compound[j : j + V.COMPOUND_SIZE]
        if time < 0 or dur < 0 or not 0 <= pitch < V.MAX_PITCH or not 0 <= instr < V.MAX_INSTR:
            raise CodecError(f"invalid compound tuple at {n}: {compound[j : j + 5]}")
        if not 0 <= vel < 128:
            raise CodecError(f"invalid velocity {vel} at {n}")
        edges.append((time, 0, n, pitch, instr, vel))
        edges.append((time + dur, 1, n, pitch, instr, vel))
    edges.sort()

    writer = _TrackWriter()
    for tick, kind, _n, pitch, instr, vel in edges:
        writer.note(tick, instr, pitch, vel if kind == 0 else None)
    return writer.midi


def events_to_midi(tokens: Sequence[int]) -> mido.MidiFile:
    """Arrival-time tokens -> reference-format MIDI (50 ticks/beat, no tempo, velocity 72)."""
    return compound_to_midi(events_to_compound(tokens))


def midi_to_bytes(mid: mido.MidiFile) -> bytes:
    """Serialise a ``MidiFile`` to standard MIDI file bytes."""
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


# ----------------------------------------------------------------------------------------
# interarrival ("MIDI-like") encoding of the baseline models
# ----------------------------------------------------------------------------------------


def midi_to_interarrival(source: MidiSource) -> Tokens:
    """MIDI -> time-shift / note-on / note-off tokens (10 ms shifts, capped at 999)."""
    midi = load_midi(source)
    out: Tokens = []
    programs: defaultdict[int, int] = defaultdict(int)
    elapsed = 0.0  # seconds since the last note token
    for msg in _timed_messages(midi):
        elapsed += msg.time
        if msg.type == "program_change":
            programs[msg.channel] = msg.program
        elif msg.type in ("note_on", "note_off"):
            shift = min(round(V.TIME_RESOLUTION * elapsed), V.MAX_INTERARRIVAL - 1)
            if shift > 0:
                out.append(V.MIDI_TIME_OFFSET + shift)
            instr = V.DRUMS if msg.channel == V.DRUM_CHANNEL else programs[msg.channel]
            onset = msg.type == "note_on" and msg.velocity > 0
            base = V.MIDI_START_OFFSET if onset else V.MIDI_END_OFFSET
            out.append(base + V.MAX_PITCH * instr + msg.note)
            elapsed = 0.0
    return out


def interarrival_to_midi(tokens: Sequence[int]) -> mido.MidiFile:
    """Interarrival tokens -> MIDI, with the same track/channel layout as ``compound_to_midi``."""
    writer = _TrackWriter()
    now = 0
    for tok in tokens:
        if tok == V.MIDI_SEPARATOR:
            continue
        if not 0 <= tok < V.MIDI_VOCAB_SIZE:
            raise CodecError(f"invalid interarrival token {tok}")
        if tok < V.MIDI_START_OFFSET:
            now += tok - V.MIDI_TIME_OFFSET
            continue
        onset = tok < V.MIDI_END_OFFSET
        base = V.MIDI_START_OFFSET if onset else V.MIDI_END_OFFSET
        instr, pitch = divmod(tok - base, V.MAX_PITCH)
        if not onset and not writer.has(instr):
            continue  # an offset with no onset on record is dropped
        writer.note(now, instr, pitch, V.DEFAULT_VELOCITY if onset else None)
    return writer.midi
