"""`tutti config` prints every option at its default, and checks a file: the settings the
hub would use, or each problem with its field (exit 2)."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from hub.cli import main
from hub.config import HubConfig, load_config


def _run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["config", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def _load_text(text: str, tmp_path: Path) -> HubConfig:
    path = tmp_path / "uncommented.toml"
    path.write_text(text, encoding="utf-8")
    return load_config(path, {})


def test_without_a_file_it_prints_a_config_the_hub_reads_as_its_defaults(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run([], capsys)
    assert code == 0
    path = tmp_path / "tutti.toml"
    path.write_text(out, encoding="utf-8")
    assert load_config(path, {}) == HubConfig()
    # unset options are shown commented out, with a value of the right type
    assert '# token = "' in out and "# socket_send_buffer = 65536" in out
    uncommented = "\n".join(line.removeprefix("# ") for line in out.splitlines()[1:])
    assert _load_text(uncommented, tmp_path).limits.socket_send_buffer == 65536


def test_a_valid_file_prints_the_merged_settings(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tutti.toml"
    path.write_text("[tutti]\nport = 9000\nengine_concurrency = {amt = 2}\n"
                    "[tutti.limits]\nsocket_send_buffer = 8192\n", encoding="utf-8")
    code, out, err = _run([str(path)], capsys)
    assert (code, err) == (0, "")
    assert out.splitlines()[0] == f"# {path} is valid; the hub would run with these settings:"
    settings = tomllib.loads(out)["tutti"]
    assert settings["port"] == 9000 and settings["engine_concurrency"] == {"amt": 2}
    assert settings["limits"]["socket_send_buffer"] == 8192
    assert settings["host"] == "127.0.0.1"  # defaults filled in


def test_an_invalid_file_names_each_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tutti.toml"
    path.write_text('[tutti]\nlog_level = "loud"\n[tutti.limits]\nsocket_send_buffer = 100\n', encoding="utf-8")
    code, out, err = _run([str(path)], capsys)
    assert (code, out) == (2, "")
    lines = err.strip().splitlines()
    assert lines[0] == "tutti config: invalid configuration: 2 problem(s)"
    assert lines[1] == "  log_level: Input should be 'debug', 'info', 'warning' or 'error'"
    assert lines[2] == "  limits.socket_send_buffer: Input should be greater than or equal to 4096"


def test_an_unsafe_file_is_refused_with_a_hint(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "tutti.toml"
    path.write_text('[tutti]\nhost = "0.0.0.0"\n', encoding="utf-8")
    code, _, err = _run([str(path)], capsys)
    assert code == 2
    assert "a token is required" in err and "hint: pass --token" in err


def test_a_missing_file_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = _run([str(tmp_path / "nope.toml")], capsys)
    assert code == 2
    assert err.startswith(f"tutti config: cannot read config {tmp_path / 'nope.toml'}")
