"""The typed constants in engines.amt.vocab equal the reference's vocab.json."""

from __future__ import annotations

from amt_fixture_data import vocab_json

from engines.amt import vocab as V


def test_every_vocab_json_constant_matches() -> None:
    data = vocab_json()
    constants = {k: v for k, v in data.items() if k != "sampling_allowed_range_by_slot"}
    assert len(constants) >= 35
    for name, value in constants.items():
        assert getattr(V, name) == value, name


def test_blocks_are_contiguous() -> None:
    assert V.DUR_OFFSET == V.TIME_OFFSET + V.MAX_TIME
    assert V.NOTE_OFFSET == V.DUR_OFFSET + V.MAX_DUR
    assert V.REST == V.NOTE_OFFSET + V.MAX_NOTE
    assert V.SPECIAL_OFFSET == V.ANOTE_OFFSET + V.MAX_NOTE
    assert V.VOCAB_SIZE == 55028
