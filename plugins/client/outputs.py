"""What the protocol core hands to the user besides the hub's own messages.

The delivery stream carries hub messages (``EventMessage``, ``JobProgress``,
``TransportState``, ``Presence``, ``Resumed``, ``Goodbye``, ``Error`` without an op_id) and
these client-side notices.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.protocol import (
    Ack,
    Command,
    Error,
    EventMessage,
    Goodbye,
    JobProgress,
    Presence,
    Resumed,
    TransportState,
    Welcome,
)


@dataclass(frozen=True)
class Connected:
    """A connection finished its handshake; ``resumed`` says whether a resume was asked for."""

    welcome: Welcome
    resumed: bool


@dataclass(frozen=True)
class Disconnected:
    code: int | None
    reason: str
    will_retry: bool


@dataclass(frozen=True)
class Replied:
    """A command's one answer (ack or error)."""

    command: Command
    reply: Ack | Error


@dataclass(frozen=True)
class ProtocolError:
    """The hub sent something this client cannot accept; the connection carries on."""

    reason: str
    frame: str


@dataclass(frozen=True)
class NotesGap:
    """``job.notes`` chunks ``expected .. got-1`` of ``job`` never arrived."""

    job: str
    expected: int
    got: int


@dataclass(frozen=True)
class CommandLost:
    """A non-idempotent command was in flight when the connection dropped: outcome unknown."""

    command: Command


Delivery = (
    EventMessage
    | JobProgress
    | TransportState
    | Presence
    | Resumed
    | Goodbye
    | Error
    | Connected
    | Disconnected
    | Replied
    | ProtocolError
    | NotesGap
    | CommandLost
)
