"""The hub's core: commands in, durable events out, state and fan-out kept in step.

The pure parts (``decide``, ``reduce``) run on the event loop; the only blocking
work, SQLite appends with fsync, runs on one writer thread. Commands that arrive
together are decided one after another against a working state and committed in
one transaction (group commit), so throughput grows with load while an ack still
means "durable". Events are published to subscribers only after they are durable.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeVar

from hub.decide import decide
from hub.errors import ErrorCode, HubError
from hub.eventlog import Batch, EventLog, OpAck, OpRecord, PendingEvent
from hub.events import Cause, Envelope, Event, topic_of
from hub.fanout import Fanout
from hub.ids import GROUP, new_id
from hub.protocol import Ack, SessionCommand
from hub.state import HubState, reduce

log = logging.getLogger("tutti.core")

T = TypeVar("T")

_MAX_GROUP = 256


@dataclass
class _Pending:
    future: asyncio.Future[Any]
    command: SessionCommand | None = None
    events: Sequence[Event] = ()
    cause: Cause = "system"
    op_id: str | None = None
    client: str | None = None
    artifact_exists: Callable[[str], bool] | None = None
    op_result: dict[str, Any] | None = None  # the ack to remember for a system batch's op_id
    # Writer-thread work committed in the same transaction as the batch (a job record's
    # update with its job.* event): both land or neither does, even under kill -9.
    also: Callable[[], object] | None = None


@dataclass
class _Planned:
    item: _Pending
    events: list[PendingEvent] = field(default_factory=list)
    result: dict[str, Any] = field(default_factory=dict)
    error: HubError | None = None
    replay_of: OpRecord | None = None


class Core:
    """Owns the state, the event log's write side and the commit pipeline."""

    def __init__(
        self,
        eventlog: EventLog,
        fanout: Fanout,
        state: HubState,
        transaction: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
    ) -> None:
        self.log = eventlog
        # The database transaction that ``also`` work shares with the log append (SQLite:
        # one file, nested transactions become savepoints); none for an in-memory log.
        self._transaction = transaction or contextlib.nullcontext
        self.fanout = fanout
        self.state = state
        self._queue: asyncio.Queue[_Pending] = asyncio.Queue()
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="tutti-writer")
        self._task: asyncio.Task[None] | None = None
        self.listeners: list[Callable[[list[Envelope]], None]] = []
        self.commits = 0

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._commit_loop(), name="tutti-commit")

    async def stop(self) -> None:
        """Commit what is queued, then stop the pipeline."""
        while not self._queue.empty():
            await asyncio.sleep(0.01)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        self._writer.shutdown(wait=True)

    async def in_writer(self, fn: Callable[..., T], *args: Any) -> T:
        """Run blocking database work on the single writer thread, in submission order."""
        return await self.in_writer_nowait(fn, *args)

    def in_writer_nowait(self, fn: Callable[..., T], *args: Any) -> asyncio.Future[T]:
        """Queue writer-thread work now (so it runs before anything queued later); its future."""
        loop = asyncio.get_running_loop()
        return loop.run_in_executor(self._writer, fn, *args)

    # --- entry points ---------------------------------------------------------------

    async def execute(
        self,
        command: SessionCommand,
        *,
        op_id: str | None,
        client: str | None,
        artifact_exists: Callable[[str], bool] | None = None,
    ) -> Ack:
        """Decide, make durable, apply, publish; the Ack resolves only after the fsync."""
        return await self.submit(command, op_id=op_id, client=client, artifact_exists=artifact_exists)

    def submit(
        self,
        command: SessionCommand,
        *,
        op_id: str | None,
        client: str | None,
        artifact_exists: Callable[[str], bool] | None = None,
    ) -> asyncio.Future[Ack]:
        """Queue a command now (in call order) and return the future of its Ack.

        Lets one connection pipeline commands: they are decided in the order submitted
        and share group commits, instead of paying one fsync each.
        """
        fut: asyncio.Future[Ack] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(
            _Pending(fut, command=command, op_id=op_id, client=client, artifact_exists=artifact_exists)
        )
        return fut

    async def record(
        self,
        events: Sequence[Event],
        *,
        cause: Cause = "system",
        op_id: str | None = None,
        op_result: dict[str, Any] | None = None,
        also: Callable[[], object] | None = None,
    ) -> list[Envelope]:
        """Append events the hub itself produced (job lifecycle, files).

        With ``op_id`` and ``op_result`` the batch also stores that ack, so a client's
        retried request (e.g. a job submission) is answered from it instead of twice.
        A batch whose op_id was already recorded writes nothing and returns ``[]``.
        ``also`` runs on the writer thread inside the same transaction (not for a replay).
        """
        return await self.record_nowait(
            events, cause=cause, op_id=op_id, op_result=op_result, also=also
        )

    def record_nowait(
        self,
        events: Sequence[Event],
        *,
        cause: Cause = "system",
        op_id: str | None = None,
        op_result: dict[str, Any] | None = None,
        also: Callable[[], object] | None = None,
    ) -> asyncio.Future[list[Envelope]]:
        """Queue events now and return the future of their envelopes (resolved once durable).

        Batches queued one after another are committed in that order (possibly sharing a
        group commit), so a producer can stream many batches without waiting an fsync for
        each and still rely on their order in the log.
        """
        fut: asyncio.Future[list[Envelope]] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(
            _Pending(fut, events=events, cause=cause, op_id=op_id, op_result=op_result, also=also)
        )
        return fut

    # --- the pipeline -----------------------------------------------------------------

    async def _commit_loop(self) -> None:
        while True:
            first = await self._queue.get()
            items = [first]
            while len(items) < _MAX_GROUP and not self._queue.empty():
                items.append(self._queue.get_nowait())
            try:
                await self._commit(items)
            except Exception as exc:  # a bug must not wedge the pipeline
                log.exception("commit failed")
                for it in items:
                    if not it.future.done():
                        it.future.set_exception(
                            HubError(ErrorCode.internal_error, f"commit failed: {exc}")
                        )

    async def _commit(self, items: list[_Pending]) -> None:
        working = self.state
        next_offset = self.log.head() + 1
        plans: list[_Planned] = []
        seen_ops: dict[str, _Planned] = {}
        provisional: list[Envelope] = []
        now = time.time()
        for it in items:
            plan = _Planned(it)
            plans.append(plan)
            if it.op_id is not None:
                if it.op_id in seen_ops:
                    plan.replay_of = None
                    plan.result = seen_ops[it.op_id].result
                    plan.error = seen_ops[it.op_id].error
                    continue
                previous = self.log.find_op(it.op_id, "")
                if previous is not None:
                    plan.replay_of = previous
                    continue
                seen_ops[it.op_id] = plan
            try:
                if it.command is not None:
                    decision = decide(
                        working,
                        it.command,
                        now=now,
                        ids=new_id,
                        artifact_exists=it.artifact_exists or (lambda _a: True),
                    )
                    plan.result = dict(decision.result)
                    events: Sequence[Event] = decision.events
                    cause: Cause = decision.cause
                    group: str | None = decision.group
                else:
                    events, cause, group = it.events, it.cause, new_id(GROUP)
            except HubError as err:
                err.op_id = it.op_id
                plan.error = err
                continue
            for ev in events:
                pe = PendingEvent(event=ev, topic=topic_of(ev), cause=cause, group=group, op_id=it.op_id)
                plan.events.append(pe)
                env = Envelope(
                    epoch=self.log.epoch,
                    offset=next_offset,
                    ts=now,
                    topic=pe.topic,
                    cause=cause,
                    group=group,
                    op_id=it.op_id,
                    event=ev,
                )
                next_offset += 1
                provisional.append(env)
                working = reduce(working, env)

        fresh = [p for p in plans if p.error is None and p.replay_of is None]
        batches = [Batch(p.events, self._op_ack(p)) for p in fresh]
        effects = [p.item.also for p in fresh if p.item.also is not None]
        if effects or any(b.events or b.op is not None for b in batches):
            written = await self.in_writer(self._write, batches, effects)
            durable = [env for batch in written for env in batch]
            if [e.offset for e in durable] != [e.offset for e in provisional]:
                # Only this pipeline writes; a mismatch means the log was changed behind us.
                raise RuntimeError("event log offsets diverged from the planned ones")
            self.state = working
            self.commits += 1
            if durable:
                self.fanout.publish(durable)
                for listener in self.listeners:
                    listener(durable)
        else:
            durable = []
        cursor = 0
        for plan in plans:
            fut = plan.item.future
            n = len(plan.events)
            mine = provisional[cursor : cursor + n] if plan.error is None else []
            cursor += n if plan.error is None else 0
            if fut.done():
                continue
            if plan.error is not None:
                fut.set_exception(plan.error)
            elif plan.item.command is None:
                fut.set_result(mine)
            elif plan.replay_of is not None:
                fut.set_result(
                    Ack(
                        op_id=plan.item.op_id or "",
                        result=plan.replay_of.result,
                        offset=plan.replay_of.last_offset,
                    )
                )
            else:
                fut.set_result(
                    Ack(
                        op_id=plan.item.op_id or "",
                        result=plan.result,
                        offset=mine[-1].offset if mine else None,
                    )
                )

    def _write(
        self, batches: list[Batch], effects: list[Callable[[], object]]
    ) -> list[list[Envelope]]:
        """Writer thread: the side effects and the log append in one transaction."""
        with self._transaction():
            for effect in effects:
                effect()
            return self.log.append_many(batches)

    def _op_ack(self, plan: _Planned) -> OpAck | None:
        # Op ids are client-generated UUIDs, global across reconnects (a new socket is a
        # new client id, but a retried command must still have one effect).
        if plan.item.op_id is None:
            return None
        if plan.item.command is not None:
            return OpAck(op_id=plan.item.op_id, client="", result=plan.result)
        if plan.item.op_result is not None:
            return OpAck(op_id=plan.item.op_id, client="", result=plan.item.op_result)
        return None
