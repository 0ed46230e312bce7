"""Fixtures for the real-server integration tests (helpers live in serverkit.py)."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest
from serverkit import REPO, HubProcess

from hub.config import HubConfig
from hub.runtime import Hub

# The server imports the slow test engine as ``tests.engines.slow_engine``; tests do too.
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """One hub (default config plus the slow engine) shared by a test module."""
    proc = HubProcess(tmp_path_factory.mktemp("hub") / "data")
    proc.start()
    yield proc
    proc.stop()


@pytest.fixture
def make_hub(tmp_path: Path) -> Iterator[Callable[..., HubProcess]]:
    """Start a hub with a TOML config body (``[tutti...]`` tables) on a fresh data folder."""
    started: list[HubProcess] = []

    def make(config_toml: str | None = None, *, start: bool = True) -> HubProcess:
        n = len(started)
        config = None
        if config_toml is not None:
            config = tmp_path / f"hub{n}.toml"
            config.write_text(config_toml, encoding="utf-8")
        proc = HubProcess(tmp_path / f"data{n}", config=config)
        started.append(proc)
        if start:
            proc.start()
        return proc

    yield make
    for proc in started:
        proc.stop()




@pytest.fixture
async def ihub(tmp_path: Path) -> AsyncIterator[Hub]:
    """An in-process hub (real stores and engine workers, no server, no inbox watcher)."""
    hub = Hub(HubConfig(data=tmp_path / "data", watch_inbox=False, disabled_engines=["amt"]))
    await hub.start()
    try:
        yield hub
    finally:
        await hub.stop()
