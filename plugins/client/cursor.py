"""Resume bookkeeping: the last delivered (epoch, offset) and duplicate suppression.

The hub's lossless events carry a global log offset; a client only sees the offsets of
its topics, so offsets it receives increase but are not consecutive. The cursor is the
highest offset handed to the user: anything at or below it is a duplicate (a replay
overlapping what was already delivered) and is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

from hub.protocol import ResumePoint


@dataclass
class Cursor:
    epoch: str | None = None
    offset: int = 0
    duplicates: int = 0

    @property
    def known(self) -> bool:
        return self.epoch is not None

    def resume_point(self) -> ResumePoint | None:
        """What a reconnecting hello carries; None before the first welcome."""
        if self.epoch is None:
            return None
        return ResumePoint(epoch=self.epoch, offset=self.offset)

    def start(self, epoch: str, offset: int) -> None:
        """Position a fresh subscription (first welcome) or a snapshot (recovered: false)."""
        self.epoch = epoch
        self.offset = offset

    def accept(self, epoch: str, offset: int) -> bool:
        """True if the event is new (and advance); False for a duplicate."""
        if epoch == self.epoch and offset <= self.offset:
            self.duplicates += 1
            return False
        self.epoch = epoch
        self.offset = offset
        return True
