"""Exact agreement of the codec with the reference golden vectors, for every fixture."""

from __future__ import annotations

import hashlib

import pytest
from amt_fixture_data import midi_path, midi_rows, piece, piece_names

from engines.amt import codec

NAMES = piece_names()


@pytest.mark.parametrize("name", NAMES)
def test_midi_fixture_is_the_one_the_vectors_came_from(name: str) -> None:
    digest = hashlib.sha256(midi_path(name).read_bytes()).hexdigest()
    assert digest == piece(name)["sha256"]


@pytest.mark.parametrize("name", NAMES)
def test_compound(name: str) -> None:
    assert codec.midi_to_compound(midi_path(name)) == piece(name)["compound"]


@pytest.mark.parametrize("name", NAMES)
def test_events(name: str) -> None:
    events = codec.midi_to_events(midi_path(name))
    assert events == piece(name)["events"]
    assert len(events) == 3 * piece(name)["n_events"]


@pytest.mark.parametrize("name", NAMES)
def test_events_from_bytes_equal_events_from_path(name: str) -> None:
    data = midi_path(name).read_bytes()
    assert codec.midi_to_events(data) == piece(name)["events"]


@pytest.mark.parametrize("name", NAMES)
def test_events_to_midi(name: str) -> None:
    expected = piece(name)["events_to_midi"]
    mid = codec.events_to_midi(piece(name)["events"])
    assert mid.type == expected["type"]
    assert mid.ticks_per_beat == expected["ticks_per_beat"]
    assert midi_rows(mid) == expected["tracks"]


@pytest.mark.parametrize("name", NAMES)
def test_roundtrip_events(name: str) -> None:
    fx = piece(name)
    expected = (
        fx["events"] if fx["roundtrip_events"] == "SAME_AS_EVENTS" else fx["roundtrip_events"]
    )
    data = codec.midi_to_bytes(codec.events_to_midi(fx["events"]))
    again = codec.midi_to_events(data)
    assert again == expected
    assert (again == fx["events"]) == fx["roundtrip_equal"]


@pytest.mark.parametrize("name", NAMES)
def test_interarrival(name: str) -> None:
    fx = piece(name)
    tokens = codec.midi_to_interarrival(midi_path(name))
    assert tokens == fx["interarrival"]
    expected = (
        fx["interarrival"]
        if fx["roundtrip_interarrival"] == "SAME_AS_INTERARRIVAL"
        else fx["roundtrip_interarrival"]
    )
    again = codec.midi_to_interarrival(codec.midi_to_bytes(codec.interarrival_to_midi(tokens)))
    assert again == expected
