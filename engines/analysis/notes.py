"""MIDI bytes -> numpy note arrays, tempo map, time signatures and bar grid.

symusic does the parsing (C++, well under a millisecond for a 10-minute file); everything after that
is vectorised numpy, so no Python loop ever runs per note.  Times are kept in ticks (exact integers,
cheap to sort) and converted to seconds and quarter-note beats through the tempo map.
"""

from __future__ import annotations

import io
import struct
from collections import deque
from dataclasses import dataclass
from functools import cached_property
from typing import cast

import mido
import numpy as np
import symusic
from numpy.typing import NDArray
from symusic.core import ScoreTick

from engines.analysis.errors import AnalysisError

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]
BoolArr = NDArray[np.bool_]

DEFAULT_MSPQ = 500_000  # 120 bpm: the MIDI default when a file has no set_tempo
UNMATCHED_NOTE_SECONDS = 0.25  # a note-on that never gets its note-off lasts 250 ms (AMT rule)

# symusic drops note-ons that never get a note-off.  To notice that without a second (Python) pass
# over the events, every track gets a note-off for each (channel, pitch) far past its end: a dropped
# note-on then comes back as a note at least this long, and only then the slow recovery runs.
_SENTINEL_DELTA = 0x0FFFFFFF  # the largest delta time a MIDI variable-length quantity holds
_EOT = b"\xff\x2f\x00"
_NOOP_META = b"\xff\x7f\x00"  # empty sequencer-specific event: symusic ignores it


@dataclass(frozen=True, slots=True)
class TempoMap:
    """Piecewise-constant tempo: change points in ticks, their times in seconds, and tempo."""

    tpq: int
    ticks: I64
    seconds: F64
    mspq: F64  # microseconds per quarter note

    @property
    def bpm(self) -> F64:
        return 60_000_000.0 / self.mspq

    def to_seconds(self, ticks: NDArray[np.int64] | NDArray[np.float64]) -> F64:
        if self.ticks.shape[0] == 1:  # constant tempo: skip the search
            const: F64 = ticks * (self.mspq[0] / (1e6 * self.tpq))
            return const
        idx = np.searchsorted(self.ticks, ticks, side="right") - 1
        np.clip(idx, 0, None, out=idx)
        return self.seconds[idx] + (ticks - self.ticks[idx]) * (self.mspq[idx] / (1e6 * self.tpq))

    def tick_to_seconds(self, tick: float) -> float:
        return float(self.to_seconds(np.array([tick], dtype=np.float64))[0])

    def to_ticks(self, seconds: F64) -> F64:
        """Inverse of ``to_seconds`` (fractional ticks)."""
        idx = np.searchsorted(self.seconds, seconds, side="right") - 1
        np.clip(idx, 0, None, out=idx)
        out: F64 = self.ticks[idx] + (seconds - self.seconds[idx]) * (1e6 * self.tpq / self.mspq[idx])
        return out


@dataclass(frozen=True)
class NoteArrays:
    """One row per note, sorted by onset tick (then instrument index), unless parsed with
    ``parse_midi(..., sort_notes=False)`` (then grouped by track).

    Ticks are stored; seconds and beats are derived on first use (cached), because the hot
    metadata path needs neither.
    """

    onset_ticks: I64
    duration_ticks: I64
    pitch: I64
    velocity: I64
    program: I64
    is_drum: BoolArr
    track: I64  # index into ParsedMidi.instruments
    tempo: TempoMap

    def __len__(self) -> int:
        return int(self.pitch.shape[0])

    @cached_property
    def onset_s(self) -> F64:
        return self.tempo.to_seconds(self.onset_ticks)

    @cached_property
    def duration_s(self) -> F64:
        out: F64 = self.tempo.to_seconds(self.onset_ticks + self.duration_ticks) - self.onset_s
        return out

    @cached_property
    def onset_beats(self) -> F64:
        """Quarter notes from the start."""
        out: F64 = self.onset_ticks / float(self.tempo.tpq)
        return out

    @cached_property
    def duration_beats(self) -> F64:
        out: F64 = self.duration_ticks / float(self.tempo.tpq)
        return out

    def select(self, mask: BoolArr) -> NoteArrays:
        """The notes where ``mask`` is true, order kept."""
        return NoteArrays(
            onset_ticks=self.onset_ticks[mask],
            duration_ticks=self.duration_ticks[mask],
            pitch=self.pitch[mask],
            velocity=self.velocity[mask],
            program=self.program[mask],
            is_drum=self.is_drum[mask],
            track=self.track[mask],
            tempo=self.tempo,
        )


@dataclass(frozen=True, slots=True)
class TimeSignature:
    tick: int
    seconds: float
    numerator: int
    denominator: int
    bar: int  # 0-based index of the bar it starts

    @property
    def quarters_per_bar(self) -> float:
        return self.numerator * 4.0 / self.denominator

    @property
    def label(self) -> str:
        return f"{self.numerator}/{self.denominator}"


@dataclass(frozen=True, slots=True)
class InstrumentTrack:
    index: int
    name: str
    program: int
    is_drum: bool
    note_count: int


@dataclass(frozen=True, slots=True)
class ParsedMidi:
    tpq: int
    notes: NoteArrays
    tempo: TempoMap
    time_signatures: tuple[TimeSignature, ...]
    bar_starts_ticks: F64  # start tick of every bar, covering the whole piece
    instruments: tuple[InstrumentTrack, ...]
    end_tick: int
    end_s: float
    recovered_notes: int = 0  # note-ons without a note-off, kept with the default length

    @property
    def n_bars(self) -> int:
        return int(self.bar_starts_ticks.shape[0])

    def bar_of_ticks(self, ticks: NDArray[np.int64] | NDArray[np.float64]) -> I64:
        """0-based bar index of each tick position."""
        if len(self.time_signatures) == 1:  # one meter: plain division beats a search
            bar_len = self.time_signatures[0].quarters_per_bar * self.tpq
            div = (ticks // bar_len).astype(np.int64)
            return np.clip(div, 0, self.n_bars - 1)
        idx = np.searchsorted(self.bar_starts_ticks, ticks, side="right") - 1
        return np.clip(idx, 0, self.n_bars - 1).astype(np.int64)

    def bar_position(self, ticks: float) -> float:
        """Fractional bar count at ``ticks`` (0.0 = start of bar 1)."""
        starts = self.bar_starts_ticks
        i = int(np.searchsorted(starts, ticks, side="right")) - 1
        i = min(max(i, 0), self.n_bars - 1)
        ts = self.time_signature_at(starts[i])
        bar_len = ts.quarters_per_bar * self.tpq
        return float(i + (ticks - starts[i]) / bar_len)

    def time_signature_at(self, tick: float) -> TimeSignature:
        current = self.time_signatures[0]
        for ts in self.time_signatures:  # a handful of entries at most
            if ts.tick <= tick:
                current = ts
        return current


def _invalid(message: str, **details: object) -> AnalysisError:
    return AnalysisError(message, code="invalid_midi", details=details)


def validate_container(data: bytes) -> list[tuple[int, int]]:
    """Check the SMF chunk structure before the C++ parser sees it; the (start, end) of each MTrk body.

    symusic accepts some truncated files silently (a bare header parses as an empty score), so the
    chunk lengths and the declared track count are checked here; the loop is per chunk, not per event.
    """
    n = len(data)
    if n < 14:
        raise _invalid("MIDI data too short for a header", reason="too_short", size=n)
    if data[:4] != b"MThd":
        raise _invalid(
            "not a Standard MIDI File: missing 'MThd' header",
            reason="bad_magic",
            found=data[:4].hex(),
        )
    hlen, fmt, ntracks, division = struct.unpack(">IHHH", data[4:14])
    if hlen < 6 or 8 + hlen > n:
        raise _invalid("bad MIDI header length", reason="bad_header_length", header_length=hlen)
    if fmt not in (0, 1, 2):
        raise _invalid(f"unknown MIDI format {fmt}", reason="bad_format", format=fmt)
    if division & 0x8000:
        raise AnalysisError(
            "SMPTE time division is not supported",
            code="unsupported_midi",
            details={"reason": "smpte_division", "division": division},
        )
    if division == 0:
        raise _invalid("ticks per quarter note is 0", reason="zero_division")
    pos, found, chunk = 8 + hlen, 0, 0
    spans: list[tuple[int, int]] = []
    while pos < n:
        if pos + 8 > n:
            raise _invalid(
                "truncated chunk header",
                reason="truncated_chunk_header",
                offset=pos,
                chunk=chunk,
                available_bytes=n - pos,
            )
        kind = data[pos : pos + 4]
        (length,) = struct.unpack(">I", data[pos + 4 : pos + 8])
        if pos + 8 + length > n:
            raise _invalid(
                f"truncated {kind.decode('latin-1')!r} chunk {chunk}: "
                f"declares {length} bytes, {n - pos - 8} available",
                reason="truncated_chunk",
                chunk=chunk,
                track=found,
                offset=pos,
                declared_length=length,
                available_bytes=n - pos - 8,
            )
        if kind == b"MTrk":
            found += 1
            spans.append((pos + 8, pos + 8 + length))
        pos += 8 + length
        chunk += 1
    if found < ntracks:
        raise _invalid(
            f"truncated: header declares {ntracks} tracks, found {found}",
            reason="missing_tracks",
            declared_tracks=ntracks,
            found_tracks=found,
        )
    return spans


def _channel_sentinels(channel: int) -> bytes:
    """Note-offs for all 128 pitches of one channel, zero deltas between them (running status)."""
    return b"\x00".join(
        (bytes((0x80 | channel,)) if pitch == 0 else b"") + bytes((pitch, 0)) for pitch in range(128)
    )


_CHANNEL_SENTINELS = tuple(_channel_sentinels(ch) for ch in range(16))
_NOTE_ON_STATUS = tuple(bytes((0x90 | ch,)) for ch in range(16))
_SENTINEL_START = b"\xff\xff\xff\x7f"  # first delta: _SENTINEL_DELTA


def _sentinel_block(data: bytes, start: int, end: int) -> bytes:
    """Sentinel note-offs for the channels a track may play notes on, b"" if none.

    A note-on on channel c needs a 0x9c status byte somewhere in its track (running status only
    repeats one), so the channels whose status byte occurs are a superset of those with note-ons;
    the byte search (memchr) costs far less than parsing 16 x 128 sentinels per track.
    """
    channels = [ch for ch in range(16) if data.find(_NOTE_ON_STATUS[ch], start, end) >= 0]
    if not channels:
        return b""
    return _SENTINEL_START + b"\x00".join(_CHANNEL_SENTINELS[ch] for ch in channels)


def _with_sentinels(data: bytes, spans: list[tuple[int, int]]) -> bytes:
    """``data`` with the sentinel note-offs in every track (before its end-of-track event).

    symusic stops reading a track at end-of-track, so the block goes in front of it: the EOT's own
    delta now times an empty meta event, the block follows far later, then a fresh EOT.
    """
    parts: list[bytes] = []
    done = 0
    for start, end in spans:
        block = _sentinel_block(data, start, end)
        if not block:
            continue  # no note-on can be in this track: nothing to recover
        body_end = end - 3 if data[end - 3 : end] == _EOT else end
        added = block + b"\x00" + _EOT
        if body_end != end:
            added = _NOOP_META + added
        parts += (data[done : start - 4], struct.pack(">I", end - start + len(added) - (end - body_end)),
                  data[start:body_end], added)
        done = end
    parts.append(data[done:])
    return b"".join(parts)


def _parse_score(data: bytes) -> ScoreTick:
    try:
        return cast(ScoreTick, symusic.Score.from_midi(data))  # tick-based unless asked otherwise
    except (RuntimeError, ValueError) as exc:
        raise _invalid(f"unreadable MIDI: {exc}", reason="parse_error", parser_message=str(exc)) from exc


@dataclass(frozen=True, slots=True)
class _Unmatched:
    """Note-ons that never got a note-off, from a Python pass over the events (rare, slow path)."""

    tick: I64
    pitch: I64
    velocity: I64
    program: I64
    is_drum: BoolArr
    track_name: list[str]


def _unmatched_note_ons(data: bytes) -> _Unmatched | None:
    """Replays symusic's matching (FIFO per channel and pitch within a track, program taken at the
    note-on) and returns the note-ons left open at the end of their track."""
    try:
        mid = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except (OSError, ValueError, EOFError, KeyError, IndexError):
        return None  # symusic read it but mido cannot: keep what symusic found
    rows: list[tuple[int, int, int, int, bool, str]] = []
    for track in mid.tracks:
        tick, name = 0, ""
        programs = [0] * 16
        pending: dict[tuple[int, int], deque[tuple[int, int, int]]] = {}
        for msg in track:
            tick += msg.time
            kind = msg.type
            if kind == "note_on" and msg.velocity > 0:
                key = (msg.channel, msg.note)
                pending.setdefault(key, deque()).append((tick, msg.velocity, programs[msg.channel]))
            elif kind in ("note_on", "note_off"):
                queue = pending.get((msg.channel, msg.note))
                if queue:
                    queue.popleft()
            elif kind == "program_change":
                programs[msg.channel] = msg.program
            elif kind == "track_name" and not name:
                name = str(msg.name)
            elif kind == "end_of_track":
                break
        for (channel, pitch), queue in pending.items():
            rows += [(t, pitch, v, prog, channel == 9, name) for t, v, prog in queue]
    if not rows:
        return None
    rows.sort(key=lambda r: r[0])
    return _Unmatched(
        tick=np.array([r[0] for r in rows], dtype=np.int64),
        pitch=np.array([r[1] for r in rows], dtype=np.int64),
        velocity=np.array([r[2] for r in rows], dtype=np.int64),
        program=np.array([r[3] for r in rows], dtype=np.int64),
        is_drum=np.array([r[4] for r in rows], dtype=np.bool_),
        track_name=[r[5] for r in rows],
    )


NoteParts = list[dict[str, NDArray[np.generic]]]


def _load_score(data: bytes) -> tuple[ScoreTick, NoteParts, _Unmatched | None]:
    """Parsed score, its tracks' note arrays, and the note-ons symusic dropped (None: none)."""
    spans = validate_container(data)
    score = _parse_score(_with_sentinels(data, spans))
    parts: NoteParts = [t.notes.numpy() for t in score.tracks]
    if not any(p["duration"].shape[0] and p["duration"].max() >= _SENTINEL_DELTA for p in parts):
        return score, parts, None  # the usual case: every note-on was matched, one C++ pass in all
    score = _parse_score(data)
    return score, [t.notes.numpy() for t in score.tracks], _unmatched_note_ons(data)


def _tempo_map(score: ScoreTick, tpq: int) -> TempoMap:
    raw = score.tempos.numpy()
    ticks = raw["time"].astype(np.int64)
    mspq = raw["mspq"].astype(np.float64)
    if ticks.size == 0 or ticks[0] > 0:
        ticks = np.concatenate(([0], ticks))
        mspq = np.concatenate(([float(DEFAULT_MSPQ)], mspq))
    # Several tempo events on one tick: the last one rules (the order symusic keeps).
    keep = np.append(ticks[1:] != ticks[:-1], True)
    ticks, mspq = ticks[keep], mspq[keep]
    seg_s = np.diff(ticks) * (mspq[:-1] / (1e6 * tpq))
    seconds = np.concatenate(([0.0], np.cumsum(seg_s)))
    return TempoMap(tpq=tpq, ticks=ticks, seconds=seconds, mspq=mspq)


def _bar_grid(
    score: ScoreTick, tpq: int, end_tick: int, tempo: TempoMap
) -> tuple[tuple[TimeSignature, ...], F64]:
    raw = score.time_signatures.numpy()
    entries = [
        (int(t), int(nu), int(de))
        for t, nu, de in zip(raw["time"], raw["numerator"], raw["denominator"], strict=True)
        if nu > 0 and de > 0
    ]
    if not entries or entries[0][0] > 0:
        entries.insert(0, (0, 4, 4))
    dedup: list[tuple[int, int, int]] = []
    for e in entries:
        if dedup and dedup[-1][0] == e[0]:
            dedup[-1] = e  # same tick: last wins
        elif not dedup or dedup[-1][1:] != e[1:]:
            dedup.append(e)
    starts: list[F64] = []
    sigs: list[TimeSignature] = []
    n_bars = 0
    for i, (tick, nu, de) in enumerate(dedup):
        bar_len = nu * 4.0 * tpq / de
        stop = dedup[i + 1][0] if i + 1 < len(dedup) else max(end_tick, tick + 1)
        seg = np.arange(tick, stop, bar_len, dtype=np.float64)
        if seg.size == 0:
            continue
        sigs.append(TimeSignature(tick, tempo.tick_to_seconds(tick), nu, de, n_bars))
        starts.append(seg)
        n_bars += seg.size
    return tuple(sigs), np.concatenate(starts)


def _track_of(score_tracks: list[tuple[str, int, bool]], name: str, program: int,
              is_drum: bool) -> int:
    """symusic track holding notes of this name/program/kind (it makes one per channel and
    program, even for a note-on that never closes), or -1."""
    for i, key in enumerate(score_tracks):
        if key == (name, program, is_drum):
            return i
    for i, (_, prog, drum) in enumerate(score_tracks):
        if (prog, drum) == (program, is_drum):
            return i
    return -1


def _note_arrays(
    score: ScoreTick, parts: NoteParts, tempo: TempoMap, extra: _Unmatched | None,
    sort_notes: bool = True,
) -> tuple[NoteArrays, list[InstrumentTrack]]:
    tracks = list(score.tracks)  # each access to score.tracks builds new wrappers
    counts = [int(p["pitch"].shape[0]) for p in parts]
    instruments = [InstrumentTrack(i, str(t.name), int(t.program), bool(t.is_drum), counts[i])
                   for i, t in enumerate(tracks)]
    onsets = [p["time"] for p in parts]
    durs = [p["duration"] for p in parts]
    pitches = [p["pitch"] for p in parts]
    vels = [p["velocity"] for p in parts]
    track_parts = [np.full(c, i, dtype=np.int64) for i, c in enumerate(counts)]
    if extra is not None:
        keys = [(i.name, i.program, i.is_drum) for i in instruments]
        idx = np.empty(extra.tick.shape[0], dtype=np.int64)
        for j, (name, prog, drum) in enumerate(
            zip(extra.track_name, extra.program.tolist(), extra.is_drum.tolist(), strict=True)
        ):
            k = _track_of(keys, name, prog, drum)
            if k < 0:
                k = len(instruments)
                instruments.append(InstrumentTrack(k, name, prog, drum, 0))
                keys.append((name, prog, drum))
            idx[j] = k
        end = tempo.to_ticks(tempo.to_seconds(extra.tick) + UNMATCHED_NOTE_SECONDS)
        onsets.append(extra.tick)
        durs.append(np.maximum(np.rint(end).astype(np.int64) - extra.tick, 1))
        pitches.append(extra.pitch)
        vels.append(extra.velocity)
        track_parts.append(idx)
        added = np.bincount(idx, minlength=len(instruments))
        instruments = [InstrumentTrack(i.index, i.name, i.program, i.is_drum,
                                       i.note_count + int(added[i.index])) for i in instruments]
    programs = np.array([i.program for i in instruments], dtype=np.int64)
    drums = np.array([i.is_drum for i in instruments], dtype=np.bool_)
    total = sum(int(o.shape[0]) for o in onsets)
    if total:
        onset = np.concatenate(onsets).astype(np.int64)
        dur = np.concatenate(durs).astype(np.int64)
        # int8 in symusic: widen before any arithmetic; & 0x7F guards against sign wrap.
        pitch = np.concatenate(pitches).astype(np.int64) & 0x7F
        vel = np.concatenate(vels).astype(np.int64) & 0x7F
        track_idx = np.concatenate(track_parts)
    else:
        onset = dur = pitch = vel = track_idx = np.zeros(0, dtype=np.int64)
    if sort_notes and (len(parts) > 1 or extra is not None):
        # Tracks come time-sorted, so a stable sort merges runs (fast) and keeps track order on ties.
        order = np.argsort(onset, kind="stable")
        onset, dur, pitch, vel, track_idx = (a[order] for a in (onset, dur, pitch, vel, track_idx))
    notes = NoteArrays(
        onset_ticks=onset,
        duration_ticks=np.maximum(dur, 0),
        pitch=pitch,
        velocity=vel,
        program=programs[track_idx] if total else np.zeros(0, dtype=np.int64),
        is_drum=drums[track_idx] if total else np.zeros(0, dtype=np.bool_),
        track=track_idx,
        tempo=tempo,
    )
    return notes, instruments


def parse_midi(data: bytes, *, sort_notes: bool = True) -> ParsedMidi:
    """Parse Standard MIDI File bytes; raises ``AnalysisError`` (code ``invalid_midi``) if unreadable.

    ``sort_notes=False`` leaves the notes grouped by track (each track time-sorted) instead of
    sorted by onset: for callers whose statistics ignore note order (``compute_metadata``), it
    saves the argsort and its gathers.
    """
    score, parts, extra = _load_score(bytes(data))
    tpq = int(score.tpq)
    tempo = _tempo_map(score, tpq)
    notes, instruments = _note_arrays(score, parts, tempo, extra, sort_notes)
    note_end = int((notes.onset_ticks + notes.duration_ticks).max()) if len(notes) else 0
    end_tick = max(int(score.end()), note_end)
    sigs, bar_starts = _bar_grid(score, tpq, end_tick, tempo)
    return ParsedMidi(
        tpq=tpq,
        notes=notes,
        tempo=tempo,
        time_signatures=sigs,
        bar_starts_ticks=bar_starts,
        instruments=tuple(instruments),
        end_tick=end_tick,
        end_s=tempo.tick_to_seconds(end_tick),
        recovered_notes=0 if extra is None else int(extra.tick.shape[0]),
    )
