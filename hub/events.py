"""Durable events: what the event log stores and what lossless clients receive.

Session events carry enough of the prior state (``old_*`` fields, removed
sections) that their inverse is a pure function of the event itself; undo and
redo are therefore compensating events computed without touching the log.
Bump ``SCHEMA_VERSION`` when an event changes shape and teach ``upcast`` the old one.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from hub.model import Meter, Section, Take, TakeStatus

SCHEMA_VERSION = 1

Cause = Literal["do", "undo", "redo", "system"]


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# --- session events ---------------------------------------------------------------


class SessionCreated(_Event):
    type: Literal["session.created"] = "session.created"
    session: str
    title: str
    tempo: float = 120.0
    meter: Meter = Meter()
    key: str | None = None
    created_at: float = 0.0


class SessionRenamed(_Event):
    type: Literal["session.renamed"] = "session.renamed"
    session: str
    title: str
    old_title: str


class SessionDeleted(_Event):
    type: Literal["session.deleted"] = "session.deleted"
    session: str


class TempoSet(_Event):
    type: Literal["session.tempo_set"] = "session.tempo_set"
    session: str
    bpm: float
    old_bpm: float


class MeterSet(_Event):
    type: Literal["session.meter_set"] = "session.meter_set"
    session: str
    meter: Meter
    old_meter: Meter


class KeySet(_Event):
    type: Literal["session.key_set"] = "session.key_set"
    session: str
    key: str | None
    old_key: str | None


class SectionAdded(_Event):
    type: Literal["section.added"] = "section.added"
    session: str
    section: Section
    index: int


class SectionRemoved(_Event):
    type: Literal["section.removed"] = "section.removed"
    session: str
    section: Section  # the whole section, so the inverse can restore it
    index: int


class SectionMoved(_Event):
    type: Literal["section.moved"] = "section.moved"
    session: str
    section: str
    index: int
    old_index: int


class SectionRenamed(_Event):
    type: Literal["section.renamed"] = "section.renamed"
    session: str
    section: str
    name: str
    old_name: str


class SectionResized(_Event):
    type: Literal["section.resized"] = "section.resized"
    session: str
    section: str
    bars: int
    old_bars: int


class SectionPropsSet(_Event):
    type: Literal["section.props_set"] = "section.props_set"
    session: str
    section: str
    tempo: float | None
    key: str | None
    old_tempo: float | None
    old_key: str | None


class SectionLocked(_Event):
    type: Literal["section.locked"] = "section.locked"
    session: str
    section: str
    locked: bool


class TakeAdded(_Event):
    type: Literal["take.added"] = "take.added"
    session: str
    section: str
    take: Take
    # Where it goes (None = appended) and whether it becomes the chosen take: both
    # default for new takes; set when undo restores a removed take exactly as it was.
    index: int | None = None
    chosen: bool = False


class TakeRemoved(_Event):
    type: Literal["take.removed"] = "take.removed"
    session: str
    section: str
    take: Take
    index: int
    was_chosen: bool = False


class TakeStatusSet(_Event):
    type: Literal["take.status_set"] = "take.status_set"
    session: str
    section: str
    take: str
    status: TakeStatus
    old_status: TakeStatus


class TakeChosen(_Event):
    type: Literal["take.chosen"] = "take.chosen"
    session: str
    section: str
    take: str | None
    old_take: str | None


# the session events as a plain union, for the two discriminated unions below
SessionEventTypes = (
    SessionCreated
    | SessionRenamed
    | SessionDeleted
    | TempoSet
    | MeterSet
    | KeySet
    | SectionAdded
    | SectionRemoved
    | SectionMoved
    | SectionRenamed
    | SectionResized
    | SectionPropsSet
    | SectionLocked
    | TakeAdded
    | TakeRemoved
    | TakeStatusSet
    | TakeChosen
)

SessionEvent = Annotated[
    SessionEventTypes,
    Field(discriminator="type"),
]

# --- job and file events (lossless, logged so resume covers them) ------------------


class NoteChunkData(_Event):
    """Notes decoded since the previous chunk, as parallel arrays (compact on the wire)."""

    variation: list[int]
    onset: list[float]  # seconds from the start of the generated material
    duration: list[float]
    onset_beats: list[float]
    duration_beats: list[float]
    pitch: list[int]
    velocity: list[int]
    instrument: list[int]  # 0..127 General MIDI program, 128 = drums


class JobQueued(_Event):
    type: Literal["job.queued"] = "job.queued"
    job: str
    engine: str
    task: str
    session: str | None = None
    section: str | None = None
    client_job_id: str | None = None
    priority: int = 0
    num_variations: int = 1
    params: dict[str, Any] = Field(default_factory=dict)


class JobStarted(_Event):
    type: Literal["job.started"] = "job.started"
    job: str
    session: str | None = None
    worker: str | None = None


class JobNotes(_Event):
    type: Literal["job.notes"] = "job.notes"
    job: str
    session: str | None = None
    seq: int  # 0, 1, 2 ... per job, so a client sees a gap at once
    notes: NoteChunkData


class ArtifactRef(_Event):
    id: str
    hash: str
    url: str
    mime: str
    size: int
    kind: str
    filename: str | None = None
    variation_index: int | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class JobCompleted(_Event):
    type: Literal["job.completed"] = "job.completed"
    job: str
    session: str | None = None
    section: str | None = None
    artifacts: list[ArtifactRef]
    result: dict[str, Any] = Field(default_factory=dict)


class JobFailed(_Event):
    type: Literal["job.failed"] = "job.failed"
    job: str
    session: str | None = None
    code: str
    message: str


class JobCancelled(_Event):
    type: Literal["job.cancelled"] = "job.cancelled"
    job: str
    session: str | None = None
    partial_artifacts: list[ArtifactRef] = Field(default_factory=list)


class FileReady(_Event):
    type: Literal["file.ready"] = "file.ready"
    artifact: str
    hash: str
    url: str
    mime: str
    size: int
    filename: str | None = None
    kind: str = "midi"
    session: str | None = None
    section: str | None = None
    job: str | None = None
    export_path: str | None = None
    metadata: dict[str, Any] = Field(default_factory=dict)


class ArtifactDeleted(_Event):
    type: Literal["artifact.deleted"] = "artifact.deleted"
    artifact: str
    session: str | None = None


JobEvent = JobQueued | JobStarted | JobNotes | JobCompleted | JobFailed | JobCancelled

Event = Annotated[
    SessionEventTypes
    | JobEvent
    | FileReady
    | ArtifactDeleted,
    Field(discriminator="type"),
]


def topic_of(event: BaseModel) -> str:
    """The subscription topic an event is delivered on."""
    kind = getattr(event, "type", "")
    if kind.startswith(("session.", "section.", "take.")):
        return f"session:{getattr(event, 'session', '')}"
    if kind.startswith("job."):
        return "jobs"
    return "files"


class Envelope(BaseModel):
    """One durable log entry: an event with its position and provenance."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    epoch: str
    offset: int
    ts: float
    topic: str
    cause: Cause = "do"
    group: str | None = None  # the command group, so undo reverts a command as a whole
    op_id: str | None = None
    schema_version: int = SCHEMA_VERSION
    event: Event


def upcast(schema_version: int, data: dict[str, Any]) -> dict[str, Any]:
    """Bring an event written by an older release to the current shape.

    Version 1 is the first; later versions add their migrations here, oldest first.
    """
    if schema_version > SCHEMA_VERSION:
        raise ValueError(
            f"event schema version {schema_version} is newer than this hub ({SCHEMA_VERSION})"
        )
    return data
