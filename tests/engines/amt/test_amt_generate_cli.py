"""``tutti generate``: one AMT task without a server, through the real parser and the
bundled model, as a musician runs it."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest
from amt_fixture_data import MIDI_DIR

from engines.amt.evaluate.samples import check_midi
from engines.amt.generate_cli import task_parameters
from engines.amt.tasks import TASKS
from hub.cli import build_parser

PROMPT = MIDI_DIR / "bach_bwv66.6.mid"
OTHER = MIDI_DIR / "bach_bwv1.6.mid"


def tutti(*argv: str) -> int:
    args = build_parser().parse_args(["generate", *argv])
    code: int = args.func(args)
    return code


def notes(path: Path) -> int:
    return sum(1 for track in mido.MidiFile(path).tracks for m in track if m.type == "note_on")


def test_generate_writes_a_playable_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "idea.mid"
    assert tutti("--length", "12", "--seed", "1", "--out", str(out)) == 0
    assert check_midi(out.read_bytes()) == "" and notes(out) > 0
    assert f"wrote {out}" in capsys.readouterr().out


def test_variations_go_to_numbered_files_and_differ(tmp_path: Path) -> None:
    out = tmp_path / "v.mid"
    assert tutti("--length", "4", "--variations", "2", "--out", str(out)) == 0
    first, second = tmp_path / "v-01.mid", tmp_path / "v-02.mid"
    assert first.read_bytes() != second.read_bytes()
    assert not out.exists()


def test_continue_reads_the_prompt_and_writes_bars_at_the_tempo(tmp_path: Path) -> None:
    out = tmp_path / "more.mid"
    args = ["--task", "continue", "--prompt", str(PROMPT), "--bars", "2", "--tempo", "96"]
    assert tutti(*args, "--out", str(out)) == 0
    midi = mido.MidiFile(out)
    tempos = [m.tempo for track in midi.tracks for m in track if m.type == "set_tempo"]
    assert tempos and mido.tempo2bpm(tempos[0]) == pytest.approx(96)
    assert notes(out) > 0


def test_bridge_takes_two_files(tmp_path: Path) -> None:
    out = tmp_path / "bridge.mid"
    args = ["--task", "bridge", "--a", str(OTHER), "--b", str(PROMPT), "--length", "3"]
    assert tutti(*args, "--out", str(out)) == 0
    assert out.stat().st_size > 0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--task", "continue"], "task 'continue' needs --prompt FILE.mid"),
        (["--task", "bridge", "--a", "a.mid"], "needs --b FILE.mid"),
        (["--task", "continue", "--prompt", "missing.mid"], "--prompt: no such file: missing.mid"),
        (["--param", "nonsense"], "--param must look like NAME=JSON"),
        (["--param", "top_p=7"], "top_p"),
        (["--meter", "four"], "--meter must look like 3/4, got 'four'"),
        (["--model", "/no/such/folder"], "neither a folder nor a hub id"),
    ],
)
def test_bad_input_is_one_clear_line_and_exit_2(
    argv: list[str], message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert tutti(*argv, "--out", str(tmp_path / "x.mid")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err and err[-1].startswith("tutti generate: ") and message in err[-1]
    assert not (tmp_path / "x.mid").exists()


def test_a_prompt_that_is_not_midi_is_reported(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.mid"
    bad.write_text("not midi")
    assert tutti("--task", "continue", "--prompt", str(bad), "--out", str(tmp_path / "x.mid")) == 2
    assert "is not readable MIDI" in capsys.readouterr().err


def test_list_params_shows_every_parameter_with_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    assert tutti("--task", "bridge", "--list-params") == 0
    out = capsys.readouterr().out
    schema = TASKS.get("bridge").info().params_schema
    for name in schema["properties"]:
        assert f"  {name} " in out
    assert "a_artifact           required" in out
    assert "top_p                default 0.95" in out and "(0.0..1.0)" in out
    assert "input files: --a FILE.mid, --b FILE.mid" in out
    assert task_parameters("embed").startswith("embed: ")
    assert "one of mean, last" in task_parameters("embed")


def test_help_lists_the_tasks_and_examples(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        tutti("--help")
    assert done.value.code == 0
    text = capsys.readouterr().out
    for info in TASKS.infos():
        assert f"  {info.name}" in text and info.description in text
    assert "examples:" in text and "--list-params" in text
