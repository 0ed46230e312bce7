"""Rendering the arrangement: bar grid, tempo map, cuts with note-offs, silence, tracks."""

from __future__ import annotations

import io
from collections.abc import Callable

import mido
import pytest

from hub.errors import ErrorCode, HubError
from hub.model import Meter, Section, Session, Take
from hub.render import TICKS_PER_BEAT, RenderResult, render_section, render_session

TPB = TICKS_PER_BEAT
Note = tuple[float, float, int]  # onset beat, duration in beats, pitch


def take_midi(
    notes: list[Note],
    *,
    bpm: float = 120.0,
    tpb: int = 96,
    channel: int = 0,
    program: int | None = None,
    extra: list[tuple[float, mido.Message]] | None = None,
    tempo_changes: list[tuple[float, float]] | None = None,
    file_type: int = 1,
) -> bytes:
    """A small MIDI file built with mido: conductor (tempo) + one note track."""
    events: list[tuple[int, int, mido.Message | mido.MetaMessage]] = []
    for start, dur, pitch in notes:
        events.append(
            (
                round(start * tpb),
                1,
                mido.Message("note_on", channel=channel, note=pitch, velocity=90),
            )
        )
        events.append(
            (round((start + dur) * tpb), 0, mido.Message("note_off", channel=channel, note=pitch))
        )
    for beat, msg in extra or []:
        events.append((round(beat * tpb), 1, msg))
    if program is not None:
        events.append((0, -1, mido.Message("program_change", channel=channel, program=program)))
    tempo: list[tuple[int, int, mido.Message | mido.MetaMessage]] = [
        (0, -2, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm)))
    ]
    for beat, new_bpm in tempo_changes or []:
        tempo.append(
            (round(beat * tpb), -2, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(new_bpm)))
        )
    mid = mido.MidiFile(type=file_type, ticks_per_beat=tpb)
    tracks = (
        [sorted(tempo + events, key=lambda e: (e[0], e[1]))]
        if file_type == 0
        else [tempo, sorted(events, key=lambda e: (e[0], e[1]))]
    )
    for evs in tracks:
        track = mido.MidiTrack()
        now = 0
        for tick, _, msg in sorted(evs, key=lambda e: (e[0], e[1])):
            track.append(msg.copy(time=tick - now))
            now = tick
        mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def section(
    sid: str,
    bars: int,
    artifact: str | None = None,
    *,
    tempo: float | None = None,
    key: str | None = None,
) -> Section:
    takes = (Take(id=f"t_{sid}", artifact_id=artifact, status="approved"),) if artifact else ()
    return Section(
        id=sid,
        name=sid,
        bars=bars,
        tempo=tempo,
        key=key,
        takes=takes,
        chosen_take=f"t_{sid}" if artifact else None,
    )


def loader(files: dict[str, bytes]) -> Callable[[str], bytes]:
    return files.__getitem__


def absolute(track: mido.MidiTrack) -> list[tuple[int, mido.Message]]:
    out, now = [], 0
    for msg in track:
        now += msg.time
        out.append((now, msg))
    return out


def notes_on(mid: mido.MidiFile) -> list[tuple[float, int]]:
    """(onset beat, pitch) of every note in the file, sorted."""
    return sorted(
        (tick / TPB, m.note)
        for tr in mid.tracks
        for tick, m in absolute(tr)
        if m.type == "note_on" and m.velocity > 0
    )


def notes_off(mid: mido.MidiFile) -> list[tuple[float, int]]:
    return sorted(
        (tick / TPB, m.note)
        for tr in mid.tracks
        for tick, m in absolute(tr)
        if m.type == "note_off" or (m.type == "note_on" and m.velocity == 0)
    )


def parse(result: RenderResult) -> mido.MidiFile:
    return mido.MidiFile(file=io.BytesIO(result.midi))


@pytest.fixture
def arrangement() -> tuple[Session, dict[str, bytes]]:
    files = {
        # A: 2 bars, fits
        "a": take_midi([(0, 1, 60), (1, 1, 62), (4.5, 0.5, 64)]),
        # B: 1 bar, longer than its section: one note crosses the end, one starts after it
        "b": take_midi([(0, 1, 65), (3, 3, 67), (5, 1, 69)]),
        # D: 2 bars at 60 bpm (section tempo override), shorter than its section
        "d": take_midi([(0, 1, 72)], bpm=60),
    }
    session = Session(
        id="ses_1",
        title="Song",
        tempo=120,
        key="A minor",
        sections=(
            section("A", 2, "a"),
            section("B", 1, "b"),
            section("C", 2),  # no chosen take: silent bars
            section("D", 2, "d", tempo=60),
        ),
    )
    return session, files


def test_type1_file_with_conductor_and_instrument_tracks(
    arrangement: tuple[Session, dict[str, bytes]],
) -> None:
    session, files = arrangement
    result = render_session(session, loader(files))
    mid = parse(result)
    assert mid.type == 1 and mid.ticks_per_beat == 480 and len(mid.tracks) == result.tracks == 2
    conductor = absolute(mid.tracks[0])
    ts = [m for _, m in conductor if m.type == "time_signature"]
    assert [(m.numerator, m.denominator) for m in ts] == [(4, 4)]
    assert [m.key for _, m in conductor if m.type == "key_signature"] == ["Am"]
    assert not any(m.type in ("note_on", "note_off") for _, m in conductor)


def test_sections_land_on_their_bars(arrangement: tuple[Session, dict[str, bytes]]) -> None:
    session, files = arrangement
    result = render_session(session, loader(files))
    assert [(p.section, p.start_bar, p.start_beat) for p in result.sections] == [
        ("A", 0, 0.0),
        ("B", 2, 8.0),
        ("C", 3, 12.0),
        ("D", 5, 20.0),
    ]
    # A at beat 0; B at bar 2 (beat 8); C silent; D at bar 5 (beat 20)
    assert notes_on(parse(result)) == [
        (0.0, 60),
        (1.0, 62),
        (4.5, 64),
        (8.0, 65),
        (11.0, 67),
        (20.0, 72),
    ]
    assert result.notes == 6 and [p.notes for p in result.sections] == [3, 2, 0, 1]
    assert (result.bars, result.beats) == (7, 28.0)


def test_long_take_is_cut_at_section_end_with_note_off(
    arrangement: tuple[Session, dict[str, bytes]],
) -> None:
    session, files = arrangement
    result = render_session(session, loader(files))
    offs = notes_off(parse(result))
    # B ends at beat 12: the note at 11 (3 beats long) is cut there; 69 never sounds
    assert (12.0, 67) in offs and all(p != 69 for _, p in offs)
    assert result.sections[1].cut_notes == 1
    assert sorted(offs) == [(1.0, 60), (2.0, 62), (5.0, 64), (9.0, 65), (12.0, 67), (21.0, 72)]
    # every note is closed, none after the section that holds it
    assert len(offs) == len(notes_on(parse(result)))


def test_short_take_and_missing_take_leave_silence(
    arrangement: tuple[Session, dict[str, bytes]],
) -> None:
    session, files = arrangement
    mid = parse(render_session(session, loader(files)))
    ons = notes_on(mid)
    assert not [b for b, _ in ons if 5.0 < b < 8.0 or 12.0 <= b < 20.0 or b > 20.0]
    # the file still lasts all 7 bars: every track ends at beat 28
    assert all(sum(m.time for m in tr) == 28 * TPB for tr in mid.tracks)


def test_tempo_map_follows_section_tempos(arrangement: tuple[Session, dict[str, bytes]]) -> None:
    session, files = arrangement
    result = render_session(session, loader(files))
    mid = parse(result)
    tempos = [
        (t / TPB, round(mido.tempo2bpm(m.tempo), 3))
        for t, m in absolute(mid.tracks[0])
        if m.type == "set_tempo"
    ]
    assert tempos == [(0.0, 120.0), (20.0, 60.0)]
    # mido's own clock agrees: D's note sounds after 5 bars at 120 bpm = 10 s
    now, first_d = 0.0, None
    for msg in mid:
        now += msg.time
        if msg.type == "note_on" and msg.note == 72:
            first_d = now
    assert first_d == pytest.approx(10.0)
    assert result.seconds == pytest.approx(5 * 2.0 + 2 * 4.0)
    assert mid.length == pytest.approx(result.seconds)


def test_take_is_read_through_its_own_tempo_map() -> None:
    """Takes keep their real timing: seconds from their tempo map, then beats at the section tempo."""
    # at 60 bpm one beat is 1 s; then from beat 2 the take speeds up to 120 bpm
    data = take_midi([(1, 0.5, 60), (3, 0.5, 62)], bpm=60, tempo_changes=[(2, 120)])
    session = Session(id="s", title="x", tempo=120, sections=(section("A", 4, "x"),))
    mid = parse(render_session(session, loader({"x": data})))
    # 1 s -> beat 2 at 120; beat 3 of the take = 2 s + 0.5 s = 2.5 s -> beat 5
    assert notes_on(mid) == [(2.0, 60), (5.0, 62)]


def test_meter_shapes_the_bar_grid() -> None:
    files = {"x": take_midi([(0, 1, 60)])}
    session = Session(
        id="s",
        title="x",
        meter=Meter(numerator=6, denominator=8),  # a bar is 3 quarter notes
        sections=(section("A", 2), section("B", 1, "x")),
    )
    result = render_session(session, loader(files))
    mid = parse(result)
    assert notes_on(mid) == [(6.0, 60)]
    ts = next(m for _, m in absolute(mid.tracks[0]) if m.type == "time_signature")
    assert (ts.numerator, ts.denominator) == (6, 8) and result.beats == 9.0


def test_one_track_per_instrument_with_programs() -> None:
    files = {
        "p": take_midi([(0, 1, 60)], channel=0, program=0),
        "s": take_midi([(0, 1, 48)], channel=1, program=48),
        "p2": take_midi([(0, 1, 64)], channel=0, program=0),
    }
    session = Session(
        id="s",
        title="x",
        sections=(section("A", 1, "p"), section("B", 1, "s"), section("C", 1, "p2")),
    )
    mid = parse(render_session(session, loader(files)))
    assert len(mid.tracks) == 3  # conductor + piano (A and C share it) + strings
    piano, strings = mid.tracks[1], mid.tracks[2]
    assert [(t / TPB, m.note) for t, m in absolute(piano) if m.type == "note_on"] == [
        (0.0, 60),
        (8.0, 64),
    ]
    assert [m.program for _, m in absolute(strings) if m.type == "program_change"] == [48]
    assert all(m.channel == 1 for _, m in absolute(strings) if not m.is_meta)


def test_sustain_and_hanging_notes_are_closed_at_the_cut() -> None:
    pedal = [(0.0, mido.Message("control_change", control=64, value=127))]
    data = take_midi([(0, 8, 60)], extra=pedal)
    session = Session(id="s", title="x", sections=(section("A", 1, "x"), section("B", 1)))
    mid = parse(render_session(session, loader({"x": data})))
    events = absolute(mid.tracks[1])
    assert (4 * TPB, "note_off") in [(t, m.type) for t, m in events if m.type == "note_off"]
    releases = [(t, m.value) for t, m in events if m.type == "control_change" and m.control == 64]
    assert releases == [(0, 127), (4 * TPB, 0)]


def test_type0_takes_and_section_selection() -> None:
    # takes made at their section tempo land on their own beats
    files = {
        "a": take_midi([(0, 1, 60)], bpm=100, file_type=0),
        "b": take_midi([(1, 1, 62)], bpm=90, file_type=0),
    }
    session = Session(
        id="s",
        title="x",
        tempo=100,
        sections=(section("A", 1, "a"), section("B", 2, "b", tempo=90)),
    )
    only_b = render_section(session, "B", loader(files))
    assert notes_on(parse(only_b)) == [(1.0, 62)]
    assert [(p.section, p.start_bar, p.tempo) for p in only_b.sections] == [("B", 0, 90)]
    tempos = [
        round(mido.tempo2bpm(m.tempo), 3)
        for _, m in absolute(parse(only_b).tracks[0])
        if m.type == "set_tempo"
    ]
    assert tempos == [90.0]
    both = render_session(session, loader(files), sections=["B", "A"])  # session order wins
    assert [p.section for p in both.sections] == ["A", "B"]
    with pytest.raises(HubError) as info:
        render_session(session, loader(files), sections=["nope"])
    assert info.value.code == ErrorCode.unknown_section


def test_invalid_take_midi_is_a_structured_error() -> None:
    session = Session(id="s", title="x", sections=(section("A", 1, "bad"),))
    for junk in (
        b"not a midi file",
        b"MThd\x00\x00\x00\x06\x00\x01\x00\x01",
        take_midi([(0, 1, 60)])[:30],
    ):
        with pytest.raises(HubError) as info:
            render_session(session, loader({"bad": junk}))
        assert info.value.code == ErrorCode.invalid_midi
        assert info.value.details["take"] == "t_A" and info.value.details["section"] == "A"


def test_empty_session_renders_a_valid_file() -> None:
    result = render_session(Session(id="s", title="Empty", tempo=90), loader({}))
    mid = parse(result)
    assert mid.type == 1 and result.notes == 0 and result.sections == ()
    assert [round(mido.tempo2bpm(m.tempo)) for m in mid.tracks[0] if m.type == "set_tempo"] == [90]
    summary = result.summary()
    assert summary["notes"] == 0 and summary["ticks_per_beat"] == 480


def test_key_names_that_parse() -> None:
    from hub.render import _key_signature

    assert [
        _key_signature(k)
        for k in ("C", "A minor", "f#m", "Bb major", "d", "D# major", "Eb", "H", None)
    ] == [
        "C",
        "Am",
        "F#m",
        "Bb",
        "Dm",
        "Eb",
        "Eb",
        None,
        None,
    ]


def test_real_files_render_balanced_and_inside_their_sections() -> None:
    """Fixture MIDI (type 0/1, tempo changes, drums, missing note-offs) stays inside its bars."""
    from pathlib import Path

    folder = Path(__file__).resolve().parents[1] / "fixtures" / "midi"
    files = {p.name: p.read_bytes() for p in sorted(folder.glob("*.mid"))}
    assert len(files) >= 10
    sections = tuple(
        Section(
            id=f"s{i}",
            name=name,
            bars=4 + i % 3,
            tempo=None if i % 2 else 90 + i,
            takes=(Take(id=f"t{i}", artifact_id=name),),
            chosen_take=f"t{i}",
        )
        for i, name in enumerate(files)
    )
    session = Session(id="s", title="fixtures", tempo=110, sections=sections)
    result = render_session(session, loader(files))
    mid = parse(result)
    windows = [(p.start_beat * TPB, (p.start_beat + p.bars * 4) * TPB) for p in result.sections]
    assert result.notes > 500 and mid.length == pytest.approx(result.seconds)
    for track in mid.tracks[1:]:
        sounding: dict[tuple[int, int], list[int]] = {}
        for tick, m in absolute(track):
            if m.type not in ("note_on", "note_off"):
                continue
            key = (m.channel, m.note)
            if m.type == "note_on" and m.velocity > 0:
                sounding.setdefault(key, []).append(tick)
                continue
            assert sounding.get(key), "note-off without a note"
            onset = sounding[key].pop(0)
            # a note starts and ends inside one section: cut at its end at the latest
            assert any(lo <= onset < hi and tick <= hi for lo, hi in windows), (onset, tick)
        assert not any(sounding.values()), "every note is closed"
