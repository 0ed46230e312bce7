"""Sequence operations against the reference outputs in each fixture's ``ops`` block."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from amt_fixture_data import piece, piece_names

from engines.amt import codec, ops
from engines.amt import vocab as V

NAMES = piece_names()


def _ops(name: str) -> tuple[list[int], dict[str, Any]]:
    fx = piece(name)
    return fx["events"], fx["ops"]


def _short(events: list[int]) -> list[int]:
    return ops.clip_seconds(events, 0, 10, clip_duration=False)


@pytest.mark.parametrize("name", NAMES)
def test_min_max_time(name: str) -> None:
    events, o = _ops(name)
    assert ops.max_time(events) == o["max_time_ticks"]
    assert ops.max_time(events) / V.TIME_RESOLUTION == o["max_time_seconds"]
    assert ops.min_time(events) == o["min_time_ticks"]
    assert o["max_time_ticks_by_instr"]
    for instr, value in o["max_time_ticks_by_instr"].items():
        assert ops.max_time(events, int(instr)) == value
    for instr, value in o["min_time_ticks_by_instr"].items():
        assert ops.min_time(events, int(instr)) == value


@pytest.mark.parametrize("name", NAMES)
def test_get_instruments_and_sparsity(name: str) -> None:
    events, o = _ops(name)
    assert {str(k): v for k, v in ops.get_instruments(events).items()} == o["get_instruments"]
    assert ops.sparsity(events) == o["sparsity"]


@pytest.mark.parametrize("name", NAMES)
def test_clip_translate_mask(name: str) -> None:
    events, o = _ops(name)
    clipped = ops.clip_seconds(events, 2, 8)
    assert clipped == o["clip_2_8"]
    assert ops.clip_seconds(events, 2, 8, clip_duration=False) == o["clip_2_8_noclipdur"]
    assert ops.clip(events, 150, 650) == o["clip_ticks_150_650"]
    assert ops.translate(clipped, -ops.min_time(clipped)) == o["translate_clip_2_8_to_zero"]
    assert ops.mask(ops.clip_seconds(events, 0, 6), 1, 3) == o["mask_1_3"]


@pytest.mark.parametrize("name", NAMES)
def test_pad_unpad(name: str) -> None:
    events, o = _ops(name)
    short = _short(events)
    assert ops.pad(short) == o["pad_short"]
    assert ops.pad(short, 1500) == o["pad_short_end_1500"]
    assert ops.pad(short, density=50) == o["pad_short_density_50"]
    assert (ops.unpad(ops.pad(short)) == short) == o["unpad_pad_short_equals_short"]
    assert ops.unpad(ops.pad(short)) == short


@pytest.mark.parametrize("name", NAMES)
def test_extract_instruments_and_anticipate(name: str) -> None:
    events, o = _ops(name)
    short = _short(events)
    kept, controls = ops.extract_instruments(short, o["extract_instruments_arg"])
    assert [kept, controls] == [
        o["extract_instruments"]["events"],
        o["extract_instruments"]["controls"],
    ]

    padded_case = o["anticipate_padded"]
    assert padded_case["end_time"] == ops.max_time(short)
    padded = ops.pad(kept, padded_case["end_time"])
    tokens, leftover = ops.anticipate(padded, controls)
    assert tokens == padded_case["tokens"]
    assert leftover == padded_case["leftover_controls"] == []

    tokens_u, leftover_u = ops.anticipate(kept, controls)
    assert tokens_u == o["anticipate_unpadded"]["tokens"]
    assert leftover_u == o["anticipate_unpadded"]["leftover_controls"]
    assert ops.anticipate(padded, controls, delta=100)[0] == o["anticipate_delta_100"]

    assert (ops.split(tokens) == (padded, controls)) == o["split_anticipated_equal"]
    assert ops.combine(kept, controls) == o["combine_instr_split"]
    assert codec.events_to_compound(tokens) == o["events_to_compound_anticipated"]
    shifted = [V.CONTROL_OFFSET + tok for tok in kept]
    assert ops.sort(controls + shifted) == o["sort_of_controls_plus_events_shifted"]


@pytest.mark.parametrize("name", NAMES)
def test_rng_extractions_replay_legacy_seed0(name: str) -> None:
    # RandomState(0) is the stream of the reference's numpy.random.seed(0)
    events, o = _ops(name)
    short = _short(events)
    spans = ops.extract_spans(short, 0.05, np.random.RandomState(0))
    expected = o["extract_spans_seed0_rate0.05"]
    assert list(spans) == [expected["events"], expected["controls"]]
    rand = ops.extract_random(short, 3, np.random.RandomState(0))
    expected = o["extract_random_seed0_rate3"]
    assert list(rand) == [expected["events"], expected["controls"]]


@pytest.mark.parametrize("name", NAMES)
def test_extractions_with_generator_partition_the_events(name: str) -> None:
    events, _ = _ops(name)
    short = _short(events)
    for kept, controls in (
        ops.extract_spans(short, 0.05, np.random.default_rng(7)),
        ops.extract_random(short, 5, np.random.default_rng(7)),
    ):
        merged = ops.combine(kept, controls)
        assert sorted(ops.triples(merged)) == sorted(ops.triples(short))
        assert merged == ops.sort(merged)
        assert all(tok >= V.CONTROL_OFFSET for tok in controls)
