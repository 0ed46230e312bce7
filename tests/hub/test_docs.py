"""Docs generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from hub.docs import errors_markdown
from hub.errors import ERROR_DESCRIPTIONS, ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def test_every_error_code_is_described() -> None:
    assert set(ERROR_DESCRIPTIONS) == set(ErrorCode)


def test_checked_in_error_docs_are_current() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert text == errors_markdown(), "docs/errors.md is stale: run `tutti docs`"
    for code in ErrorCode:
        assert f"`{code.value}`" in text
