"""Tutti reference client for DAW plugins and tools.

``ClientCore`` is the protocol without I/O (port it to C++/JS as-is); ``TuttiClient``
runs it over ``websockets`` with reconnects, heartbeats, clock sync and HTTP transfers.
"""

from plugins.client.backoff import Backoff
from plugins.client.clocksync import ClockEstimator, ClockSample
from plugins.client.connection import (
    ClientClosed,
    CommandFailed,
    ConnectionLostError,
    TuttiClient,
)
from plugins.client.core import ClientCore
from plugins.client.files import TransferError, download_verified, http_base, upload_bytes
from plugins.client.frames import MalformedFrame, parse_server_frame
from plugins.client.hosttimeline import HostTimeline
from plugins.client.outputs import (
    CommandLost,
    Connected,
    Delivery,
    Disconnected,
    NotesGap,
    ProtocolError,
    Replied,
)
from plugins.client.timeline import beat_at, local_beat, local_time_of_beat

__all__ = [
    "Backoff",
    "ClientClosed",
    "ClientCore",
    "ClockEstimator",
    "ClockSample",
    "CommandFailed",
    "CommandLost",
    "Connected",
    "ConnectionLostError",
    "Delivery",
    "Disconnected",
    "HostTimeline",
    "MalformedFrame",
    "NotesGap",
    "ProtocolError",
    "Replied",
    "TransferError",
    "TuttiClient",
    "beat_at",
    "download_verified",
    "http_base",
    "local_beat",
    "local_time_of_beat",
    "parse_server_frame",
    "upload_bytes",
]
