"""Key estimates agree with music21's analyze('key') (answers checked in, music21 not run)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from engines.analysis import compute_metadata
from engines.analysis.keys import MAJOR_TONICS, MINOR_TONICS

ROOT = Path(__file__).resolve().parents[2] / "fixtures"
ANSWERS = json.loads((ROOT / "analysis" / "music21_keys.json").read_text())


def _pitch_class(key: str) -> tuple[int, str]:
    tonic, mode = key.split()
    names = MAJOR_TONICS if mode == "major" else MINOR_TONICS
    return names.index(tonic), mode


def test_answers_cover_ten_tonal_fixtures_as_committed() -> None:
    pieces = ANSWERS["pieces"]
    assert len(pieces) == 10
    for p in pieces:  # the answers belong to exactly these bytes
        data = (ROOT / "midi" / p["file"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == p["sha256"], p["file"]


def test_at_least_nine_of_ten_agree_with_music21() -> None:
    agree, misses = 0, []
    for p in ANSWERS["pieces"]:
        m = compute_metadata((ROOT / "midi" / p["file"]).read_bytes())
        assert m.key is not None
        ours = _pitch_class(m.key)
        if ours == (p["tonic_pitch_class"], p["mode"]):
            agree += 1
        else:
            misses.append((p["file"], m.key, f"{p['tonic']} {p['mode']}"))
    assert agree >= 9, misses
