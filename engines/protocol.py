"""What passes between the hub and an engine worker process (plain, picklable data).

The hub owns scheduling: it starts a job on a worker with :class:`StartJob`, may
cancel it with :class:`CancelJob`, and the worker answers with engine events. A
worker never queues: it only holds jobs the hub started, and adds or drops them
at step boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass(frozen=True)
class TaskInfo:
    name: str
    description: str
    params_schema: dict[str, Any]  # JSON Schema of the task's params object
    constraints: tuple[str, ...] = ()


@dataclass(frozen=True)
class EngineInfo:
    name: str
    version: str
    tasks: tuple[TaskInfo, ...]
    available: bool = True
    reason: str | None = None  # why not available, in words a musician understands
    model: str | None = None
    device: str | None = None


@dataclass(frozen=True)
class MusicalContext:
    """The target section's grid, so engines can think in bars and write aligned MIDI."""

    tempo: float = 120.0
    meter_numerator: int = 4
    meter_denominator: int = 4
    key: str | None = None
    bars: int | None = None


@dataclass(frozen=True)
class EngineRequest:
    job_id: str
    task: str
    params: dict[str, Any]
    num_variations: int = 1
    seed: int | None = None
    # Input artifacts resolved by the hub: name -> CAS digest (workers read the CAS).
    inputs: dict[str, str] = field(default_factory=dict)
    context: MusicalContext = field(default_factory=MusicalContext)


# --- worker -> hub ------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    job_id: str
    tokens: int
    total: int | None
    percent: float
    kind: Literal["progress"] = "progress"


@dataclass(frozen=True)
class Note:
    variation: int
    onset: float  # seconds
    duration: float
    pitch: int
    velocity: int
    instrument: int  # 0..127 GM program, 128 drums


@dataclass(frozen=True)
class Notes:
    job_id: str
    notes: tuple[Note, ...]
    kind: Literal["notes"] = "notes"


@dataclass(frozen=True)
class Output:
    """One result object, already written to the CAS by the worker."""

    job_id: str
    digest: str
    mime: str
    size: int
    kind: str  # midi, embedding, audio ...
    variation_index: int | None = None
    filename: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    partial: bool = False
    kind_tag: Literal["output"] = "output"


@dataclass(frozen=True)
class Finished:
    job_id: str
    result: dict[str, Any] = field(default_factory=dict)
    kind: Literal["finished"] = "finished"


@dataclass(frozen=True)
class Failed:
    job_id: str
    code: str
    message: str
    details: dict[str, Any] = field(default_factory=dict)
    kind: Literal["failed"] = "failed"


@dataclass(frozen=True)
class Cancelled:
    job_id: str
    kind: Literal["cancelled"] = "cancelled"


EngineEvent = Progress | Notes | Output | Finished | Failed | Cancelled

# --- hub -> worker ------------------------------------------------------------------


@dataclass(frozen=True)
class StartJob:
    request: EngineRequest


@dataclass(frozen=True)
class CancelJob:
    job_id: str


@dataclass(frozen=True)
class Shutdown:
    pass


HubToWorker = StartJob | CancelJob | Shutdown
