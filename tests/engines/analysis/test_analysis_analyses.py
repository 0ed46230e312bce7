"""analyze(): structure, motifs, harmony and rhythm on pieces with known answers."""

from __future__ import annotations

import json

import pytest
from analysis_midi import (
    Part,
    aba_piece,
    build,
    c_major_scale,
    eighths,
    progression_in_g,
    tempo_change_piece,
)

from engines.analysis import ANALYSES, AnalysisReport, analyze


def test_report_holds_only_what_was_asked() -> None:
    r = analyze(c_major_scale(), ["rhythm"])
    assert r.rhythm is not None
    assert r.structure is None and r.motifs is None and r.harmony is None
    assert r.metadata.key == "C major"
    full = analyze(c_major_scale(), list(ANALYSES))
    assert AnalysisReport.model_validate(json.loads(full.model_dump_json())) == full


def test_progression_in_g_roman_numerals_per_bar() -> None:
    h = analyze(progression_in_g(), ["harmony"]).harmony
    assert h is not None
    assert h.key == "G major"
    assert h.resolution == "bar"
    assert [c.roman for c in h.chords] == ["I", "V", "vi", "IV"] * 2
    assert [c.symbol for c in h.chords] == ["G", "D", "Em", "C"] * 2
    assert [c.bar for c in h.chords] == list(range(1, 9))
    assert [c.time_seconds for c in h.chords[:2]] == [0.0, 2.0]
    assert h.modulations == []


def test_progression_in_g_per_beat() -> None:
    h = analyze(progression_in_g(repeats=1), ["harmony"], chord_resolution="beat").harmony
    assert h is not None
    assert [c.roman for c in h.chords] == ["I"] * 4 + ["V"] * 4 + ["vi"] * 4 + ["IV"] * 4
    assert [c.beat for c in h.chords[:4]] == [1.0, 2.0, 3.0, 4.0]


def test_modulation_from_c_to_e() -> None:
    piano = Part()
    cadence = {0: [48, 64, 67, 72], 5: [53, 65, 69, 72], 7: [55, 62, 67, 71]}  # I IV V I, C major
    for bar in range(16):
        shift = 0 if bar < 8 else 4  # bars 9-16 in E major
        degree = [0, 5, 7, 0][bar % 4]
        piano.add(bar * 4.0, 4.0, [p + shift for p in cadence[degree]], 80)
    h = analyze(build([piano]), ["harmony"]).harmony
    assert h is not None
    assert [(m.bar, m.from_key, m.to_key) for m in h.modulations] == [(9, "C major", "E major")]
    assert [c.roman for c in h.chords] == ["I", "IV", "V", "I"] * 4  # relative to the local key
    assert [c.key for c in h.chords][7:9] == ["C major", "E major"]


def test_aba_form() -> None:
    s = analyze(aba_piece(), ["structure"]).structure
    assert s is not None
    assert s.form == "A B A"
    assert [(x.letter, x.start_bar, x.end_bar) for x in s.sections] == [
        ("A", 1, 8), ("B", 9, 16), ("A", 17, 24)
    ]
    assert s.sections[1].start_seconds == pytest.approx(16.0)  # 8 bars of 4/4 at 120 bpm
    assert s.repeats


def test_through_composed_scale_has_one_section_and_no_repeats() -> None:
    s = analyze(c_major_scale(), ["structure"]).structure
    assert s is not None
    assert s.form == "A"
    assert not s.repeats


def test_motif_found_in_transposition() -> None:
    lead = Part()
    motif = [(0.0, 0.5, 0), (0.5, 0.5, 2), (1.0, 0.5, 4), (1.5, 1.5, 0)]  # do-re-mi-do
    # the motif on C, F and G at bars 1, 3 and 5, with unrelated filler between
    for bar, root in ((0, 60), (2, 65), (4, 67)):
        for start, dur, step in motif:
            lead.add(bar * 4 + start, dur, root + step, 80)
        lead.add(bar * 4 + 4.0, 1.0, 59 + bar, 60)
        lead.add(bar * 4 + 6.0, 2.0, 50 + 3 * bar, 60)
    m = analyze(build([lead]), ["motifs"]).motifs
    assert m is not None and m.motifs
    top = m.motifs[0]
    assert top.intervals[:3] == [2, 2, -4]
    assert top.rhythm_beats[:3] == [0.5, 0.5, 0.5]
    assert top.count == 3
    assert top.bars == [1, 3, 5]
    assert [o.transposition for o in top.occurrences] == [0, 5, 7]
    assert [o.start_pitch for o in top.occurrences] == ["C4", "F4", "G4"]


def test_swung_eighths_detected() -> None:
    r = analyze(eighths(2 / 3), ["rhythm"]).rhythm
    assert r is not None
    assert r.swing == "swing"
    assert r.swing_ratio == pytest.approx(2.0, abs=0.15)
    assert r.swing_evidence_beats == 32


def test_straight_eighths_not_swung() -> None:
    r = analyze(eighths(0.5), ["rhythm"]).rhythm
    assert r is not None
    assert r.swing == "straight"
    assert r.swing_ratio == pytest.approx(1.0)


def test_hard_swing() -> None:
    r = analyze(eighths(0.75), ["rhythm"]).rhythm
    assert r is not None
    assert r.swing == "hard swing"
    assert r.swing_ratio == pytest.approx(3.0, abs=0.2)


def test_rhythm_meter_and_tempo() -> None:
    r = analyze(tempo_change_piece(), ["rhythm"]).rhythm
    assert r is not None
    assert r.meter.time_signature == "4/4"
    assert r.meter.kind == "simple quadruple"
    assert (r.tempo.initial_bpm, r.tempo.min_bpm, r.tempo.max_bpm) == (120.0, 60.0, 120.0)
    assert r.tempo.mean_bpm == pytest.approx(90.0)  # 8 s at 120, 8 s at 60
    assert [t.bpm for t in r.tempo.changes] == [120.0, 60.0]
    waltz = Part()
    for beat in range(12):
        waltz.add(float(beat), 1.0, 60, 80)
    r3 = analyze(build([waltz], time_signature=(6, 8)), ["rhythm"]).rhythm
    assert r3 is not None and r3.meter.kind == "compound duple"


def test_syncopation_levels() -> None:
    on_beat, synced = Part(), Part()
    for bar in range(4):
        for beat in range(4):
            on_beat.add(bar * 4.0 + beat, 1.0, 60, 80)
        # charleston-like: notes on the "and" held across the following beat
        synced.add(bar * 4.0, 1.5, 60, 80)
        synced.add(bar * 4.0 + 1.5, 1.5, 62, 80)
        synced.add(bar * 4.0 + 3.0, 1.0, 64, 80)
    plain = analyze(build([on_beat]), ["rhythm"]).rhythm
    sync = analyze(build([synced]), ["rhythm"]).rhythm
    assert plain is not None and sync is not None
    assert plain.syncopation == 0.0 and plain.syncopation_level == "none"
    assert sync.syncopation == pytest.approx(1 / 3, abs=0.01)
    assert sync.syncopation_level == "high"
