"""Docs generated from code stay in step with it."""

from __future__ import annotations

from pathlib import Path

from hub.config import HubConfig
from hub.docs import config_markdown, errors_markdown
from hub.errors import ERROR_DESCRIPTIONS, ErrorCode

ROOT = Path(__file__).resolve().parents[2]


def test_every_error_code_is_described() -> None:
    assert set(ERROR_DESCRIPTIONS) == set(ErrorCode)


def test_checked_in_error_docs_are_current() -> None:
    text = (ROOT / "docs" / "errors.md").read_text(encoding="utf-8")
    assert text == errors_markdown(), "docs/errors.md is stale: run `tutti docs`"
    for code in ErrorCode:
        assert f"`{code.value}`" in text


def test_checked_in_config_docs_are_current() -> None:
    text = (ROOT / "docs" / "config.md").read_text(encoding="utf-8")
    assert text == config_markdown(), "docs/config.md is stale: run `tutti docs`"


def test_config_docs_describe_every_option() -> None:
    text = config_markdown()
    for table in (HubConfig, type(HubConfig().limits), type(HubConfig().retention)):
        for key, info in table.model_fields.items():
            assert f"| `{key}` |" in text or f"`[tutti.{key}]`" in text, key
            if f"| `{key}` |" in text:
                assert info.description, f"{table.__name__}.{key} has no description"
