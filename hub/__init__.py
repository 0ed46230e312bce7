"""Tutti hub: sessions, durable event log, WebSocket protocol, jobs, CAS, transport."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tutti")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.1.0"
