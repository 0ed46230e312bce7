"""The I/O-free protocol core: resume bookkeeping, dedupe, gaps, acks, clock, parsing."""

from __future__ import annotations

import random
from collections.abc import Sequence

import orjson
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from hub.events import JobNotes, JobQueued, NoteChunkData, SessionRenamed
from hub.model import Meter
from hub.protocol import (
    Ack,
    ClockPong,
    EventMessage,
    Ping,
    RenameSession,
    Resumed,
    ResumePoint,
    SubmitJob,
    TransportState,
    Welcome,
    encode,
)
from plugins.client import (
    Backoff,
    ClientCore,
    ClockEstimator,
    ClockSample,
    CommandLost,
    Connected,
    HostTimeline,
    NotesGap,
    ProtocolError,
    Replied,
    local_beat,
    local_time_of_beat,
)
from plugins.sendpolicy import SendPolicy

EPOCH = "e1"


def welcome(offset: int = 10, epoch: str = EPOCH, server_time: float = 100.0) -> bytes:
    return encode(Welcome(server_version="t", client_id="cli_1", engines=[], sessions=[], server_time=server_time,
                          epoch=epoch, offset=offset, heartbeat_interval=10, heartbeat_timeout=30,
                          max_frame_bytes=1 << 20))


def event(offset: int, body: BaseModel | None = None, epoch: str = EPOCH) -> bytes:
    ev = body or SessionRenamed(session="s", title=f"t{offset}", old_title="x")
    return encode(EventMessage(epoch=epoch, offset=offset, ts=0.0, topic="session:s", cause="do", event=ev))


def notes(job: str, seq: int) -> JobNotes:
    chunk = NoteChunkData(variation=[0], onset=[0.0], duration=[0.1], onset_beats=[0.0], duration_beats=[0.2],
                          pitch=[60], velocity=[90], instrument=[0])
    return JobNotes(job=job, seq=seq, notes=chunk)


def offsets(out: Sequence[object]) -> list[int]:
    return [d.offset for d in out if isinstance(d, EventMessage)]


def connected_core(offset: int = 10) -> ClientCore:
    core = ClientCore(name="t", topics=["session:s"])
    core.hello()
    out = core.receive(welcome(offset), now=1.0)
    assert isinstance(out[0], Connected) and not out[0].resumed
    return core


def test_first_hello_has_no_resume_and_welcome_positions_the_cursor() -> None:
    core = ClientCore(name="t", topics=["session:s"])
    hello = orjson.loads(core.hello())
    assert hello["resume"] is None and hello["topics"] == ["session:s"]
    core.receive(welcome(offset=42), now=1.0)
    assert core.cursor.resume_point() == ResumePoint(epoch=EPOCH, offset=42)


def test_events_are_delivered_once_and_the_resume_point_follows_them() -> None:
    core = connected_core()
    out = [d for off in (11, 14, 14, 12, 20) for d in core.receive(event(off), now=2.0)]
    assert offsets(out) == [11, 14, 20]
    assert core.cursor.duplicates == 2
    core.connection_lost()
    hello = orjson.loads(core.hello())
    assert hello["resume"] == {"epoch": EPOCH, "offset": 20}
    resumed = core.receive(welcome(offset=30), now=3.0)
    assert isinstance(resumed[0], Connected) and resumed[0].resumed
    assert core.cursor.offset == 20  # a resuming welcome does not skip the replay
    replay = [Resumed(recovered=True, epoch=EPOCH, offset=30)]
    out = core.receive(encode(replay[0]), now=3.0)
    out += [d for off in (18, 20, 25, 30) for d in core.receive(event(off), now=3.0)]
    assert offsets(out) == [25, 30]


def test_recovered_false_restarts_from_the_snapshot_offset() -> None:
    core = connected_core()
    core.receive(event(11), now=1.0)
    core.connection_lost()
    core.hello()
    core.receive(welcome(offset=500, epoch="e2"), now=1.0)
    out = core.receive(encode(Resumed(recovered=False, epoch="e2", offset=500, snapshot=[])), now=1.0)
    assert isinstance(out[0], Resumed)
    assert core.cursor.resume_point() == ResumePoint(epoch="e2", offset=500)
    assert offsets(core.receive(event(501, epoch="e2"), now=1.0)) == [501]


def test_event_from_another_epoch_is_a_reported_error() -> None:
    core = connected_core()
    out = core.receive(event(11, epoch="other"), now=1.0)
    assert isinstance(out[0], ProtocolError)


def test_job_notes_gaps_are_detected() -> None:
    core = connected_core()
    core.receive(event(11, JobQueued(job="j", engine="e", task="t")), now=1.0)
    out = core.receive(event(12, notes("j", 0)), now=1.0)
    assert offsets(out) == [12]
    out = core.receive(event(13, notes("j", 2)), now=1.0)
    assert out[0] == NotesGap("j", 1, 2) and offsets(out) == [13]
    assert core.notes.gaps == 1
    # a job joined mid-stream starts from the first chunk seen: no gap
    out = core.receive(event(14, notes("late", 7)), now=1.0)
    assert not any(isinstance(d, NotesGap) for d in out)


def test_commands_get_one_answer_and_idempotent_ones_survive_a_drop() -> None:
    core = connected_core()
    rename = RenameSession(op_id=core.new_op_id(), session="s", title="x")
    submit = SubmitJob(op_id=core.new_op_id(), engine="slow", task="stream")
    core.command(rename, now=1.0)
    core.command(submit, now=1.0)
    assert rename.op_id != submit.op_id and len(core.pending) == 2
    out = core.receive(encode(Ack(op_id=submit.op_id, result={"job": "job_1"})), now=1.1)
    assert out == [Replied(submit, Ack(op_id=submit.op_id, result={"job": "job_1"}))]
    assert core.notes.expected["job_1"] == 0
    assert isinstance(core.receive(encode(Ack(op_id=submit.op_id)), now=1.2)[0], ProtocolError)
    core.command(SubmitJob(op_id="op_lost", engine="slow", task="stream"), now=1.3)
    resend, lost = core.connection_lost()
    assert [orjson.loads(f)["op_id"] for f in resend] == [rename.op_id]
    assert [d.command.op_id for d in lost if isinstance(d, CommandLost)] == ["op_lost"]


def test_heartbeat_ping_is_answered() -> None:
    core = connected_core()
    assert core.receive(encode(Ping(t=5.0)), now=1.0) == []
    assert [orjson.loads(f) for f in core.take_outgoing()] == [{"type": "pong", "t": 5.0}]


def test_malformed_frames_are_reported_not_raised() -> None:
    core = ClientCore(name="t")
    core.hello()
    bad = [b"not json", b"[1, 2]", b'{"type": "bogus"}', b'{"type": "ack"}', "\udcff".encode("utf-8", "surrogatepass")]
    for frame in bad:
        out = core.receive(frame, now=0.0)
        assert len(out) == 1 and isinstance(out[0], ProtocolError), frame
    assert isinstance(core.receive(event(1), now=0.0)[0], ProtocolError)  # before welcome
    assert core.malformed == len(bad) + 1
    assert isinstance(core.receive(welcome(), now=0.0)[0], Connected)


def test_clock_estimate_is_the_median_of_the_low_rtt_half() -> None:
    rng = random.Random(7)
    est = ClockEstimator()
    true_offset = 250.0
    for i in range(40):
        t0 = i * 0.1
        up, down = 0.0002 + rng.random() * 0.0002, 0.0002 + rng.random() * 0.0002
        if i % 5 == 0:
            down += 0.05  # a stalled return path: asymmetric and slow
        est.add(ClockSample(t0=t0, server_time=t0 + up + true_offset, t1=t0 + up + down))
    assert est.offset is not None and abs(est.offset - true_offset) < 0.0003
    assert est.uncertainty is not None and est.uncertainty < 0.0005
    est.reset(rough_offset=1.0)
    assert est.offset == 1.0 and not est.ready


@given(st.lists(st.tuples(st.floats(0.0, 0.02), st.floats(0.0, 0.02)), min_size=1, max_size=64),
       st.floats(-1e5, 1e5))
def test_clock_estimate_lies_within_its_reported_bound(legs: list[tuple[float, float]], true_offset: float) -> None:
    """However asymmetric the round trips, the hub read its clock inside each one, so the
    estimate is never further from the truth than ``uncertainty`` says."""
    est = ClockEstimator()
    for i, (up, down) in enumerate(legs):
        t0 = i * 0.1
        est.add(ClockSample(t0=t0, server_time=t0 + up + true_offset, t1=t0 + up + down))
    assert est.offset is not None and est.uncertainty is not None
    assert abs(est.offset - true_offset) <= est.uncertainty + 1e-9


def test_clock_pongs_feed_the_estimator_and_strangers_are_ignored() -> None:
    core = connected_core()
    t0 = 10.0
    core.clock_ping(t0)
    core.receive(encode(ClockPong(t0=t0, server_time=1010.0005)), now=10.001)
    core.receive(encode(ClockPong(t0=3.0, server_time=5.0)), now=10.002)  # never sent
    assert core.clock_offset is not None and abs(core.clock_offset - 1000.0) < 1e-9


def test_transport_timeline_extrapolates_and_ignores_stale_seq() -> None:
    core = connected_core()
    state = TransportState(session="s", playing=True, bpm=120.0, beat_origin=8.0, time_origin=100.0,
                           meter=Meter(), seq=5)
    core.receive(encode(state), now=1.0)
    core.receive(encode(state.model_copy(update={"seq": 4, "beat_origin": 0.0})), now=1.0)
    core.clock.add(ClockSample(t0=0.0, server_time=90.0, t1=0.0))  # hub = local + 90
    assert core.beat_at("s", 11.0) == 10.0  # hub 101 s: one second at 120 bpm after beat 8
    assert local_beat(state, 11.0, 90.0) == 10.0
    assert local_time_of_beat(state, 12.0, 90.0) == 12.0
    stopped = state.model_copy(update={"playing": False})
    assert local_beat(stopped, 50.0, 90.0) == 8.0 and local_time_of_beat(stopped, 9.0, 90.0) is None


def test_host_timeline_and_send_policy() -> None:
    tl = HostTimeline(bpm=120.0).play(10.0, 0.0)
    assert tl.beat_at(11.0) == 2.0
    assert tl.tempo(11.0, 60.0).beat_at(13.0) == 4.0
    assert tl.stop(11.0).beat_at(20.0) == 2.0 and tl.locate(11.0, 32.0).beat_at(11.5) == 33.0
    policy = SendPolicy(refresh=1.0)
    assert policy.due(tl, 10.0)
    policy.sent(tl, 10.0)
    assert not policy.due(tl, 10.5)
    assert policy.due(tl, 11.0)  # refresh
    assert policy.due(tl.tempo(10.5, 121.0), 10.5) and policy.due(tl.stop(10.5), 10.5)
    assert policy.due(tl.locate(10.5, 0.0), 10.5)


def test_backoff_grows_with_jitter_and_resets() -> None:
    b = Backoff(base=0.1, cap=1.0, rng=random.Random(1))
    delays = [b.next_delay() for _ in range(8)]
    for i, d in enumerate(delays):
        ceiling = min(1.0, 0.1 * 2**i)
        assert ceiling / 2 <= d <= ceiling
    assert len(set(delays)) == len(delays)
    b.reset()
    assert b.next_delay() <= 0.1
