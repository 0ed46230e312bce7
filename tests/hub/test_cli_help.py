"""Every ``tutti`` command explains itself: its own --help opens with what it does."""

from __future__ import annotations

import argparse

import pytest

from hub.cli import build_parser


def _commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


@pytest.mark.parametrize("name", sorted(_commands()))
def test_each_command_help_has_a_description(
    name: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        build_parser().parse_args([name, "--help"])
    assert done.value.code == 0
    text = capsys.readouterr().out
    description = _commands()[name].description
    assert description and len(description) > 20
    assert description.splitlines()[0] in text
    # every argument says what it is for
    for action in _commands()[name]._actions:
        if not isinstance(action, argparse._HelpAction):
            assert action.help, f"tutti {name}: {action.dest} has no help text"
