"""The training-sequence builder against the reference ``tokenize`` outputs."""

from __future__ import annotations

import numpy as np
import pytest
from amt_fixture_data import index, midi_path, piece, piece_names

from engines.amt import codec, ops, tokenize
from engines.amt import vocab as V

NAMES = piece_names()
AUGMENT_10 = [n for n in NAMES if "augment_10" in piece(n)["tokenize"]]


@pytest.mark.parametrize("name", NAMES)
def test_augment_1_exact(name: str) -> None:
    expected = piece(name)["tokenize"]["augment_1"]
    result = tokenize.tokenize([codec.midi_to_compound(midi_path(name))], augment_factor=1)
    assert result.sequences == expected["sequences"]
    assert list(result.stats.as_tuple()) == expected["stats"]
    row = next(r for r in index() if r["fixture"] == f"{name}.json")
    assert list(result.stats.as_tuple()) == row["tokenize_stats_augment_1"]


def test_augment_10_fixtures_present() -> None:
    assert len(AUGMENT_10) == 3


@pytest.mark.parametrize("name", AUGMENT_10)
def test_augment_10_replays_legacy_rng(name: str) -> None:
    expected = piece(name)["tokenize"]["augment_10"]
    result = tokenize.tokenize([codec.midi_to_compound(midi_path(name))], augment_factor=10)
    assert result.sequences == expected["sequences"]
    assert list(result.stats.as_tuple()) == expected["stats"]


def test_sequences_are_well_formed_with_a_generator() -> None:
    compounds = [codec.midi_to_compound(midi_path(n)) for n in NAMES]
    result = tokenize.tokenize(compounds, augment_factor=10, rng=np.random.default_rng(3))
    assert result.stats.sequences == len(result.sequences) > 10
    flags = set()
    for seq in result.sequences:
        assert len(seq) == V.CONTEXT_SIZE
        assert seq[0] in (V.AUTOREGRESS, V.ANTICIPATE)
        flags.add(seq[0])
        body = seq[1:]
        assert ops.max_time(body) < V.MAX_TIME
        # every sequence decodes (controls, RESTs and separators included)
        codec.events_to_compound(body)
    assert flags == {V.AUTOREGRESS, V.ANTICIPATE}


def test_filters_count_skipped_pieces() -> None:
    short = codec.midi_to_compound(midi_path("synthetic_type0"))
    result = tokenize.tokenize([short, short], augment_factor=1)
    assert result.stats.short == 2 and result.sequences == []
