"""compute_metadata on pieces with known answers, and on every MIDI fixture."""

from __future__ import annotations

import io
import json
from pathlib import Path

import mido
import numpy as np
import pytest
from analysis_midi import (
    aba_piece,
    c_major_scale,
    progression_in_g,
    tempo_change_piece,
)

from engines.analysis import MidiMetadata, compute_metadata, parse_midi

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "midi"
ALL_FIXTURES = sorted(FIXTURES.glob("*.mid"))


def test_fixtures_are_present() -> None:
    assert len(ALL_FIXTURES) == 13


def test_c_major_scale() -> None:
    m = compute_metadata(c_major_scale())
    assert m.key == "C major"
    assert m.key_confidence > 0.5
    assert m.pitch_range is not None
    assert (m.pitch_range.lowest, m.pitch_range.highest) == ("C4", "C5")
    assert (m.pitch_range.lowest_midi, m.pitch_range.highest_midi) == (60, 72)
    assert m.note_count == 8
    assert m.duration_seconds == pytest.approx(4.0)  # 8 quarters at 120 bpm
    assert m.duration_bars == pytest.approx(2.0)
    assert [(t.bpm, t.time_seconds) for t in m.tempos] == [(120.0, 0.0)]
    assert [ts.signature for ts in m.time_signatures] == ["4/4"]
    assert [(i.name, i.is_drum, i.note_count) for i in m.instruments] == [
        ("Acoustic Grand Piano", False, 8)
    ]
    assert m.density.notes_per_second == pytest.approx(2.0)
    assert m.density.label == "low"
    assert (m.polyphony.mean, m.polyphony.max) == (1.0, 1)  # legato scale: no overlaps


def test_progression_in_g_metadata() -> None:
    m = compute_metadata(progression_in_g())
    assert m.key == "G major"
    assert m.polyphony.max == 4
    assert m.polyphony.mean == pytest.approx(4.0)
    assert m.duration_bars == pytest.approx(8.0)
    assert m.structure.repeats  # the four chords come twice


def test_aba_structure_summary() -> None:
    m = compute_metadata(aba_piece())
    assert m.structure.sections == 3
    assert m.structure.repeats
    assert m.duration_bars == pytest.approx(24.0)


def test_tempo_change() -> None:
    m = compute_metadata(tempo_change_piece())
    assert [(t.bpm, t.time_seconds, t.bar) for t in m.tempos] == [(120.0, 0.0, 1.0), (60.0, 8.0, 5.0)]
    assert m.tempo_change_count == 1
    assert m.duration_seconds == pytest.approx(16.0)
    assert m.duration_bars == pytest.approx(6.0)
    # mido agrees on the length
    midi = mido.MidiFile(file=__import__("io").BytesIO(tempo_change_piece()))
    assert midi.length == pytest.approx(16.0)


def test_energy_rises_with_loudness_and_density() -> None:
    from analysis_midi import Part, build

    p = Part()
    for beat in range(16):  # 4 quiet bars of quarter notes
        p.add(float(beat), 1.0, 60, 30)
    for i in range(16 * 4):  # 4 loud bars of sixteenths
        p.add(16 + i * 0.25, 0.25, 72, 120)
    m = compute_metadata(build([p]))
    assert 0 <= m.energy.start < m.energy.end <= 1
    assert m.energy.peak >= m.energy.end
    assert m.energy.peak_time_seconds >= 8.0  # the peak is in the loud half (bar 5 starts at 8 s)


@pytest.mark.parametrize("path", ALL_FIXTURES, ids=lambda p: p.name)
def test_fixture_metadata_is_consistent(path: Path) -> None:
    data = path.read_bytes()
    m = compute_metadata(data)
    # JSON round trip (the hub ships this in events)
    again = MidiMetadata.model_validate(json.loads(m.model_dump_json()))
    assert again == m
    assert m.note_count == sum(i.note_count for i in m.instruments)
    assert m.note_count > 0
    # mido's count of note-ons with velocity > 0
    midi = mido.MidiFile(file=__import__("io").BytesIO(data))
    ons = sum(1 for t in midi.tracks for msg in t if msg.type == "note_on" and msg.velocity > 0)
    # every note-on is a note, including those that never get a note-off
    assert m.note_count == ons
    assert m.duration_seconds == pytest.approx(midi.length, abs=0.5)
    for v in (m.energy.start, m.energy.peak, m.energy.end):
        assert 0.0 <= v <= 1.0
    assert m.energy.peak >= max(m.energy.start, m.energy.end) - 1e-9
    assert m.structure.sections >= 1
    assert m.polyphony.max >= 1 or all(i.is_drum for i in m.instruments)


def test_drum_fixture_flags_drums_and_has_no_key() -> None:
    m = compute_metadata((FIXTURES / "music21_demo_drum_sample.mid").read_bytes())
    assert all(i.is_drum and i.name == "Drum Kit" for i in m.instruments)
    assert m.key is None and m.key_confidence == 0.0
    assert m.pitch_range is None


def test_synthetic_fixtures() -> None:
    m = compute_metadata((FIXTURES / "synthetic_drums_tempo.mid").read_bytes())
    assert [t.bpm for t in m.tempos] == [120.0, 80.0, 150.0]
    assert any(i.is_drum for i in m.instruments)
    assert {i.name for i in m.instruments if not i.is_drum} >= {"Electric Bass (finger)"}
    t0 = compute_metadata((FIXTURES / "synthetic_type0.mid").read_bytes())
    assert t0.pitch_range is not None
    assert (t0.pitch_range.lowest, t0.pitch_range.highest) == ("C-1", "G9")
    assert [t.bpm for t in t0.tempos] == [100.0, 200.0]
    assert {i.name for i in t0.instruments} == {"Flute", "String Ensemble 1"}


def _note_ons(data: bytes) -> int:
    midi = mido.MidiFile(file=io.BytesIO(data))
    return sum(1 for t in midi.tracks for msg in t if msg.type == "note_on" and msg.velocity > 0)


def test_note_ons_without_note_off_are_kept() -> None:
    data = (FIXTURES / "synthetic_drums_tempo.mid").read_bytes()
    assert _note_ons(data) == 181
    p = parse_midi(data)
    assert len(p.notes) == 181
    assert p.recovered_notes == 12  # drum hits whose note-off is missing
    m = compute_metadata(data)
    assert m.note_count == 181
    assert sum(i.note_count for i in m.instruments if i.is_drum) == 96
    # a recovered note keeps its note-on's pitch, velocity and instrument, and lasts 250 ms
    drums = p.notes.select(p.notes.is_drum)
    assert np.all(drums.duration_s > 0)


def _open_note_file(bpm: float) -> bytes:
    """A closed C4 at beat 0 and an E4 at beat 2 whose note-off never comes."""
    mid = mido.MidiFile(type=1, ticks_per_beat=480)
    track = mido.MidiTrack([
        mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0),
        mido.Message("program_change", program=40, time=0),
        mido.Message("note_on", note=60, velocity=90, time=0),
        mido.Message("note_off", note=60, velocity=0, time=480),
        mido.Message("note_on", note=64, velocity=70, time=480),
        mido.MetaMessage("end_of_track", time=1920),
    ])
    mid.tracks.append(track)
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


@pytest.mark.parametrize(("bpm", "ticks"), [(120.0, 240), (60.0, 120)])
def test_open_note_gets_250_ms(bpm: float, ticks: int) -> None:
    p = parse_midi(_open_note_file(bpm))
    n = p.notes
    assert p.recovered_notes == 1
    assert n.pitch.tolist() == [60, 64]
    assert n.onset_ticks.tolist() == [0, 960]
    assert n.duration_ticks.tolist() == [480, ticks]
    assert n.velocity.tolist() == [90, 70]
    assert n.duration_s[1] == pytest.approx(0.25)
    assert n.program.tolist() == [40, 40]
    assert [(i.program, i.note_count) for i in p.instruments] == [(40, 2)]
    assert p.end_tick == 960 + ticks  # the recovered note's end, not the sentinel that found it


def test_complete_files_take_the_fast_path() -> None:
    for data in (c_major_scale(), progression_in_g(), (FIXTURES / "bach_bwv66.6.mid").read_bytes()):
        p = parse_midi(data)
        assert p.recovered_notes == 0
        assert len(p.notes) == _note_ons(data)
