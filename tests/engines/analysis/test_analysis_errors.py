"""Invalid input gives structured errors."""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from analysis_midi import c_major_scale

from engines.analysis import AnalysisError, analyze, compute_metadata, parse_midi
from engines.errors import EngineError

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "midi" / "bach_bwv66.6.mid"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too_short"),
        (b"MThd", "too_short"),
        (b"this is not a MIDI file at all", "bad_magic"),
        (b"RIFF" + bytes(40), "bad_magic"),
        (b"MThd" + struct.pack(">IHHH", 6, 1, 2, 480), "missing_tracks"),
        (b"MThd" + struct.pack(">IHHH", 6, 7, 1, 480) + b"MTrk" + bytes(4), "bad_format"),
        (b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0) + b"MTrk" + bytes(4), "zero_division"),
    ],
)
def test_garbage_is_invalid_midi(data: bytes, reason: str) -> None:
    with pytest.raises(AnalysisError) as info:
        compute_metadata(data)
    err = info.value
    assert isinstance(err, EngineError)
    assert err.code == "invalid_midi"
    assert err.details["reason"] == reason
    assert err.message


@pytest.mark.parametrize("keep", [0.25, 0.5, 0.9, 0.999])
def test_truncated_file_names_the_chunk(keep: float) -> None:
    data = FIXTURE.read_bytes()
    cut = data[: int(len(data) * keep)]
    with pytest.raises(AnalysisError) as info:
        parse_midi(cut)
    err = info.value
    assert err.code == "invalid_midi"
    assert err.details["reason"] in {"truncated_chunk", "truncated_chunk_header", "missing_tracks"}
    if err.details["reason"] == "truncated_chunk":
        assert int(str(err.details["declared_length"])) > int(str(err.details["available_bytes"]))
        assert "track" in err.details


def test_truncated_generated_file() -> None:
    data = c_major_scale()
    with pytest.raises(AnalysisError) as info:
        analyze(data[:-5], ["harmony"])
    assert info.value.code == "invalid_midi"
    assert info.value.details["reason"] == "truncated_chunk"


def test_smpte_division_is_reported_as_unsupported() -> None:
    data = b"MThd" + struct.pack(">IHHH", 6, 0, 1, 0xE728) + b"MTrk" + struct.pack(">I", 4) + b"\x00\xff\x2f\x00"
    with pytest.raises(AnalysisError) as info:
        parse_midi(data)
    assert info.value.code == "unsupported_midi"


def test_unknown_analysis_lists_valid_ones() -> None:
    with pytest.raises(AnalysisError) as info:
        analyze(c_major_scale(), ["harmony", "timbre"])
    err = info.value
    assert err.code == "unknown_analysis"
    assert err.details["unknown"] == ["timbre"]
    assert err.details["valid"] == ["structure", "motifs", "harmony", "rhythm"]
    assert "structure, motifs, harmony, rhythm" in err.message
