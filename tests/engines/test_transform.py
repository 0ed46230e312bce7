"""The transform engine, task by task, with known answers on small hand-built MIDI files."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mido
import pytest

from cas.store import CasStore
from engines.errors import EngineError
from engines.protocol import (
    EngineEvent,
    EngineRequest,
    Failed,
    Finished,
    MusicalContext,
    Notes,
    Output,
    Progress,
)
from engines.transform.engine import TransformEngine
from engines.transform.midi import read_midi, write_midi
from tests.engines.engine_contract import check_grammar

TPB = 480


@dataclass
class Track:
    notes: list[tuple[float, float, int, int]]  # start beat, length in beats, pitch, velocity
    channel: int = 0
    program: int = 0
    name: str = ""
    extra: list[tuple[int, mido.Message]] = field(default_factory=list)


def build_midi(
    *tracks: Track,
    tpb: int = TPB,
    bpm: float = 120.0,
    meter: tuple[int, int] = (4, 4),
    file_type: int = 1,
) -> bytes:
    """A MIDI file written directly with mido (not with the code under test)."""
    conductor = [
        (0, mido.MetaMessage("time_signature", numerator=meter[0], denominator=meter[1])),
        (0, mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm))),
    ]
    bodies: list[list[tuple[int, Any]]] = []
    for t in tracks:
        events: list[tuple[int, Any]] = (
            [(0, mido.MetaMessage("track_name", name=t.name))] if t.name else []
        )
        events.append((0, mido.Message("program_change", channel=t.channel, program=t.program)))
        events += t.extra
        for start, length, pitch, velocity in t.notes:
            on, off = round(start * tpb), round((start + length) * tpb)
            events.append(
                (on, mido.Message("note_on", channel=t.channel, note=pitch, velocity=velocity))
            )
            events.append((off, mido.Message("note_off", channel=t.channel, note=pitch)))
        bodies.append(events)
    midi = mido.MidiFile(type=file_type, ticks_per_beat=tpb)
    groups = (
        [conductor + [e for b in bodies for e in b]] if file_type == 0 else [conductor, *bodies]
    )
    for group in groups:
        track = mido.MidiTrack()
        now = 0
        for tick, msg in sorted(group, key=lambda e: (e[0], e[1].type == "note_on")):
            track.append(msg.copy(time=tick - now))
            now = tick
        midi.tracks.append(track)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


@dataclass(frozen=True)
class Played:
    track: int
    tick: int
    end: int
    pitch: int
    velocity: int
    channel: int


def played(data: bytes) -> list[Played]:
    """Every note in a file, read with mido: (track, start, end, pitch, velocity, channel)."""
    midi = mido.MidiFile(file=io.BytesIO(data))
    out: list[Played] = []
    for index, track in enumerate(midi.tracks):
        tick = 0
        open_notes: dict[tuple[int, int], tuple[int, int]] = {}
        for msg in track:
            tick += msg.time
            if msg.type == "note_on" and msg.velocity:
                open_notes[(msg.channel, msg.note)] = (tick, msg.velocity)
            elif msg.type in ("note_on", "note_off") and (msg.channel, msg.note) in open_notes:
                start, vel = open_notes.pop((msg.channel, msg.note))
                out.append(Played(index, start, tick, msg.note, vel, msg.channel))
    return sorted(out, key=lambda p: (p.tick, p.track, p.pitch))


def tempos(data: bytes) -> list[int]:
    midi = mido.MidiFile(file=io.BytesIO(data))
    return [m.tempo for t in midi.tracks for m in t if m.type == "set_tempo"]


@pytest.fixture
def cas(tmp_path: Path) -> CasStore:
    return CasStore(tmp_path / "cas")


class Runner:
    def __init__(self, cas: CasStore, engine: TransformEngine | None = None) -> None:
        self.cas = cas
        self.engine = engine or TransformEngine()

    def put(self, data: bytes) -> str:
        return self.cas.put(data, mime="audio/midi").digest

    def run(
        self, task: str, params: dict[str, Any], inputs: dict[str, bytes], **request: Any
    ) -> list[EngineEvent]:
        """Drive one job step by step, as the worker would (errors become Failed).

        Single-input tasks get an ``artifact`` param (the hub resolved it to the input).
        """
        if task != "merge":
            params = {"artifact": "art_test", **params}
        digests = {name: self.put(data) for name, data in inputs.items()}
        req = EngineRequest("t", task, params, inputs=digests, **request)
        events: list[EngineEvent] = []
        try:
            job = self.engine.start(req, self.cas)
            while not job.done:
                events += job.step()
        except EngineError as exc:
            events.append(Failed("t", exc.code, exc.message, exc.details))
        check_grammar(events, "t")
        return events

    def output(
        self, task: str, params: dict[str, Any], inputs: dict[str, bytes], **kw: Any
    ) -> bytes:
        events = self.run(task, params, inputs, **kw)
        assert isinstance(events[-1], Finished), events[-1]
        outputs = [e for e in events if isinstance(e, Output)]
        assert len(outputs) == 1
        return self.cas.get(outputs[0].digest)

    def failure(self, task: str, params: dict[str, Any], inputs: dict[str, bytes]) -> Failed:
        events = self.run(task, params, inputs)
        assert isinstance(events[-1], Failed), events[-1]
        return events[-1]


@pytest.fixture
def runner(cas: CasStore) -> Runner:
    return Runner(cas)


SCALE = Track([(i, 1, p, 80) for i, p in enumerate([60, 62, 64, 65, 67, 69, 71])], name="Piano")
DRUMS = Track([(0, 0.5, 36, 100), (1, 0.5, 38, 100)], channel=9, name="Drums")


# --- transpose ---------------------------------------------------------------------------------


def test_transpose_chromatic_leaves_drums_alone(runner: Runner) -> None:
    out = played(runner.output("transpose", {"semitones": 3}, {"midi": build_midi(SCALE, DRUMS)}))
    melodic = [p.pitch for p in out if p.channel != 9]
    assert melodic == [63, 65, 67, 68, 70, 72, 74]
    assert sorted(p.pitch for p in out if p.channel == 9) == [36, 38]
    assert [p.tick for p in out if p.channel != 9] == [i * TPB for i in range(7)]


def test_transpose_folds_out_of_range_pitches_by_octaves(runner: Runner) -> None:
    data = build_midi(Track([(0, 1, 126, 80), (1, 1, 2, 80)]))
    assert [
        p.pitch for p in played(runner.output("transpose", {"semitones": 5}, {"midi": data}))
    ] == [
        119,
        7,
    ]
    assert [
        p.pitch for p in played(runner.output("transpose", {"semitones": -5}, {"midi": data}))
    ] == [
        121,
        9,
    ]


def test_transpose_diatonic_in_a_key(runner: Runner) -> None:
    out = runner.output("transpose", {"steps": 2, "key": "C major"}, {"midi": build_midi(SCALE)})
    assert [p.pitch for p in played(out)] == [64, 65, 67, 69, 71, 72, 74]
    # A minor, down one degree; the key comes from the section when params name none.
    minor = build_midi(Track([(0, 1, 57, 80), (1, 1, 60, 80), (2, 1, 61, 80)]))
    out = runner.output(
        "transpose", {"steps": -1}, {"midi": minor}, context=MusicalContext(key="A minor")
    )
    assert [p.pitch for p in played(out)] == [55, 59, 60]  # A->G, C->B, C# (C+1) -> B+1


def test_transpose_diatonic_without_a_key_is_invalid(runner: Runner) -> None:
    failed = runner.failure("transpose", {"steps": 1}, {"midi": build_midi(SCALE)})
    assert failed.code == "validation_failed" and failed.details["errors"][0]["loc"] == ["key"]
    failed = runner.failure("transpose", {"steps": 1, "key": "H dur"}, {"midi": build_midi(SCALE)})
    assert failed.code == "validation_failed"


# --- quantize ----------------------------------------------------------------------------------


OFF_GRID = Track([(10 / TPB, 0.5, 60, 80), (130 / TPB, 0.5, 62, 80), (250 / TPB, 0.5, 64, 80)])


def test_quantize_full_and_half_strength(runner: Runner) -> None:
    out = played(runner.output("quantize", {"grid": "1/16"}, {"midi": build_midi(OFF_GRID)}))
    assert [(p.tick, p.end - p.tick) for p in out] == [(0, 240), (120, 240), (240, 240)]
    out = played(
        runner.output("quantize", {"grid": 0.25, "strength": 0.5}, {"midi": build_midi(OFF_GRID)})
    )
    assert [p.tick for p in out] == [5, 125, 245]


def test_quantize_swing_triplets_and_ends(runner: Runner) -> None:
    data = build_midi(Track([(0, 0.5, 60, 80), (300 / TPB, 0.2, 62, 80)]))
    swung = played(runner.output("quantize", {"grid": "1/8", "swing": 1 / 3}, {"midi": data}))
    assert [p.tick for p in swung] == [0, 320]  # the off-beat eighth lands on the triplet
    triplets = played(runner.output("quantize", {"grid": "1/8t"}, {"midi": data}))
    assert [p.tick for p in triplets] == [0, 320]  # 1/8t = 160 ticks
    ends = played(runner.output("quantize", {"grid": "1/8", "quantize_ends": True}, {"midi": data}))
    assert [(p.tick, p.end) for p in ends] == [(0, 240), (240, 480)]


def test_quantize_rejects_bad_grids(runner: Runner) -> None:
    for grid in ("1/3", "eighth", 0, 100):
        failed = runner.failure("quantize", {"grid": grid}, {"midi": build_midi(OFF_GRID)})
        assert failed.code == "validation_failed"


# --- tempo -------------------------------------------------------------------------------------


def test_tempo_set_and_scale_keep_beats(runner: Runner) -> None:
    data = build_midi(SCALE, bpm=120)
    out = runner.output("tempo", {"bpm": 90}, {"midi": data})
    assert tempos(out) == [mido.bpm2tempo(90)]
    assert [p.tick for p in played(out)] == [i * TPB for i in range(7)]
    events = runner.run("tempo", {"scale": 2.0}, {"midi": data})
    out = runner.cas.get(next(e for e in events if isinstance(e, Output)).digest)
    assert tempos(out) == [mido.bpm2tempo(240)]
    onsets = [n.onset for e in events if isinstance(e, Notes) for n in e.notes]
    assert onsets == [i * 0.25 for i in range(7)]  # beats every quarter second at 240 bpm
    output = next(e for e in events if isinstance(e, Output))
    assert output.metadata["bpm"] == 240.0 and output.metadata["duration_s"] == 1.75


def test_tempo_needs_exactly_one_of_bpm_and_scale(runner: Runner) -> None:
    for params in ({}, {"bpm": 100, "scale": 2}, {"bpm": 1000}):
        assert (
            runner.failure("tempo", params, {"midi": build_midi(SCALE)}).code == "validation_failed"
        )


# --- velocity and humanize -----------------------------------------------------------------------

SIXTEENTHS = Track([(b, 0.25, 60, 64) for b in (0, 0.25, 0.5, 1, 2, 3)])


def test_velocity_follows_metrical_position(runner: Runner) -> None:
    params = {"accent": 1.0, "contour": 0.0}
    out = played(runner.output("velocity", params, {"midi": build_midi(SIXTEENTHS)}))
    # downbeat +20, sixteenth -20, off-beat eighth -10, beat 2 0, mid-bar +10, beat 4 0
    assert [p.velocity for p in out] == [84, 44, 54, 64, 74, 64]


def test_velocity_phrase_contour_arches_over_the_phrase(runner: Runner) -> None:
    bars = Track([(4 * bar, 1, 60, 64) for bar in range(4)])
    params = {"accent": 0.0, "contour": 1.0, "phrase_bars": 4}
    out = played(runner.output("velocity", params, {"midi": build_midi(bars)}))
    expected = [round(64 + 24 * (math.sin(math.pi * k / 4) - 0.5)) for k in range(4)]
    assert [p.velocity for p in out] == expected == [52, 69, 76, 69]


def test_velocity_center_spread_and_limits(runner: Runner) -> None:
    data = build_midi(Track([(0, 1, 60, 40), (1, 1, 62, 80)]))
    params = {"accent": 0, "contour": 0, "spread": 0.5, "center": 100}
    assert [p.velocity for p in played(runner.output("velocity", params, {"midi": data}))] == [
        90,
        110,
    ]
    params = {"accent": 0, "contour": 0, "spread": 2, "min_velocity": 30, "max_velocity": 90}
    assert [p.velocity for p in played(runner.output("velocity", params, {"midi": data}))] == [
        30,
        90,
    ]
    assert (
        runner.failure("velocity", {"min_velocity": 100, "max_velocity": 50}, {"midi": data}).code
        == "validation_failed"
    )


def test_humanize_is_seeded_and_bounded(runner: Runner) -> None:
    notes = Track([(b / 2, 0.5, 60 + b % 12, 80) for b in range(64)])
    data = build_midi(notes)
    params = {"timing_ms": 10.0, "velocity_jitter": 5, "seed": 7}
    first = runner.output("humanize", params, {"midi": data})
    assert runner.output("humanize", params, {"midi": data}) == first
    assert runner.output("humanize", {**params, "seed": 8}, {"midi": data}) != first
    # The job seed is used when params carry none.
    no_seed = {k: v for k, v in params.items() if k != "seed"}
    assert runner.output("humanize", no_seed, {"midi": data}, seed=7) == first
    shaped = played(runner.output("velocity", {"accent": 0.3, "contour": 0.2}, {"midi": data}))
    human = played(first)
    by_pitch_order = sorted(human, key=lambda p: (round(p.tick / 240), p.pitch))
    assert len(by_pitch_order) == len(shaped) == 64
    max_shift = 10 * TPB * 1000 / 500_000  # 10 ms in ticks at 120 bpm (9.6)
    moved = 0
    for h, s in zip(by_pitch_order, shaped, strict=True):
        assert abs(h.tick - s.tick) <= math.ceil(max_shift)
        assert h.end - h.tick == s.end - s.tick  # durations kept
        assert abs(h.velocity - s.velocity) <= 5
        moved += h.tick != s.tick
    assert moved > 32  # it really moved notes


# --- merge, split, extract -------------------------------------------------------------------------


def test_merge_combines_inputs_with_offsets_and_resolutions(runner: Runner) -> None:
    piano = build_midi(Track([(0, 1, 60, 80)], program=0, name="Piano"), bpm=100)
    bass = build_midi(
        Track([(0, 1, 36, 90), (1, 1, 38, 90)], program=33, name="Bass"), tpb=96, bpm=140
    )
    params = {"artifacts": ["art_b", "art_a"], "offsets": [0, 4]}
    events = runner.run("merge", params, {"artifacts.0": bass, "artifacts.1": piano})
    output = next(e for e in events if isinstance(e, Output))
    data = runner.cas.get(output.digest)
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert midi.type == 1 and len(midi.tracks) == 3 and midi.ticks_per_beat == TPB
    assert tempos(data) == [mido.bpm2tempo(140)]  # conductor of the first input in order
    out = played(data)
    assert [(p.track, p.tick, p.pitch) for p in out] == [(1, 0, 36), (1, 480, 38), (2, 1920, 60)]
    assert len({p.channel for p in out}) == 2  # both were on channel 1: one moved
    assert output.metadata["notes"] == 3 and output.metadata["tracks"] == 2


def test_merge_needs_two_inputs_in_order(runner: Runner) -> None:
    one = build_midi(SCALE)
    failed = runner.failure("merge", {"artifacts": ["a"]}, {"artifacts.0": one})
    assert failed.code == "validation_failed"
    failed = runner.failure("merge", {"artifacts": ["a", "b"]}, {"artifacts.0": one})
    assert failed.code == "validation_failed" and failed.details["errors"][0]["loc"] == [
        "artifacts"
    ]
    # Eleven inputs: artifacts.10 comes after artifacts.9, not after artifacts.1.
    files = {
        f"artifacts.{i}": build_midi(Track([(0, 1, 40 + i, 80)], name=f"t{i}")) for i in range(11)
    }
    out = runner.output("merge", {"artifacts": [f"a{i}" for i in range(11)]}, files)
    midi = mido.MidiFile(file=io.BytesIO(out))
    names = [m.name for t in midi.tracks for m in t if m.type == "track_name"]
    assert names == [f"t{i}" for i in range(11)]


def test_split_by_part_and_by_instrument(runner: Runner) -> None:
    piano_r = Track([(0, 1, 60, 80)], channel=0, program=0, name="Right")
    piano_l = Track([(0, 1, 48, 80), (1, 1, 43, 80)], channel=1, program=0, name="Left")
    bass = Track([(0, 2, 36, 80)], channel=2, program=33, name="Bass")
    data = build_midi(piano_r, piano_l, bass, DRUMS)
    events = runner.run("split", {}, {"midi": data})
    outputs = [e for e in events if isinstance(e, Output)]
    assert [o.metadata["part"] for o in outputs] == ["Right", "Left", "Bass", "Drums"]
    assert [o.metadata["notes"] for o in outputs] == [1, 2, 1, 2]
    assert [o.variation_index for o in outputs] == [0, 1, 2, 3]
    assert outputs[3].metadata["drums"] is True and outputs[2].metadata["program"] == 33
    assert outputs[0].filename == "split-01-right.mid"
    assert [p.pitch for p in played(runner.cas.get(outputs[1].digest))] == [48, 43]
    # The streamed notes say which file (variation) they belong to.
    variations = {n.variation for e in events if isinstance(e, Notes) for n in e.notes}
    assert variations == {0, 1, 2, 3}
    grouped = [
        e
        for e in runner.run("split", {"by": "instrument"}, {"midi": data})
        if isinstance(e, Output)
    ]
    assert [o.metadata["notes"] for o in grouped] == [3, 1, 2]


def test_extract_by_program_drums_and_name(runner: Runner) -> None:
    bass = Track([(0, 2, 36, 80)], channel=2, program=33, name="Bass")
    data = build_midi(SCALE, bass, DRUMS)
    assert [p.pitch for p in played(runner.output("extract", {"program": 33}, {"midi": data}))] == [
        36
    ]
    drums = played(runner.output("extract", {"drums": True}, {"midi": data}))
    assert [(p.pitch, p.channel) for p in drums] == [(36, 9), (38, 9)]
    assert len(played(runner.output("extract", {"name": "pia"}, {"midi": data}))) == 7
    assert len(played(runner.output("extract", {"track": 1}, {"midi": data}))) == 1
    failed = runner.failure("extract", {"program": 40}, {"midi": data})
    assert failed.code == "no_match" and len(failed.details["parts"]) == 3
    assert runner.failure("extract", {"program": 1, "drums": True}, {"midi": data}).code == (
        "validation_failed"
    )


# --- inputs, streaming, schemas ----------------------------------------------------------------------


def test_invalid_and_missing_inputs(runner: Runner) -> None:
    assert (
        runner.failure("transpose", {"semitones": 1}, {"midi": b"not midi"}).code == "invalid_midi"
    )
    assert (
        runner.failure("transpose", {"semitones": 1}, {"midi": b"MThd\x00\x00"}).code
        == "invalid_midi"
    )
    failed = runner.failure("transpose", {}, {"a": build_midi(SCALE), "b": build_midi(SCALE)})
    assert failed.code == "validation_failed"  # two inputs, none named midi
    req = EngineRequest("t", "transpose", {"artifact": "gone"}, inputs={"artifact": "0" * 64})
    job = runner.engine.start(req, runner.cas)
    with pytest.raises(EngineError) as err:
        while not job.done:
            job.step()
    assert err.value.code == "input_not_found"


def test_type0_input_becomes_one_part_per_channel(runner: Runner) -> None:
    data = build_midi(SCALE, DRUMS, file_type=0)
    score = read_midi(data)
    assert [(p.channel, len(p.notes)) for p in score.parts] == [(0, 7), (9, 2)]
    out = mido.MidiFile(
        file=io.BytesIO(runner.output("transpose", {"semitones": 1}, {"midi": data}))
    )
    assert out.type == 1 and len(out.tracks) == 3


def test_notes_stream_in_chunks_matching_the_output(cas: CasStore) -> None:
    runner = Runner(cas, TransformEngine(notes_per_chunk=3))
    events = runner.run("transpose", {"semitones": 12}, {"midi": build_midi(SCALE, DRUMS)})
    chunks = [e for e in events if isinstance(e, Notes)]
    assert [len(c.notes) for c in chunks] == [3, 3, 3]
    streamed = [(n.pitch, n.onset) for c in chunks for n in c.notes]
    output = next(e for e in events if isinstance(e, Output))
    written = [(p.pitch, p.tick / TPB / 2) for p in played(cas.get(output.digest))]
    assert sorted(streamed) == sorted(written)
    assert {n.instrument for c in chunks for n in c.notes} == {0, 128}
    progress = [e for e in events if isinstance(e, Progress)]
    assert progress[-1].percent == 100.0 and progress[-1].tokens == progress[-1].total == 9
    finished = events[-1]
    assert isinstance(finished, Finished) and finished.result["notes"] == 9


def test_round_trip_keeps_controllers_and_conductor(runner: Runner) -> None:
    cc = [(0, mido.Message("control_change", channel=0, control=64, value=127))]
    data = build_midi(Track(SCALE.notes, extra=cc, program=5), meter=(3, 4), bpm=75)
    again = write_midi(read_midi(data))
    midi = mido.MidiFile(file=io.BytesIO(again))
    kinds = [m.type for t in midi.tracks for m in t]
    assert "control_change" in kinds and tempos(again) == [mido.bpm2tempo(75)]
    sig = next(m for t in midi.tracks for m in t if m.type == "time_signature")
    assert (sig.numerator, sig.denominator) == (3, 4)
    programs = [m.program for t in midi.tracks for m in t if m.type == "program_change"]
    assert programs == [5] and played(again) == played(data)


def test_task_schemas_document_ranges_and_defaults() -> None:
    tasks = {t.name: t for t in TransformEngine().info().tasks}
    assert set(tasks) == {
        "transpose",
        "quantize",
        "tempo",
        "velocity",
        "humanize",
        "merge",
        "split",
        "extract",
    }
    strength = tasks["quantize"].params_schema["properties"]["strength"]
    assert (strength["default"], strength["minimum"], strength["maximum"]) == (1.0, 0.0, 1.0)
    semis = tasks["transpose"].params_schema["properties"]["semitones"]
    assert (semis["minimum"], semis["maximum"]) == (-48, 48) and semis["description"]
    assert tasks["quantize"].params_schema["additionalProperties"] is False
