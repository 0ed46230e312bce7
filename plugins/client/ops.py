"""Command ids and the commands still waiting for their one ack or error."""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass, field

from hub.protocol import Command, SessionCommand

# Session commands are de-duplicated by op_id in the hub's durable log, so resending one
# after a reconnect has one effect; other commands (job.submit, transport) are not.
_IDEMPOTENT: tuple[type[Command], ...] = SessionCommand.__args__


class OpIds:
    """Unique op ids: a random per-client prefix plus a counter (readable in hub logs)."""

    def __init__(self, prefix: str | None = None) -> None:
        self.prefix = prefix or f"op_{os.urandom(6).hex()}"
        self._n = itertools.count(1)

    def next(self) -> str:
        return f"{self.prefix}_{next(self._n)}"


@dataclass
class Pending:
    command: Command
    sent_at: float


@dataclass
class PendingOps:
    waiting: dict[str, Pending] = field(default_factory=dict)

    def add(self, command: Command, now: float) -> None:
        if command.op_id in self.waiting:
            raise ValueError(f"op_id {command.op_id!r} is already waiting for its answer")
        self.waiting[command.op_id] = Pending(command, now)

    def resolve(self, op_id: str) -> Pending | None:
        return self.waiting.pop(op_id, None)

    def __len__(self) -> int:
        return len(self.waiting)

    def connection_lost(self) -> tuple[list[Command], list[Command]]:
        """Split what was in flight into (resend on the next connection, report as lost)."""
        resend = [p.command for p in self.waiting.values() if isinstance(p.command, _IDEMPOTENT)]
        lost = [p.command for p in self.waiting.values() if not isinstance(p.command, _IDEMPOTENT)]
        for cmd in lost:
            del self.waiting[cmd.op_id]
        return resend, lost
