"""Fixtures for the browser tests: a real hub (slow test engine) and Debian's Chromium via Playwright.

Screenshots go to test-artifacts/web/ (gitignored). Chromium is never downloaded by
Playwright: the tests use /usr/bin/chromium and fail (not skip) when it is missing.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, ConsoleMessage, Page, sync_playwright

from tests.hub.serverkit import REPO, HubProcess

if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--autoplay-policy=no-user-gesture-required",
]
ARTIFACTS = REPO / "test-artifacts" / "web"


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    proc = HubProcess(tmp_path_factory.mktemp("web-hub") / "data")
    proc.start(timeout=120.0)  # the shared test machine can be slow to spawn engine workers
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package "
            "(sudo apt-get install -y chromium); Playwright's own download is not used"
        )
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture(scope="session")
def shots() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


class PageErrors:
    """Collects uncaught page errors and console errors so a test can assert there were none."""

    def __init__(self) -> None:
        self.errors: list[str] = []

    def watch(self, page: Page, who: str) -> Page:
        page.on("pageerror", lambda e: self.errors.append(f"{who}: {e}"))
        def console(message: ConsoleMessage) -> None:
            if message.type == "error":
                self.errors.append(f"{who} console: {message.text}")

        page.on("console", console)
        return page


@pytest.fixture
def page_errors() -> PageErrors:
    return PageErrors()
