"""Every message of WebSocket protocol v1, as pydantic models. The only place wire shapes live.

``ClientMessage`` and ``ServerMessage`` are discriminated unions on ``type``;
``plugins/schema/protocol.schema.json`` is generated from this module by
``tutti schema``. Frames are JSON objects encoded with orjson.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

import orjson
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from hub.events import Envelope, Event, NoteChunkData
from hub.model import Meter, Session, SessionSummary

PROTOCOL_VERSION = 1

ClientKind = Literal["daw-plugin", "browser", "agent", "cli"]
Id = Annotated[str, Field(min_length=1, max_length=128)]
OpId = Annotated[str, Field(min_length=1, max_length=128)]
Name = Annotated[str, Field(min_length=1, max_length=200)]
Bpm = Annotated[float, Field(gt=0, le=400)]
Topic = Annotated[str, Field(min_length=1, max_length=200)]


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Command(Message):
    """A client message that changes something; answered by exactly one ack or error."""

    op_id: OpId


# --- connection --------------------------------------------------------------------


class ResumePoint(Message):
    epoch: str
    offset: int = Field(ge=0)


class Hello(Message):
    type: Literal["hello"] = "hello"
    protocol: int = PROTOCOL_VERSION
    client: ClientKind
    name: Name
    token: str | None = None
    resume: ResumePoint | None = None
    topics: list[Topic] = Field(default_factory=list, max_length=64)


class Subscribe(Command):
    type: Literal["subscribe"] = "subscribe"
    topics: list[Topic] = Field(min_length=1, max_length=64)
    resume: ResumePoint | None = None


class Unsubscribe(Command):
    type: Literal["unsubscribe"] = "unsubscribe"
    topics: list[Topic] = Field(min_length=1, max_length=64)


class Ping(Message):
    """Application heartbeat; either side may send it, the other answers ``pong``."""

    type: Literal["ping"] = "ping"
    t: float | None = None


class Pong(Message):
    type: Literal["pong"] = "pong"
    t: float | None = None


class ClockPing(Message):
    type: Literal["clock.ping"] = "clock.ping"
    t0: float  # client clock, echoed back


# --- session commands --------------------------------------------------------------


class CreateSession(Command):
    type: Literal["session.create"] = "session.create"
    title: Name = "Untitled"
    tempo: Bpm = 120.0
    meter: Meter = Meter()
    key: str | None = Field(None, max_length=32)


class RenameSession(Command):
    type: Literal["session.rename"] = "session.rename"
    session: Id
    title: Name


class DeleteSession(Command):
    type: Literal["session.delete"] = "session.delete"
    session: Id


class SetTempo(Command):
    type: Literal["session.set_tempo"] = "session.set_tempo"
    session: Id
    bpm: Bpm


class SetMeter(Command):
    type: Literal["session.set_meter"] = "session.set_meter"
    session: Id
    meter: Meter


class SetKey(Command):
    type: Literal["session.set_key"] = "session.set_key"
    session: Id
    key: str | None = Field(None, max_length=32)


class AddSection(Command):
    type: Literal["section.add"] = "section.add"
    session: Id
    name: Name
    bars: int = Field(8, ge=1, le=1024)
    index: int | None = Field(None, ge=0)
    tempo: Bpm | None = None
    key: str | None = Field(None, max_length=32)


class RemoveSection(Command):
    type: Literal["section.remove"] = "section.remove"
    session: Id
    section: Id


class MoveSection(Command):
    type: Literal["section.move"] = "section.move"
    session: Id
    section: Id
    index: int = Field(ge=0)


class RenameSection(Command):
    type: Literal["section.rename"] = "section.rename"
    session: Id
    section: Id
    name: Name


class ResizeSection(Command):
    type: Literal["section.resize"] = "section.resize"
    session: Id
    section: Id
    bars: int = Field(ge=1, le=1024)


class SetSectionProps(Command):
    type: Literal["section.set_props"] = "section.set_props"
    session: Id
    section: Id
    tempo: Bpm | None = None
    key: str | None = Field(None, max_length=32)


class LockSection(Command):
    type: Literal["section.lock"] = "section.lock"
    session: Id
    section: Id
    locked: bool = True


class AddTake(Command):
    type: Literal["take.add"] = "take.add"
    session: Id
    section: Id
    artifact: Id
    label: str | None = Field(None, max_length=200)


class RemoveTake(Command):
    type: Literal["take.remove"] = "take.remove"
    session: Id
    section: Id
    take: Id


class ApproveTake(Command):
    type: Literal["take.approve"] = "take.approve"
    session: Id
    section: Id
    take: Id


class RejectTake(Command):
    type: Literal["take.reject"] = "take.reject"
    session: Id
    section: Id
    take: Id


class ChooseTake(Command):
    type: Literal["take.choose"] = "take.choose"
    session: Id
    section: Id
    take: Id | None  # None clears the choice


class Undo(Command):
    type: Literal["session.undo"] = "session.undo"
    session: Id


class Redo(Command):
    type: Literal["session.redo"] = "session.redo"
    session: Id


SessionCommand = (
    CreateSession
    | RenameSession
    | DeleteSession
    | SetTempo
    | SetMeter
    | SetKey
    | AddSection
    | RemoveSection
    | MoveSection
    | RenameSection
    | ResizeSection
    | SetSectionProps
    | LockSection
    | AddTake
    | RemoveTake
    | ApproveTake
    | RejectTake
    | ChooseTake
    | Undo
    | Redo
)


class RenderSession(Command):
    type: Literal["session.render"] = "session.render"
    session: Id
    sections: list[Id] | None = None  # None = every section (silent bars where no take is chosen)


class GetSession(Command):
    type: Literal["session.get"] = "session.get"
    session: Id


class ListSessions(Command):
    type: Literal["session.list"] = "session.list"


# --- jobs --------------------------------------------------------------------------


class JobSpec(Message):
    engine: Name
    task: Name
    params: dict[str, Any] = Field(default_factory=dict)
    num_variations: int = Field(1, ge=1, le=8)
    priority: int = Field(0, ge=-10, le=10)  # higher runs first
    session: Id | None = None
    section: Id | None = None
    client_job_id: str | None = Field(None, max_length=128)


class SubmitJob(Command, JobSpec):
    type: Literal["job.submit"] = "job.submit"


class SubmitBatch(Command):
    type: Literal["job.batch"] = "job.batch"
    jobs: list[JobSpec] = Field(min_length=1, max_length=64)


class CancelJob(Command):
    type: Literal["job.cancel"] = "job.cancel"
    job: Id


class GetJob(Command):
    type: Literal["job.get"] = "job.get"
    job: Id


class Analyze(Command):
    type: Literal["analyze"] = "analyze"
    artifact: Id
    analyses: list[Literal["structure", "motifs", "harmony", "rhythm"]] = Field(default_factory=list)


# --- transport ---------------------------------------------------------------------


class TakeTransport(Command):
    type: Literal["transport.take"] = "transport.take"
    session: Id
    force: bool = False  # take it over from whoever holds it


class ReleaseTransport(Command):
    type: Literal["transport.release"] = "transport.release"
    session: Id


class TransportUpdate(Command):
    """From the transport holder: the host's play state when ``beat`` was read.

    ``hub_time`` is the sender's estimate of the hub clock at that moment (its own clock
    plus the offset measured with clock.ping); the hub uses it as the timeline origin
    when it is within a second of its own clock, so network and queueing delay do not
    turn into beat error. Without it the hub stamps the update on arrival.
    """

    type: Literal["transport.update"] = "transport.update"
    session: Id
    playing: bool
    bpm: Bpm
    beat: float  # quarter-note beats since the song start
    meter: Meter | None = None
    host_time: float | None = None  # seconds on the sender's own clock (informational)
    hub_time: float | None = None  # seconds on the hub clock when `beat` was read
    at_next_bar: bool = False


ClientMessage = Annotated[
    Hello
    | Subscribe
    | Unsubscribe
    | Ping
    | Pong
    | ClockPing
    | SessionCommand
    | RenderSession
    | GetSession
    | ListSessions
    | SubmitJob
    | SubmitBatch
    | CancelJob
    | GetJob
    | Analyze
    | TakeTransport
    | ReleaseTransport
    | TransportUpdate,
    Field(discriminator="type"),
]

# --- server messages ---------------------------------------------------------------


class EngineTask(Message):
    name: str
    description: str
    params_schema: dict[str, Any]
    constraints: list[str] = Field(default_factory=list)


class EngineDescription(Message):
    name: str
    version: str
    available: bool
    reason: str | None = None
    model: str | None = None
    device: str | None = None
    tasks: list[EngineTask]


class Welcome(Message):
    type: Literal["welcome"] = "welcome"
    server_version: str
    protocol: int = PROTOCOL_VERSION
    client_id: str
    engines: list[EngineDescription]
    sessions: list[SessionSummary]
    server_time: float  # the hub's monotonic clock, seconds
    epoch: str
    offset: int  # the log head when welcome was sent
    heartbeat_interval: float
    heartbeat_timeout: float
    max_frame_bytes: int


class Ack(Message):
    type: Literal["ack"] = "ack"
    op_id: str
    result: dict[str, Any] = Field(default_factory=dict)
    offset: int | None = None  # the log offset the command's last event got, if any


class Error(Message):
    type: Literal["error"] = "error"
    code: str
    message: str
    details: dict[str, Any] = Field(default_factory=dict)
    suggestions: list[str] = Field(default_factory=list)
    op_id: str | None = None


class EventMessage(Message):
    """A durable event, delivered in log order (lossless)."""

    type: Literal["event"] = "event"
    epoch: str
    offset: int
    ts: float
    topic: str
    cause: str
    op_id: str | None = None
    replayed: bool = False
    event: Event

    @classmethod
    def from_envelope(cls, env: Envelope, *, replayed: bool = False) -> EventMessage:
        return cls(
            epoch=env.epoch,
            offset=env.offset,
            ts=env.ts,
            topic=env.topic,
            cause=env.cause,
            op_id=env.op_id,
            replayed=replayed,
            event=env.event,
        )


class Resumed(Message):
    """Answer to a resume: either every missed event follows (recovered) or a snapshot."""

    type: Literal["resumed"] = "resumed"
    recovered: bool
    epoch: str
    offset: int  # recovered: replay covers (requested, offset]; else the snapshot is valid at it
    replayed: int = 0
    snapshot: list[Session] | None = None
    reason: str | None = None


class JobProgress(Message):
    """Latest-value: conflated per job, so a slow client sees the newest, never a backlog."""

    type: Literal["job.progress"] = "job.progress"
    job: str
    session: str | None = None
    tokens: int = 0
    total: int | None = None
    percent: float = Field(0.0, ge=0, le=100)
    eta_seconds: float | None = None


class TransportState(Message):
    """Latest-value timeline: beat(t) = beat_origin + (t - time_origin) * bpm / 60 while playing."""

    type: Literal["transport.state"] = "transport.state"
    session: str
    playing: bool
    bpm: float
    beat_origin: float
    time_origin: float  # hub monotonic seconds
    meter: Meter
    holder: str | None = None
    seq: int = 0


class Peer(Message):
    client_id: str
    kind: ClientKind
    name: str


class Presence(Message):
    type: Literal["presence"] = "presence"
    session: str
    peers: list[Peer]
    transport_holder: str | None = None


class ClockPong(Message):
    type: Literal["clock.pong"] = "clock.pong"
    t0: float
    server_time: float


class Goodbye(Message):
    """Sent before the hub closes a socket on purpose, with the close code it will use."""

    type: Literal["goodbye"] = "goodbye"
    close_code: int
    reason: str
    resume: ResumePoint | None = None


ServerMessage = Annotated[
    Welcome
    | Ack
    | Error
    | EventMessage
    | Resumed
    | JobProgress
    | TransportState
    | Presence
    | ClockPong
    | Ping
    | Pong
    | Goodbye,
    Field(discriminator="type"),
]

# Event bodies re-exported so plugin authors find every shape here.
__all__ = ["NoteChunkData"]

CLIENT_ADAPTER: TypeAdapter[ClientMessage] = TypeAdapter(ClientMessage)
SERVER_ADAPTER: TypeAdapter[ServerMessage] = TypeAdapter(ServerMessage)



def _types(union: Any) -> frozenset[str]:
    members = get_args(get_args(union)[0])
    return frozenset(str(m.model_fields["type"].default) for m in members)


CLIENT_TYPES: frozenset[str] = _types(ClientMessage)
SERVER_TYPES: frozenset[str] = _types(ServerMessage)


def encode(message: BaseModel) -> bytes:
    """One wire frame (orjson; pydantic's JSON mode handles the nested models)."""
    return orjson.dumps(message.model_dump(mode="json", exclude_none=False))


def json_schema() -> dict[str, Any]:
    """The protocol's JSON Schema, as shipped in plugins/schema/protocol.schema.json."""
    client = CLIENT_ADAPTER.json_schema(ref_template="#/$defs/{model}")
    server = SERVER_ADAPTER.json_schema(ref_template="#/$defs/{model}")
    defs: dict[str, Any] = {}
    defs.update(client.pop("$defs", {}))
    defs.update(server.pop("$defs", {}))
    defs["ClientMessage"] = client
    defs["ServerMessage"] = server
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://tutti.dev/schema/protocol-v1.json",
        "title": f"Tutti WebSocket protocol v{PROTOCOL_VERSION}",
        "oneOf": [{"$ref": "#/$defs/ClientMessage"}, {"$ref": "#/$defs/ServerMessage"}],
        "$defs": dict(sorted(defs.items())),
    }


class CloseCode:
    """WebSocket close codes the hub uses; 4xxx are Tutti's own."""

    NORMAL = 1000
    GOING_AWAY = 1001  # the hub is shutting down; reconnect with resume
    POLICY = 1008  # browser Origin not allowed
    TOO_BIG = 1009
    SERVICE_RESTART = 1012  # uvicorn's close on shutdown; reconnect with resume
    NOT_AUTHORIZED = 4001  # bad or missing token; do not retry without a new token
    HEARTBEAT_TIMEOUT = 4002  # no frame from the client within heartbeat_timeout; reconnect
    SLOW_CONSUMER = 4008  # the client fell too far behind; reconnect with resume (recoverable)

    RECOVERABLE = frozenset({GOING_AWAY, SERVICE_RESTART, HEARTBEAT_TIMEOUT, SLOW_CONSUMER})
