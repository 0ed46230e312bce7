"""Fixtures for the plugin tests: a real hub process (slow test engine registered)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.plugins.hubproc import Hub


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """One hub shared by a test module."""
    proc = Hub(tmp_path_factory.mktemp("plugin-hub") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def own_hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    """A hub for one test that may kill and restart it (same port, same data)."""
    proc = Hub(tmp_path_factory.mktemp("plugin-own-hub") / "data")
    proc.start()
    yield proc
    proc.stop()
