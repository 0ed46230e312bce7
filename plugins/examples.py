"""One example per wire message type, as pydantic instances (so they are valid by
construction) for the protocol guide; a test validates them against the JSON Schema."""

from __future__ import annotations

from pydantic import BaseModel

from hub.events import FileReady, JobNotes, NoteChunkData, SessionCreated
from hub.model import Meter, SessionSummary
from hub.protocol import (
    Ack,
    AddSection,
    AddTake,
    Analyze,
    ApproveTake,
    CancelJob,
    ChooseTake,
    ClockPing,
    ClockPong,
    CreateSession,
    DeleteSession,
    EngineDescription,
    EngineTask,
    Error,
    EventMessage,
    GetJob,
    GetSession,
    Goodbye,
    Hello,
    JobProgress,
    JobSpec,
    ListSessions,
    LockSection,
    MoveSection,
    Peer,
    Ping,
    Pong,
    Presence,
    Redo,
    RejectTake,
    ReleaseTransport,
    RemoveSection,
    RemoveTake,
    RenameSection,
    RenameSession,
    RenderSession,
    ResizeSection,
    Resumed,
    ResumePoint,
    SetKey,
    SetMeter,
    SetSectionProps,
    SetTempo,
    SubmitBatch,
    SubmitJob,
    Subscribe,
    TakeTransport,
    TransportState,
    TransportUpdate,
    Undo,
    Unsubscribe,
    Welcome,
)

SES = "ses_4f1c2a9e"
SEC = "sec_91b2d0aa"
TAKE = "take_7d03e1f2"
ART = "art_2e2670b6"
JOB = "job_47e71108"
EPOCH = "9c41e7d2a0b94f7c8e5d3a1b2c4d6e8f"
HASH = "8f53cd982a4d3f75116bebe85964e38599096c1a397a1016ba68bb351562e5cf"


def _op(n: int) -> str:
    return f"op_a1b2c3_{n}"


CLIENT_EXAMPLES: list[BaseModel] = [
    Hello(client="daw-plugin", name="Bitwig bridge", resume=ResumePoint(epoch=EPOCH, offset=1042),
          topics=[f"session:{SES}", f"transport:{SES}"]),
    Subscribe(op_id=_op(1), topics=[f"session:{SES}", "jobs"]),
    Unsubscribe(op_id=_op(2), topics=["jobs"]),
    Ping(t=1234.5678),
    Pong(t=98.25),
    ClockPing(t0=1234.5678),
    CreateSession(op_id=_op(3), title="Night drive", tempo=96.0, meter=Meter(numerator=4, denominator=4), key="A minor"),
    RenameSession(op_id=_op(4), session=SES, title="Night drive (v2)"),
    DeleteSession(op_id=_op(5), session=SES),
    SetTempo(op_id=_op(6), session=SES, bpm=100.0),
    SetMeter(op_id=_op(7), session=SES, meter=Meter(numerator=6, denominator=8)),
    SetKey(op_id=_op(8), session=SES, key="D dorian"),
    AddSection(op_id=_op(9), session=SES, name="verse", bars=8),
    RemoveSection(op_id=_op(10), session=SES, section=SEC),
    MoveSection(op_id=_op(11), session=SES, section=SEC, index=0),
    RenameSection(op_id=_op(12), session=SES, section=SEC, name="chorus"),
    ResizeSection(op_id=_op(13), session=SES, section=SEC, bars=16),
    SetSectionProps(op_id=_op(14), session=SES, section=SEC, tempo=110.0, key="E minor"),
    LockSection(op_id=_op(15), session=SES, section=SEC, locked=True),
    AddTake(op_id=_op(16), session=SES, section=SEC, artifact=ART, label="my riff"),
    RemoveTake(op_id=_op(17), session=SES, section=SEC, take=TAKE),
    ApproveTake(op_id=_op(18), session=SES, section=SEC, take=TAKE),
    RejectTake(op_id=_op(19), session=SES, section=SEC, take=TAKE),
    ChooseTake(op_id=_op(20), session=SES, section=SEC, take=TAKE),
    Undo(op_id=_op(21), session=SES),
    Redo(op_id=_op(22), session=SES),
    RenderSession(op_id=_op(23), session=SES),
    GetSession(op_id=_op(24), session=SES),
    ListSessions(op_id=_op(25)),
    SubmitJob(op_id=_op(26), engine="amt", task="continue", params={"artifact": ART, "seconds": 8},
              num_variations=2, session=SES, section=SEC),
    SubmitBatch(op_id=_op(27), jobs=[JobSpec(engine="amt", task="continue", params={"artifact": ART}),
                                     JobSpec(engine="amt", task="infill", params={"artifact": ART})]),
    CancelJob(op_id=_op(28), job=JOB),
    GetJob(op_id=_op(29), job=JOB),
    Analyze(op_id=_op(30), artifact=ART, analyses=["structure", "harmony"]),
    TakeTransport(op_id=_op(31), session=SES, force=False),
    ReleaseTransport(op_id=_op(32), session=SES),
    TransportUpdate(op_id=_op(33), session=SES, playing=True, bpm=96.0, beat=16.0, host_time=5021.125),
]

_NOTES = NoteChunkData(
    variation=[0, 0], onset=[4.0, 4.25], duration=[0.25, 0.5], onset_beats=[8.0, 8.5],
    duration_beats=[0.5, 1.0], pitch=[60, 64], velocity=[90, 72], instrument=[0, 0],
)

SERVER_EXAMPLES: list[BaseModel] = [
    Welcome(server_version="0.1.0", client_id="cli_5e0b", epoch=EPOCH, offset=1050, server_time=5021.0931,
            heartbeat_interval=10.0, heartbeat_timeout=30.0, max_frame_bytes=1 << 20,
            sessions=[SessionSummary(id=SES, title="Night drive", tempo=96.0, meter=Meter(), key="A minor", sections=3)],
            engines=[EngineDescription(name="amt", version="1.0", available=True, device="cuda",
                                       tasks=[EngineTask(name="continue", description="continue a MIDI file",
                                                         params_schema={"type": "object"})])]),
    Ack(op_id=_op(9), result={"section": SEC}, offset=1051),
    Error(code="transport_not_held", message=f"transport of session {SES} is held by another client",
          details={"holder": "cli_77aa"}, suggestions=["send transport.take with force: true first"], op_id=_op(33)),
    EventMessage(epoch=EPOCH, offset=1052, ts=1718000000.25, topic="jobs", cause="system",
                 event=JobNotes(job=JOB, session=SES, seq=3, notes=_NOTES)),
    Resumed(recovered=True, epoch=EPOCH, offset=1050, replayed=8),
    JobProgress(job=JOB, session=SES, tokens=384, total=1024, percent=37.5, eta_seconds=6.2),
    TransportState(session=SES, playing=True, bpm=96.0, beat_origin=16.0, time_origin=5021.1262,
                   meter=Meter(), holder="cli_5e0b", seq=12),
    Presence(session=SES, peers=[Peer(client_id="cli_5e0b", kind="daw-plugin", name="Bitwig bridge"),
                                 Peer(client_id="cli_77aa", kind="browser", name="Chromium")],
             transport_holder="cli_5e0b"),
    ClockPong(t0=1234.5678, server_time=5021.0934),
    Ping(t=5031.0931),
    Pong(t=1234.5678),
    Goodbye(close_code=4008, reason="client fell behind; resume", resume=ResumePoint(epoch=EPOCH, offset=1049)),
]

# Extra examples shown with the event reference (events travel inside `event` frames).
EVENT_EXAMPLES: list[BaseModel] = [
    EventMessage(epoch=EPOCH, offset=1001, ts=1718000000.0, topic=f"session:{SES}", cause="do", op_id=_op(3),
                 event=SessionCreated(session=SES, title="Night drive", tempo=96.0, created_at=1718000000.0)),
    EventMessage(epoch=EPOCH, offset=1060, ts=1718000009.5, topic="files", cause="system",
                 event=FileReady(artifact=ART, hash=HASH, url=f"/cas/{HASH}", mime="audio/midi", size=186,
                                 filename="continue-v1.mid", session=SES, section=SEC, job=JOB)),
]
