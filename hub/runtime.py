"""The assembled hub: stores, core pipeline, fan-out, jobs, transport and clients.

Adapters (WebSocket, HTTP, SSE, inbox watcher) talk to this object only.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.store import CasStore
from hub import __version__
from hub.artifacts import ArtifactStore
from hub.config import HubConfig
from hub.core import Core
from hub.errors import ErrorCode, HubError
from hub.eventlog import HistoryCompacted, SqliteEventLog
from hub.events import Envelope, TakeChosen
from hub.fanout import Fanout
from hub.ids import new_id
from hub.inbox import Inbox
from hub.jobs import JobManager
from hub.jobstore import JobStore
from hub.model import Session
from hub.protocol import Ack as AckMsg
from hub.protocol import (
    AddTake,
    Analyze,
    CancelJob,
    Command,
    GetJob,
    GetSession,
    ListSessions,
    Peer,
    Presence,
    ReleaseTransport,
    RenderSession,
    Resumed,
    ResumePoint,
    SessionCommand,
    SubmitBatch,
    SubmitJob,
    Subscribe,
    TakeTransport,
    TransportUpdate,
    Unsubscribe,
    Welcome,
    encode,
)
from hub.snapshots import decode_state, encode_state
from hub.sqlite import open_data_dir
from hub.state import EMPTY, replay, snapshot, summaries
from hub.timelines import Timelines

if TYPE_CHECKING:
    from hub.connection import Connection

log = logging.getLogger("tutti.hub")

_SESSION_COMMANDS: tuple[type[Any], ...] = SessionCommand.__args__
_REPLAY_PAGE = 1000
_REPLAY_WINDOW = 256  # replayed frames a client may have queued before the replay waits
# How often the retention rules run (log compaction and job-record expiry). Test hooks
# (undocumented for users): TUTTI_COMPACT_INTERVAL overrides the period,
# TUTTI_RETENTION_SKEW (seconds) ages every event and finished job record by that much so a
# test need not wait out the 60 s minimum of keep_seconds / job_keep_seconds.
COMPACT_INTERVAL = 60.0


class Hub:
    def __init__(self, config: HubConfig) -> None:
        self.config = config
        self.data: Path = config.data
        self.fanout = Fanout()
        self.connections: dict[str, Connection] = {}
        self.timelines = Timelines(self)
        self.started_at = time.monotonic()
        self._clock_origin = time.monotonic()
        self.compacted_events = 0
        self._replays = 0
        self._side_tasks: set[asyncio.Future[None]] = set()
        # set in start()
        self._compactor: asyncio.Task[None]
        self.core: Core
        self.cas: CasStore
        self.artifacts: ArtifactStore
        self.jobstore: JobStore
        self.jobs: JobManager

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        self.data.mkdir(parents=True, exist_ok=True)
        db = open_data_dir(self.data)
        self.db = db
        eventlog = SqliteEventLog(db)
        state = EMPTY
        snap = eventlog.latest_snapshot()
        if snap is not None:
            state = decode_state(snap[1])
        after = state.offset
        while True:
            page = eventlog.read(after, limit=_REPLAY_PAGE)
            if not page:
                break
            state = replay(state, page)
            after = page[-1].offset
        self.fanout.published_offset = eventlog.head()
        self.cas = CasStore(self.data / "cas")
        self.artifacts = ArtifactStore(db)
        self.jobstore = JobStore(db, keep_seconds=self.config.retention.job_keep_seconds)
        self.core = Core(eventlog, self.fanout, state, transaction=db.transaction)
        self.core.start()
        self.jobs = JobManager(self)
        await self.jobs.start()
        self._compactor = asyncio.create_task(self._compact_loop(), name="tutti-compact")
        self.core.listeners.append(self._on_events)
        self.inbox: Inbox | None = None
        if self.config.watch_inbox:
            self.inbox = Inbox(self)
            await self.inbox.start()
        log.info("hub ready: %d sessions, log head %d", len(state.sessions), eventlog.head())

    async def stop(self) -> None:
        for conn in list(self.connections.values()):
            from hub.protocol import CloseCode

            conn.close(CloseCode.GOING_AWAY, "hub shutting down")
        self._compactor.cancel()
        if self.inbox is not None:
            await self.inbox.stop()
        await self.timelines.flush()  # tempo changes still inside their debounce
        await self.jobs.stop()
        await self.core.stop()
        self.db.close()

    # --- retention ---------------------------------------------------------------------

    async def _compact_loop(self) -> None:
        interval = float(os.environ.get("TUTTI_COMPACT_INTERVAL", COMPACT_INTERVAL))
        while True:
            await asyncio.sleep(interval)
            try:
                await self.compact()
            except Exception:
                log.exception("log compaction failed")
            try:
                await self.expire_jobs()
            except Exception:
                log.exception("job record expiry failed")

    async def expire_jobs(self) -> int:
        """Delete finished job records past ``job_keep_seconds``; their ids answer job_expired."""
        now = time.time() + float(os.environ.get("TUTTI_RETENTION_SKEW", "0"))
        expired = await self.core.in_writer(self.jobstore.expire, now)
        if expired:
            log.info("expired %d finished job records", expired)
        return expired

    async def compact(self) -> int:
        """Apply the retention rule: older history becomes a snapshot; returns events deleted.

        The snapshot is the current state, valid at its own offset. Compaction never cuts
        past that offset (events committed meanwhile stay), so the snapshot always covers
        the cut and the log's snapshot callback is never needed.
        """
        if self._replays:
            return 0  # try again next period; a replay must not lose its history mid-way
        retention = self.config.retention
        state = self.core.state  # immutable, and consistent with what was published
        now = time.time() + float(os.environ.get("TUTTI_RETENTION_SKEW", "0"))
        eventlog = self.core.log

        def work() -> int:
            head = eventlog.head()
            if head - eventlog.first_retained() + 1 <= retention.keep_events:
                return 0
            latest = eventlog.latest_snapshot()
            if state.offset > 0 and (latest is None or latest.offset < state.offset):
                eventlog.save_snapshot(state.offset, encode_state(state))

            def no_snapshot(cut: int) -> bytes:
                raise RuntimeError(f"compaction asked for a snapshot at {cut}, past {state.offset}")

            return eventlog.compact(
                keep_seconds=retention.keep_seconds,
                keep_events=max(retention.keep_events, head - state.offset),
                now=now,
                snapshot=no_snapshot,
            )

        deleted = await self.core.in_writer(work)
        if deleted:
            self.compacted_events += deleted
            log.info("compacted %d events (log now starts at %d)", deleted, eventlog.first_retained())
        return deleted

    # --- clocks and auth ----------------------------------------------------------------

    def clock(self) -> float:
        """The hub's monotonic clock in seconds (what transport times are expressed in)."""
        return time.monotonic() - self._clock_origin

    def token_ok(self, token: str | None) -> bool:
        expected = self.config.token
        if expected is None:
            return True
        return token is not None and hmac.compare_digest(token.encode(), expected.encode())

    # --- clients ------------------------------------------------------------------------

    def connect(self, conn: Connection, hello: Any) -> str:
        client_id = new_id("cli_")
        self.connections[client_id] = conn
        self.fanout.add(client_id, conn.outbox)
        return client_id

    def disconnect(self, client_id: str) -> None:
        self.connections.pop(client_id, None)
        sub = self.fanout.subscriber(client_id)
        sessions = {t.split(":", 1)[1] for t in (sub.topics if sub else ()) if t.startswith("session:")}
        self.fanout.remove(client_id)
        sessions |= self.timelines.drop_client(client_id)
        for sid in sessions:
            self.publish_presence(sid)

    def welcome(self, client_id: str) -> Welcome:
        limits = self.config.limits
        return Welcome(
            server_version=__version__,
            client_id=client_id,
            engines=self.jobs.describe(),
            sessions=summaries(self.core.state),
            server_time=self.clock(),
            epoch=self.core.log.epoch,
            offset=self.fanout.published_offset,
            heartbeat_interval=limits.heartbeat_interval,
            heartbeat_timeout=limits.heartbeat_timeout,
            max_frame_bytes=limits.max_frame_bytes,
        )

    # --- subscriptions and resume ---------------------------------------------------------

    def _check_topic(self, topic: str) -> None:
        if topic in ("jobs", "files", "sessions"):
            return
        kind, _, ident = topic.partition(":")
        if kind in ("session", "transport") and ident:
            if ident not in self.core.state.sessions:
                raise HubError(ErrorCode.unknown_session, f"no session {ident!r}", details={"topic": topic})
            return
        raise HubError(
            ErrorCode.unknown_topic,
            f"unknown topic {topic!r}",
            suggestions=["session:<id>", "transport:<id>", "jobs", "files", "sessions"],
        )

    async def subscribe(
        self, client_id: str, topics: list[str], resume: ResumePoint | None
    ) -> dict[str, Any]:
        for topic in topics:
            self._check_topic(topic)
        conn = self.connections[client_id]
        new_topics = set(topics)
        if resume is None:
            self.fanout.subscribe(client_id, new_topics)
            self._after_subscribe(client_id, new_topics)
            return {"topics": sorted(new_topics), "offset": self.fanout.published_offset}
        # Hold live events while the replay is read, so the two join with no gap and no duplicate.
        upto = self.fanout.hold(client_id)
        self.fanout.subscribe(client_id, new_topics)
        sub = self.fanout.subscriber(client_id)
        assert sub is not None
        wanted = set(sub.topics)
        epoch = self.core.log.epoch
        self._replays += 1  # no compaction starts while a replay reads the log
        try:
            if resume.epoch != epoch:
                raise HistoryCompacted("the hub's history was reset (epoch changed)")
            if resume.offset > upto:
                raise HistoryCompacted(f"offset {resume.offset} is past the log head {upto}")
            await self._replay(conn, resume.offset, upto, wanted)
        except HistoryCompacted as exc:
            sessions = [
                s for s in snapshot(self.core.state) if f"session:{s.id}" in wanted or "sessions" in wanted
            ]
            conn.send(
                encode(
                    Resumed(recovered=False, epoch=epoch, offset=upto, snapshot=sessions, reason=exc.message)
                )
            )
        finally:
            self._replays -= 1
            # Live events after `upto` follow the replay (or the snapshot, valid at `upto`).
            self.fanout.release(client_id, upto)
        self._after_subscribe(client_id, new_topics)
        return {"topics": sorted(new_topics), "offset": upto}

    async def _replay(self, conn: Connection, after: int, upto: int, wanted: set[str]) -> None:
        """Send ``resumed`` then every event in (after, upto] on the wanted topics, in order.

        The first page is read before ``resumed`` goes out, so a compacted history turns
        into ``recovered: false`` and never into a partial replay. Frames are paced by the
        client's queue (see Outbox.room), so a long replay does not overflow it.
        """
        from hub.fanout import delivery_topics
        from hub.protocol import EventMessage

        outbox = conn.outbox
        sent_resumed = False
        while True:
            page = []
            if after < upto:
                page = await self.core.in_writer(
                    lambda a=after: self.core.log.read(a, limit=min(_REPLAY_PAGE, upto - a))
                )
            if not sent_resumed:
                conn.send(encode(Resumed(recovered=True, epoch=self.core.log.epoch, offset=upto)))
                sent_resumed = True
            if not page:
                return
            for env in page:
                if any(t in wanted for t in delivery_topics(env)):
                    if not outbox.has_room(_REPLAY_WINDOW):
                        await outbox.room(_REPLAY_WINDOW)
                    if outbox.closed or outbox.overflowed:
                        return
                    outbox.push(encode(EventMessage.from_envelope(env, replayed=True)).decode())
                after = env.offset

    def _after_subscribe(self, client_id: str, topics: set[str]) -> None:
        for topic in topics:
            kind, _, sid = topic.partition(":")
            if kind == "session":
                self.publish_presence(sid)
            elif kind == "transport":
                self.timelines.send_current(client_id, sid)

    def publish_presence(self, session_id: str) -> None:
        topic = f"session:{session_id}"
        peers = []
        for sub in self.fanout.subscribers_of(topic):
            conn = self.connections.get(sub.client_id)
            if conn is not None and conn.hello is not None:
                peers.append(Peer(client_id=sub.client_id, kind=conn.hello.client, name=conn.hello.name))
        msg = Presence(session=session_id, peers=peers, transport_holder=self.timelines.holder(session_id))
        self.fanout.publish_latest(topic, f"presence:{session_id}", encode(msg).decode())

    # --- commands -----------------------------------------------------------------------

    def pipeline_command(self, client_id: str, cmd: Command) -> asyncio.Future[AckMsg] | None:
        """Queue a session command at once and return its ack's future; None for other commands.

        Session commands only touch the event log, so a connection may have many in flight
        (they are decided in the order sent and share group commits).
        """
        if not isinstance(cmd, _SESSION_COMMANDS):
            return None
        exists = self._artifact_exists if isinstance(cmd, AddTake) else None
        return self.core.submit(cmd, op_id=cmd.op_id, client=client_id, artifact_exists=exists)

    async def handle_command(self, client_id: str, cmd: Command) -> AckMsg:
        if isinstance(cmd, Subscribe):
            result = await self.subscribe(client_id, cmd.topics, cmd.resume)
            return AckMsg(op_id=cmd.op_id, result=result)
        if isinstance(cmd, Unsubscribe):
            self.fanout.unsubscribe(client_id, cmd.topics)
            for t in cmd.topics:
                if t.startswith("session:"):
                    self.publish_presence(t.split(":", 1)[1])
            return AckMsg(op_id=cmd.op_id, result={"topics": sorted(cmd.topics)})
        if isinstance(cmd, _SESSION_COMMANDS):
            exists = self._artifact_exists if isinstance(cmd, AddTake) else None
            return await self.core.execute(
                cmd,
                op_id=cmd.op_id,
                client=client_id,
                artifact_exists=exists,
            )
        if isinstance(cmd, GetSession):
            session = self.session(cmd.session)
            return AckMsg(op_id=cmd.op_id, result={"session": session.model_dump(mode="json")})
        if isinstance(cmd, ListSessions):
            return AckMsg(
                op_id=cmd.op_id,
                result={"sessions": [s.model_dump(mode="json") for s in summaries(self.core.state)]},
            )
        if isinstance(cmd, RenderSession):
            result = await self.render(cmd.session, cmd.sections, creator=client_id)
            return AckMsg(op_id=cmd.op_id, result=result)
        if isinstance(cmd, SubmitJob):
            job = await self.jobs.submit(cmd, client=client_id, op_id=cmd.op_id)
            return AckMsg(op_id=cmd.op_id, result=job)
        if isinstance(cmd, SubmitBatch):
            jobs = await self.jobs.submit_batch(cmd.jobs, client=client_id, op_id=cmd.op_id)
            return AckMsg(op_id=cmd.op_id, result={"jobs": jobs})
        if isinstance(cmd, CancelJob):
            return AckMsg(op_id=cmd.op_id, result=await self.jobs.cancel(cmd.job))
        if isinstance(cmd, GetJob):
            return AckMsg(op_id=cmd.op_id, result=self.jobs.get(cmd.job))
        if isinstance(cmd, Analyze):
            return AckMsg(op_id=cmd.op_id, result=await self.analyze(cmd.artifact, list(cmd.analyses)))
        if isinstance(cmd, TakeTransport | ReleaseTransport | TransportUpdate):
            return AckMsg(op_id=cmd.op_id, result=self.timelines.handle(client_id, cmd))
        raise HubError(ErrorCode.unknown_type, f"{getattr(cmd, 'type', type(cmd).__name__)} is not handled by this hub")

    def session(self, session_id: str) -> Session:
        s = self.core.state.sessions.get(session_id)
        if s is None:
            raise HubError(ErrorCode.unknown_session, f"no session {session_id!r}")
        return s

    def _artifact_exists(self, artifact_id: str) -> bool:
        try:
            self.artifacts.get(artifact_id)
        except HubError:
            return False
        return True

    # --- artifacts, render, analysis: see hub/media.py -------------------------------------

    async def render(self, session_id: str, sections: list[str] | None, *, creator: str) -> dict[str, Any]:
        from hub.media import render_session_artifact

        return await render_session_artifact(self, session_id, sections, creator=creator)

    async def analyze(self, artifact_id: str, analyses: list[str]) -> dict[str, Any]:
        from hub.media import analyze_artifact

        return await analyze_artifact(self, artifact_id, analyses)

    def _on_events(self, envelopes: list[Envelope]) -> None:
        """Side effects of durable events: a chosen take is exported for DAWs."""
        for env in envelopes:
            if isinstance(env.event, TakeChosen) and env.event.take is not None:
                task = asyncio.ensure_future(
                    self._export_take(env.event.session, env.event.section, env.event.take)
                )
                self._side_tasks.add(task)
                task.add_done_callback(self._side_tasks.discard)

    async def _export_take(self, session_id: str, section_id: str, take_id: str) -> None:
        from hub.media import export_file, file_ready, load_artifact_bytes

        s = self.core.state.sessions.get(session_id)
        sec = s.section(section_id) if s else None
        take = sec.take(take_id) if sec else None
        if s is None or sec is None or take is None:
            return
        try:
            data = await asyncio.to_thread(load_artifact_bytes, self, take.artifact_id)
            index = [t.id for t in sec.takes].index(take_id) + 1
            path = await export_file(self, session_id, f"{sec.name}-take{index}.mid", data)
            artifact = self.artifacts.get(take.artifact_id)
            await self.core.record([file_ready(artifact, path)])
        except HubError as err:
            log.warning("export of take %s failed: %s", take_id, err.message)
