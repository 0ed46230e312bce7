"""Every composition task through the engine, with a test double that favours forbidden notes."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any, cast

import pytest
from amt_fixture_data import MIDI_DIR
from amt_models import BiasedModel, SilentModel, tiny_gpt2

from cas.store import CasStore
from engines.amt import vocab as V
from engines.amt.codec import events_to_midi, midi_to_bytes
from engines.amt.engine import AmtEngine
from engines.amt.session_midi import score_length_ticks
from engines.errors import EngineError
from engines.protocol import (
    EngineEvent,
    EngineRequest,
    Finished,
    MusicalContext,
    Notes,
    Output,
    Progress,
)
from engines.transform.midi import TempoMap, read_midi


@pytest.fixture(scope="module")
def engine() -> AmtEngine:
    engine = AmtEngine()
    engine.use_model(cast(Any, BiasedModel()).eval(), "biased")
    return engine


@pytest.fixture
def cas(tmp_path: Path) -> CasStore:
    return CasStore(tmp_path / "cas")


def run(engine: AmtEngine, cas: CasStore, request: EngineRequest) -> list[EngineEvent]:
    job = engine.start(request, cas)
    events: list[EngineEvent] = []
    while not job.done:
        events += job.step()
    assert isinstance(events[-1], Finished), events[-1]
    return events


def outputs(events: Sequence[EngineEvent]) -> list[Output]:
    """The final results (a run slower than ``partial_every`` also writes partial files)."""
    return [e for e in events if isinstance(e, Output) and not e.partial]


def notes_of(cas: CasStore, output: Output) -> list[tuple[int, int, int, int, int, int]]:
    """(channel, program, start, end, pitch, velocity) of every note in the file."""
    score = read_midi(cas.get(output.digest))
    return [
        (p.channel, p.program, n.start, n.end, n.pitch, n.velocity)
        for p in score.parts
        for n in p.notes
    ]


def put_events(cas: CasStore, events: list[int]) -> str:
    return cas.put(midi_to_bytes(events_to_midi(events)), mime="audio/midi").digest


def phrase(start: int, count: int, instrument: int = 0, step: int = 25) -> list[int]:
    """``count`` C-major notes every ``step`` ticks from ``start``."""
    out: list[int] = []
    for k in range(count):
        pitch = (60, 62, 64, 65, 67)[k % 5]
        out += [start + k * step, V.DUR_OFFSET + 20, V.NOTE_OFFSET + 128 * instrument + pitch]
    return out


def test_key_lock_and_instrument_masks_hold(engine: AmtEngine, cas: CasStore) -> None:
    params = {"length_seconds": 6, "key_lock": True, "instruments": [0, 33], "drums": False}
    request = EngineRequest(
        "key", "generate", params, num_variations=2, seed=7, context=MusicalContext(key="A minor")
    )
    events = run(engine, cas, request)
    streamed = [n for e in events if isinstance(e, Notes) for n in e.notes]
    assert len(streamed) > 15
    white = {0, 2, 4, 5, 7, 9, 11}
    assert all(n.pitch % 12 in white for n in streamed)
    assert {n.instrument for n in streamed} <= {0, 33}
    assert {n.variation for n in streamed} == {0, 1}
    files = outputs(events)
    assert [o.variation_index for o in files] == [0, 1]
    for output in files:
        notes = notes_of(cas, output)
        assert notes and all(pitch % 12 in white for _, _, _, _, pitch, _ in notes)
        assert all(ch != 9 and prog in (0, 33) for ch, prog, *_ in notes)


def test_pitch_range_and_drums_only(engine: AmtEngine, cas: CasStore) -> None:
    params = {"length_seconds": 4, "instruments": [0], "pitch_low": 48, "pitch_high": 52}
    events = run(engine, cas, EngineRequest("range", "generate", params, seed=3))
    streamed = [n for e in events if isinstance(e, Notes) for n in e.notes]
    assert streamed
    assert all(n.instrument == 128 or 48 <= n.pitch <= 52 for n in streamed)
    assert all(n.instrument in (0, 128) for n in streamed)


def test_a_long_run_writes_partial_files_that_grow_into_the_result(cas: CasStore) -> None:
    engine = AmtEngine(partial_every=1e-9)  # a partial file at every step that added notes
    engine.use_model(cast(Any, BiasedModel()).eval(), "biased")
    events = run(engine, cas, EngineRequest("grow", "generate", {"length_seconds": 4}, num_variations=2, seed=1))
    files = [e for e in events if isinstance(e, Output)]
    partial = [o for o in files if o.partial]
    final = {o.variation_index: o for o in files if not o.partial}
    assert list(final) == [0, 1] and files[-2:] == list(final.values())  # the results come last
    for index, result in final.items():
        result_notes = notes_of(cas, result)
        mine = [o for o in partial if o.variation_index == index]
        assert len(mine) >= 3
        counts = [len(notes_of(cas, o)) for o in mine]
        assert counts == sorted(set(counts)) and counts[-1] <= len(result_notes)  # each one grew
        for o in mine:  # what a DAW played mid-generation is the start of the result
            assert set(notes_of(cas, o)) <= set(result_notes)
            assert o.metadata["notes"] == len(notes_of(cas, o))


@pytest.mark.parametrize("task", ["generate", "continue"])
def test_max_silence_bounds_every_gap_between_notes(cas: CasStore, task: str) -> None:
    engine = AmtEngine()
    engine.use_model(cast(Any, SilentModel()).eval(), "silent")  # wants 3 s rests
    prompt = put_events(cas, phrase(0, 8))
    inputs = {"prompt_artifact": prompt} if task == "continue" else {}

    def gaps(params: dict[str, Any]) -> list[float]:
        params = {"length_seconds": 20, **params, **({"prompt_artifact": "p"} if inputs else {})}
        request = EngineRequest("s", task, params, seed=6, inputs=inputs)
        [output] = outputs(run(engine, cas, request))
        onsets = sorted({start / 480 * 60 / 120 for _, _, start, _, _, _ in notes_of(cas, output)})
        assert onsets, "no notes at all"
        return [b - a for a, b in zip([0.0, *onsets], onsets, strict=False)]

    free = gaps({})
    assert max(free) >= 2.5  # left alone, the model rests for seconds
    bounded = gaps({"max_silence_seconds": 1.0})
    assert max(bounded) <= 1.0 + 1e-9
    assert len(bounded) > 2 * len(free)  # the 20 s are filled with notes instead


def test_progress_is_monotonic_and_notes_stream_early(engine: AmtEngine, cas: CasStore) -> None:
    events = run(engine, cas, EngineRequest("p", "generate", {"length_seconds": 5}, seed=1))
    percents = [e.percent for e in events if isinstance(e, Progress)]
    assert percents[0] == 0.0 and percents[-1] == 100.0 and percents == sorted(percents)
    first_notes = next(i for i, e in enumerate(events) if isinstance(e, Notes))
    assert first_notes <= 2  # Progress 0, then the first event's chunk at once
    assert max(len(e.notes) for e in events if isinstance(e, Notes)) <= 4 + 3


def test_bridge_ends_where_b_begins(engine: AmtEngine, cas: CasStore) -> None:
    a = put_events(cas, phrase(0, 12))  # 3 s of A: ends in bar 2 at 120 bpm
    b = put_events(cas, phrase(0, 12, step=40))
    context = MusicalContext(tempo=120.0)
    params = {"a_artifact": "a", "b_artifact": "b", "length_bars": 2}
    request = EngineRequest(
        "bridge",
        "bridge",
        params,
        seed=2,
        inputs={"a_artifact": a, "b_artifact": b},
        context=context,
    )
    events = run(engine, cas, request)
    [output] = outputs(events)
    assert output.metadata["seconds"] == 4.0
    notes = notes_of(cas, output)
    assert notes
    end = 2 * 4 * 480  # two bars of 4/4 at 480 ticks per beat: where B begins
    assert all(0 <= start < end and stop <= end for _, _, start, stop, _, _ in notes)


@pytest.mark.parametrize(
    ("params", "context", "seconds"),
    [
        ({}, MusicalContext(tempo=96.0, bars=8), 20.0),  # the whole 8-bar section
        ({}, MusicalContext(tempo=120.0, meter_numerator=3, bars=5), 7.5),
        ({}, MusicalContext(tempo=60.0, bars=64), 256.0),  # longer than one context: chained
        ({"length_seconds": 3}, MusicalContext(tempo=96.0, bars=8), 3.0),  # an explicit length wins
        ({"length_bars": 2}, MusicalContext(tempo=96.0, bars=8), 5.0),
        ({}, MusicalContext(tempo=96.0), 10.0),  # no section: the documented default
    ],
)
def test_generate_on_a_section_fills_it_unless_told_otherwise(
    engine: AmtEngine, cas: CasStore, params: dict[str, Any], context: MusicalContext, seconds: float
) -> None:
    request = EngineRequest("g", "generate", params, seed=3, context=context)
    [output] = outputs(run(engine, cas, request))
    assert output.metadata["seconds"] == seconds
    onsets = [start / 480 * 60 / context.tempo for _, _, start, _, _, _ in notes_of(cas, output)]
    assert max(onsets) < seconds
    assert max(onsets) > 0.8 * seconds  # the music runs to the end of the length, not short of it
    # no stretch of a chained generation is left empty: every 20 s holds notes
    assert {int(t // 20) for t in onsets} == set(range(math.ceil(seconds / 20)))


def test_long_generation_chains_contexts_deterministically(engine: AmtEngine, cas: CasStore) -> None:
    request = EngineRequest("long", "generate", {"length_seconds": 200}, num_variations=2, seed=8)
    events = run(engine, cas, request)
    first, second = outputs(events)
    assert first.metadata["seconds"] == second.metadata["seconds"] == 200.0
    streamed = sorted(n.onset for e in events if isinstance(e, Notes) for n in e.notes if n.variation == 0)
    assert len(streamed) == first.metadata["notes"]  # what streamed is what the file holds
    assert max(streamed) < 200.0 and min(streamed) >= 0.0
    assert {int(t // 20) for t in streamed} == set(range(10))  # three stages, no gap at the seams
    again = outputs(run(engine, cas, EngineRequest("long2", "generate", {"length_seconds": 200}, seed=8)))
    assert again[0].digest == first.digest  # variation 0 alone = variation 0 of the batch
    assert first.digest != second.digest
    progress = [e.percent for e in events if isinstance(e, Progress)]
    assert progress == sorted(progress) and progress[-1] == 100.0


def test_a_long_continuation_chains_from_the_prompt(engine: AmtEngine, cas: CasStore) -> None:
    prompt = put_events(cas, phrase(0, 16, step=30))
    request = EngineRequest(
        "cont", "continue", {"prompt_artifact": "p", "length_seconds": 120},
        inputs={"prompt_artifact": prompt}, seed=4,
    )
    events = run(engine, cas, request)
    [output] = outputs(events)
    onsets = [n.onset for e in events if isinstance(e, Notes) for n in e.notes]
    assert output.metadata["seconds"] == 120.0 and len(onsets) == output.metadata["notes"]
    assert min(onsets) >= 0.0 and max(onsets) < 120.0
    assert {int(t // 20) for t in onsets} == set(range(6))


def test_lengths_over_a_task_limit_are_refused_naming_it(engine: AmtEngine, cas: CasStore) -> None:
    a = put_events(cas, phrase(0, 4))
    params = {"a_artifact": "a", "b_artifact": "a", "length_seconds": 120}
    request = EngineRequest("b", "bridge", params, inputs={"a_artifact": a, "b_artifact": a})
    with pytest.raises(EngineError, match=r"length of 120\.0 s is over the 90 s one model context holds"):
        engine.start(request, cas)
    with pytest.raises(EngineError, match="less than or equal to 600"):
        engine.start(EngineRequest("g", "generate", {"length_seconds": 601}), cas)


def test_loop_is_exactly_n_bars(engine: AmtEngine, cas: CasStore) -> None:
    context = MusicalContext(tempo=100.0, meter_numerator=3, meter_denominator=4)
    params = {"bars": 3, "quantize": "1/8"}
    events = run(engine, cas, EngineRequest("loop", "loop", params, seed=4, context=context))
    [output] = outputs(events)
    data = cas.get(output.digest)
    bars = 3 * 3 * 480
    assert score_length_ticks(data) == bars
    notes = notes_of(cas, output)
    assert len(notes) > 10
    assert all(0 <= start < bars and stop <= bars for _, _, start, stop, _, _ in notes)
    assert all(start % 240 == 0 for _, _, start, _, _, _ in notes)  # quantized to eighths


def test_infill_keeps_everything_outside_its_range(engine: AmtEngine, cas: CasStore) -> None:
    original = (MIDI_DIR / "bach_bwv66.6.mid").read_bytes()
    digest = cas.put(original, mime="audio/midi").digest
    params = {"artifact": "x", "start_seconds": 4.0, "end_seconds": 7.0, "instruments": [0]}
    events = run(
        engine, cas, EngineRequest("in", "infill", params, seed=5, inputs={"artifact": digest})
    )
    [output] = outputs(events)
    score = read_midi(original)
    tmap = TempoMap(score.tempos, score.ticks_per_beat)

    def outside(notes: list[tuple[int, int, int, int, int, int]]) -> list[Any]:
        return sorted(n for n in notes if not 4.0 <= tmap.seconds(n[2]) < 7.0)

    before = [
        (p.channel, p.program, n.start, n.end, n.pitch, n.velocity)
        for p in score.parts
        for n in p.notes
    ]
    after = notes_of(cas, output)
    assert outside(after) == outside(before)
    inside = [n for n in after if 4.0 <= tmap.seconds(n[2]) < 7.0]
    assert inside and all(n[1] == 0 for n in inside)
    assert len(outside(before)) < len(before)  # the range really held notes


def test_continue_and_accompany(engine: AmtEngine, cas: CasStore) -> None:
    melody = put_events(cas, phrase(0, 16, instrument=73, step=30))
    request = EngineRequest(
        "acc",
        "accompany",
        {"melody_artifact": "m", "instruments": [0]},
        inputs={"melody_artifact": melody},
    )
    events = run(engine, cas, request)
    streamed = [n for e in events if isinstance(e, Notes) for n in e.notes]
    assert streamed and all(n.instrument in (0, 128) for n in streamed)
    assert max(n.onset for n in streamed) < 16 * 0.3 + 0.2
    request = EngineRequest(
        "cont",
        "continue",
        {"prompt_artifact": "p", "length_seconds": 3},
        inputs={"prompt_artifact": melody},
    )
    events = run(engine, cas, request)
    streamed = [n for e in events if isinstance(e, Notes) for n in e.notes]
    assert streamed and all(0.0 <= n.onset < 3.0 for n in streamed)


def test_embed_returns_a_vector(cas: CasStore) -> None:
    engine = AmtEngine()
    engine.use_model(tiny_gpt2(), "tiny")
    digest = cas.put((MIDI_DIR / "bach_bwv66.6.mid").read_bytes(), mime="audio/midi").digest
    for fmt in ("json", "npy"):
        params = {"artifact": "x", "layer": 1, "format": fmt}
        events = run(engine, cas, EngineRequest("e", "embed", params, inputs={"artifact": digest}))
        [output] = outputs(events)
        assert output.kind == "embedding"
        result = events[-1].result  # type: ignore[union-attr]
        assert result["dimension"] == 64 and result["layer"] == 1 and len(result["vector"]) == 64
        assert result["tokens"] > 3 and result["truncated"] is False
        assert output.metadata["dimension"] == 64


@pytest.mark.parametrize(
    ("task", "params", "variations"),
    [
        ("generate", {"top_p": 0}, 1),
        ("generate", {"length_seconds": 5}, 9),
        ("generate", {"key_lock": True}, 1),
        ("loop", {"bars": 16, "seed": -1}, 1),
        ("infill", {"artifact": "x", "start_seconds": 5, "end_seconds": 4}, 1),
        ("continue", {"prompt_artifact": "x"}, 1),
    ],
)
def test_invalid_requests_are_rejected_at_start(
    engine: AmtEngine, cas: CasStore, task: str, params: dict[str, Any], variations: int
) -> None:
    with pytest.raises(EngineError) as err:
        engine.start(EngineRequest("bad", task, params, num_variations=variations), cas)
    assert err.value.code == "validation_failed"
    assert err.value.details["errors"]
