"""The session state: immutable values the reducer produces.

Times are musical (bars, beats); a section's start is implied by the sections
before it, so reordering never needs a shift of stored positions.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

TakeStatus = Literal["pending", "approved", "rejected"]


class Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Meter(Frozen):
    numerator: int = Field(4, ge=1, le=32)
    denominator: Literal[1, 2, 4, 8, 16, 32] = 4

    @property
    def beats_per_bar(self) -> float:
        """Length of a bar in quarter-note beats."""
        return self.numerator * 4.0 / self.denominator


class Take(Frozen):
    id: str
    artifact_id: str
    status: TakeStatus = "pending"
    job_id: str | None = None
    variation_index: int | None = None
    label: str | None = None


class Section(Frozen):
    id: str
    name: str
    bars: int = Field(ge=1, le=1024)
    tempo: float | None = Field(None, gt=0, le=400)
    key: str | None = None
    takes: tuple[Take, ...] = ()
    chosen_take: str | None = None
    locked: bool = False

    def take(self, take_id: str) -> Take | None:
        return next((t for t in self.takes if t.id == take_id), None)


class Session(Frozen):
    id: str
    title: str
    tempo: float = Field(120.0, gt=0, le=400)
    meter: Meter = Meter()
    key: str | None = None
    sections: tuple[Section, ...] = ()
    created_at: float = 0.0
    updated_offset: int = 0
    # Undo/redo stacks hold the ids of command groups (oldest first) so clients see
    # what can be undone; the groups' events live in `HubState.history`
    # (hub/state.py) so undo is computable from state alone (pure decide).
    undo_stack: tuple[str, ...] = ()
    redo_stack: tuple[str, ...] = ()

    def section(self, section_id: str) -> Section | None:
        return next((s for s in self.sections if s.id == section_id), None)

    def section_index(self, section_id: str) -> int:
        for i, s in enumerate(self.sections):
            if s.id == section_id:
                return i
        return -1


class SessionSummary(Frozen):
    id: str
    title: str
    tempo: float
    meter: Meter
    key: str | None
    sections: int
