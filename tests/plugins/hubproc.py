"""A real hub in a subprocess for the plugin tests: tests/hub/serverkit.py's, keeping its port.

A restart keeps the port, so a client reconnecting to the same URL finds the restarted hub
(the reconnect storm depends on it).
"""

from __future__ import annotations

from pathlib import Path

from tests.hub.serverkit import REPO, SLOW_ENGINE, HubProcess

__all__ = ["REPO", "SLOW_ENGINE", "Hub"]


class Hub(HubProcess):
    def __init__(self, data: Path) -> None:
        super().__init__(data, keep_port=True)

    def start(self, timeout: float = 60.0) -> None:
        super().start(timeout)
