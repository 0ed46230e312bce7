"""Loading the AMT golden vectors copied into tests/fixtures (never from ../shared)."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import mido

TESTS_DIR = Path(__file__).resolve().parents[2]
AMT_DIR = TESTS_DIR / "fixtures" / "amt"
MIDI_DIR = TESTS_DIR / "fixtures" / "midi"


@cache
def index() -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((AMT_DIR / "index.json").read_text())
    return rows


def piece_names() -> list[str]:
    """Fixture stems, e.g. ``bach_bwv66.6``; the suite fails if the folder is missing."""
    names = [row["fixture"].removesuffix(".json") for row in index()]
    if len(names) != 13:
        raise AssertionError(f"expected 13 AMT fixtures, found {len(names)}")
    return names


@cache
def piece(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AMT_DIR / f"{name}.json").read_text())
    return data


def midi_path(name: str) -> Path:
    return MIDI_DIR / str(piece(name)["file"])


@cache
def vocab_json() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AMT_DIR / "vocab.json").read_text())
    return data


@cache
def generate_cases() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((AMT_DIR / "generate_fake_model.json").read_text())
    return data


def midi_rows(mid: mido.MidiFile) -> list[list[list[Any]]]:
    """The fixture's per-track rows ``[type, channel, program|note, velocity, delta]``."""
    tracks: list[list[list[Any]]] = []
    for track in mid.tracks:
        rows: list[list[Any]] = []
        for msg in track:
            if msg.type == "program_change":
                rows.append(["program_change", msg.channel, msg.program, None, msg.time])
            elif msg.type in ("note_on", "note_off"):
                rows.append([msg.type, msg.channel, msg.note, msg.velocity, msg.time])
            elif msg.type != "end_of_track":  # mido adds one when saving
                rows.append([msg.type, None, None, None, msg.time])
        tracks.append(rows)
    return tracks
