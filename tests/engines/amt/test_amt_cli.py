"""``tokens_main`` / ``detokenize_main``: the functions behind ``tutti tokens|detokenize``."""

from __future__ import annotations

import json
from pathlib import Path

import mido
import pytest
from amt_fixture_data import midi_path, midi_rows, piece, piece_names

from engines.amt import codec
from engines.amt.cli import detokenize_main, tokens_main
from engines.amt.errors import CodecError

NAMES = piece_names()


@pytest.mark.parametrize("name", NAMES)
def test_tokens_prints_the_fixture_events(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert tokens_main(midi_path(name)) == 0
    out = capsys.readouterr().out
    assert json.loads(out) == piece(name)["events"]
    assert out.count("\n") == 1


@pytest.mark.parametrize("name", NAMES)
def test_detokenize_writes_reference_midi(name: str, tmp_path: Path) -> None:
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps(piece(name)["events"]))
    out = tmp_path / "out.mid"
    assert detokenize_main(tokens, out) == 0
    mid = mido.MidiFile(str(out))
    assert mid.ticks_per_beat == 50
    assert midi_rows(mid) == piece(name)["events_to_midi"]["tracks"]


def test_tokens_then_detokenize_round_trip(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tokens_main(midi_path("haydn_op74no1_mv1")) == 0
    tokens = tmp_path / "t.json"
    tokens.write_text(capsys.readouterr().out)
    assert detokenize_main(tokens, tmp_path / "o.mid") == 0
    assert codec.midi_to_events(tmp_path / "o.mid") == piece("haydn_op74no1_mv1")["events"]


def test_tokens_on_truncated_midi_fails_cleanly(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_bytes(midi_path("bach_bwv66.6").read_bytes()[:100])
    assert tokens_main(bad) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.startswith(f"tutti tokens: {bad}: ") and "invalid or truncated MIDI" in captured.err
    with pytest.raises(CodecError, match="truncated"):
        codec.midi_to_events(bad)


def test_tokens_on_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tokens_main(tmp_path / "nope.mid") == 1
    assert "not found" in capsys.readouterr().err


def test_not_midi_at_all_raises_codec_error() -> None:
    with pytest.raises(CodecError):
        codec.midi_to_events(b"this is not a midi file")


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("[1, 2", "not valid JSON"),
        ('{"x": 1}', "list of integer tokens"),
        ("[0, 10000]", "multiple of 3"),
        ("[0, 27512, 11060]", "invalid time/duration"),
        ("[0, 10010, 5]", "invalid note"),
        ("[true, 10010, 11060]", "list of integer tokens"),
    ],
)
def test_detokenize_rejects_bad_tokens(
    payload: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "t.json"
    src.write_text(payload)
    out = tmp_path / "o.mid"
    assert detokenize_main(src, out) == 1
    err = capsys.readouterr().err
    assert err.startswith("tutti detokenize: ") and message in err
    assert not out.exists()


def test_detokenize_accepts_flag_controls_rests_and_separators(tmp_path: Path) -> None:
    seq = [55027, 0, 10050, 11060, 100, 10000, 27512, 27513 + 50, 27513 + 10010, 27513 + 11062]
    seq += [55025] * 3 + [0, 10020, 11064]
    compound = codec.events_to_compound(seq)
    # control shifted back; REST dropped; segment after SEPARATOR starts at the previous end
    assert compound == [0, 50, 60, 0, 72, 50, 10, 62, 0, 72, 60, 20, 64, 0, 72]


def test_too_many_channels_is_a_codec_error() -> None:
    events = [tok for instr in range(17) for tok in (0, 10010, 11000 + 128 * instr + 60)]
    with pytest.raises(CodecError, match="16 MIDI channels"):
        codec.events_to_midi(events)
