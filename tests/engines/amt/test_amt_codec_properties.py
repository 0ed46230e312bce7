"""Property tests of the codec on randomly generated MIDI files (hypothesis + mido).

"Clean" files satisfy the conditions under which the reference format round-trips exactly:
every note has a note-off, lasts < 10 s, never overlaps a note of the same pitch on the
same instrument, each instrument has its own track/channel, and onsets of different
instruments never fall in the same 10 ms tick. "Messy" files break all of that; for them
only the weaker invariants that truly hold are checked.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import mido
from amt_fixture_data import midi_path
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engines.amt import codec, ops
from engines.amt import vocab as V
from engines.amt.errors import CodecError

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@dataclass
class Note:
    track: int
    on: int  # ticks
    off: int | None  # ticks; None = no note-off
    pitch: int
    velocity: int


def _write(
    tpb: int,
    tempos: list[tuple[int, int]],
    channels: list[int],
    programs: list[int],
    notes: list[Note],
    off_as_velocity0: bool,
    noise: bool,
) -> bytes:
    mid = mido.MidiFile(type=1, ticks_per_beat=tpb)
    conductor = mido.MidiTrack()
    last = 0
    for tick, tempo in sorted(tempos):
        conductor.append(mido.MetaMessage("set_tempo", tempo=tempo, time=tick - last))
        last = tick
    mid.tracks.append(conductor)
    for k, (channel, program) in enumerate(zip(channels, programs, strict=True)):
        # (tick, order, message): at one tick, offs of earlier notes come before onsets and
        # the off of a zero-length note comes after its own onset
        msgs: list[tuple[int, int, mido.Message]] = [
            (0, -1, mido.Message("program_change", channel=channel, program=program))
        ]
        for n in notes:
            if n.track != k:
                continue
            msgs.append(
                (
                    n.on,
                    1,
                    mido.Message("note_on", channel=channel, note=n.pitch, velocity=n.velocity),
                )
            )
            if n.off is not None:
                if off_as_velocity0:
                    off = mido.Message("note_on", channel=channel, note=n.pitch, velocity=0)
                else:
                    off = mido.Message("note_off", channel=channel, note=n.pitch)
                msgs.append((n.off, 0 if n.off > n.on else 2, off))
            if noise:
                msgs.append(
                    (
                        n.on,
                        1,
                        mido.Message("control_change", channel=channel, control=64, value=127),
                    )
                )
                msgs.append((n.on, 1, mido.Message("pitchwheel", channel=channel, pitch=100)))
        msgs.sort(key=lambda m: (m[0], m[1]))
        track = mido.MidiTrack()
        last = 0
        for tick, _order, msg in msgs:
            track.append(msg.copy(time=tick - last))
            last = tick
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@st.composite
def clean_midi(draw: st.DrawFn) -> bytes:
    tpb = draw(st.sampled_from([96, 120, 384, 480, 960]))
    tempos = [(0, draw(st.integers(300_000, 1_200_000)))]
    for _ in range(draw(st.integers(0, 3))):
        tempos.append((draw(st.integers(1, 20 * tpb)), draw(st.integers(300_000, 1_200_000))))
    ms_per_tick_fast = min(t for _, t in tempos) / (1000 * tpb)
    ms_per_tick_slow = max(t for _, t in tempos) / (1000 * tpb)
    # >= 15 ms between slots keeps onsets of different slots in different 10 ms ticks
    spacing = math.ceil(15 / ms_per_tick_fast) + draw(st.integers(0, 50))
    max_dur = int(9_800 / ms_per_tick_slow)  # < 9.9 s whatever the tempo
    instruments = draw(st.lists(st.integers(0, 128), min_size=1, max_size=5, unique=True))
    channels, programs, next_ch = [], [], 0
    for instr in instruments:
        if instr == V.DRUMS:
            channels.append(V.DRUM_CHANNEL)
            programs.append(0)
        else:
            if next_ch == V.DRUM_CHANNEL:
                next_ch += 1
            channels.append(next_ch)
            programs.append(instr)
            next_ch += 1
    slots = draw(st.lists(st.integers(0, 400), min_size=1, max_size=40, unique=True))
    notes: list[Note] = []
    busy_until: dict[tuple[int, int], int] = {}
    for slot in sorted(slots):
        track = draw(st.integers(0, len(instruments) - 1))
        for pitch in draw(st.lists(st.integers(0, 127), min_size=1, max_size=3, unique=True)):
            on = slot * spacing
            off = on + draw(st.integers(0, max_dur))
            if busy_until.get((track, pitch), -1) > on:
                continue  # would overlap a sounding note of the same pitch
            busy_until[(track, pitch)] = off
            notes.append(Note(track, on, off, pitch, draw(st.integers(1, 127))))
    return _write(tpb, tempos, channels, programs, notes, draw(st.booleans()), draw(st.booleans()))


@st.composite
def messy_midi(draw: st.DrawFn) -> bytes:
    tpb = draw(st.sampled_from([48, 96, 480]))
    tempos = [
        (draw(st.integers(0, 4 * tpb)), draw(st.integers(200_000, 2_000_000))) for _ in range(3)
    ]
    n_tracks = draw(st.integers(1, 4))
    channels = draw(st.lists(st.integers(0, 15), min_size=n_tracks, max_size=n_tracks))
    programs = draw(
        st.lists(st.sampled_from([0, 0, 1, 40, 127]), min_size=n_tracks, max_size=n_tracks)
    )
    notes = [
        Note(
            track=draw(st.integers(0, n_tracks - 1)),
            on=(on := draw(st.integers(0, 40 * tpb))),
            off=None if draw(st.integers(0, 9)) == 0 else on + draw(st.integers(0, 30 * tpb)),
            pitch=draw(st.sampled_from([0, 60, 61, 127])),
            velocity=draw(st.integers(1, 127)),
        )
        for _ in range(draw(st.integers(0, 30)))
    ]
    return _write(tpb, tempos, channels, programs, notes, draw(st.booleans()), False)


def _times(events: list[int]) -> list[int]:
    return events[0::3]


def _well_formed(events: list[int]) -> None:
    assert len(events) % 3 == 0
    for time, dur, note in ops.triples(events):
        assert time >= 0
        assert V.DUR_OFFSET <= dur < V.DUR_OFFSET + V.MAX_DUR
        assert V.NOTE_OFFSET <= note < V.NOTE_OFFSET + V.MAX_NOTE


@SETTINGS
@given(clean_midi())
def test_clean_files_round_trip_exactly(data: bytes) -> None:
    events = codec.midi_to_events(data)
    _well_formed(events)
    assert _times(events) == sorted(_times(events))
    again = codec.midi_to_events(codec.midi_to_bytes(codec.events_to_midi(events)))
    assert again == events


@SETTINGS
@given(messy_midi())
def test_messy_files_keep_the_weaker_invariants(data: bytes) -> None:
    events = codec.midi_to_events(data)
    _well_formed(events)
    assert _times(events) == sorted(_times(events))
    second = codec.midi_to_events(codec.midi_to_bytes(codec.events_to_midi(events)))
    _well_formed(second)
    # every onset survives with its instrument and pitch; only pairing/order may change
    assert sorted(zip(events[0::3], events[2::3], strict=True)) == sorted(
        zip(second[0::3], second[2::3], strict=True)
    )
    # after one pass through the reference writer the format is a fixed point
    third = codec.midi_to_events(codec.midi_to_bytes(codec.events_to_midi(second)))
    assert third == second


@SETTINGS
@given(clean_midi(), st.data())
def test_anticipate_then_split_gives_back_events_and_controls(
    data: bytes, rnd: st.DataObject
) -> None:
    events = codec.midi_to_events(data)
    instruments = sorted(ops.get_instruments(events))
    chosen = rnd.draw(st.lists(st.sampled_from(instruments), unique=True))
    kept, controls = ops.extract_instruments(events, chosen)
    padded = ops.pad(kept, ops.max_time(events))
    tokens, leftover = ops.anticipate(padded, controls)
    if not padded:  # every note became a control: nothing to interleave them with
        assert (tokens, leftover) == ([], controls)
        return
    assert leftover == []
    assert ops.split(tokens) == (padded, controls)
    # each control sits right after the first event whose onset is >= its time - delta
    previous_onsets = [0, 0]  # onsets of the last two events written before this point
    for time, _dur, note in ops.triples(tokens):
        if note >= V.CONTROL_OFFSET:
            ctime = time - V.ATIME_OFFSET
            assert previous_onsets[-1] >= ctime - V.DELTA_TICKS
        else:
            previous_onsets = [previous_onsets[-1], time]
    # and de-interleaving by combine gives the original notes back
    assert sorted(ops.triples(ops.combine(ops.unpad(ops.split(tokens)[0]), controls))) == sorted(
        ops.triples(events)
    )


@settings(max_examples=80, deadline=None)
@given(st.integers(0, 10_000), st.sampled_from(["bach_bwv66.6", "synthetic_drums_tempo"]))
def test_truncated_midi_raises_codec_error_only(cut: int, name: str) -> None:
    data = midi_path(name).read_bytes()
    data = data[: cut % len(data)]
    try:
        events = codec.midi_to_events(data)
    except CodecError as exc:
        assert exc.code == "amt_codec_error" and exc.message
    else:
        _well_formed(events)


@settings(max_examples=80, deadline=None)
@given(st.binary(max_size=200))
def test_garbage_bytes_raise_codec_error_only(data: bytes) -> None:
    try:
        events = codec.midi_to_events(b"MThd" + data)
    except CodecError as exc:
        assert exc.message
    else:
        _well_formed(events)
