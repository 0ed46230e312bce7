"""An in-memory event log: the reference model of the ``hub.eventlog.EventLog`` contract.

Not shipped: the hub's log is SQLite. This one holds the same contract in plain lists and
dicts, so the contract suite (``eventlog_contract``) runs against two implementations and
a test that passes on one and fails on the other points at the suite or the SQLite log.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

from hub.eventlog import (
    DEFAULT_KEEP_EVENTS,
    DEFAULT_KEEP_SECONDS,
    Batch,
    BatchLike,
    HistoryCompacted,
    OpAck,
    OpRecord,
    PendingEvent,
    Snapshot,
    SnapshotFn,
    TopicFilter,
    check_new_ops,
    check_read_args,
    covering_snapshot,
    number_batches,
    op_records,
    retention_cut,
)
from hub.events import Envelope


class MemoryEventLog:
    """The event-log contract kept in plain Python lists: the model the contract suite
    checks ``SqliteEventLog`` against (and itself against the suite)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.RLock()
        self._compact_lock = threading.Lock()
        self._epoch = uuid.uuid4().hex
        self._events: list[Envelope] = []  # offsets first_retained .. head, in order
        self._compacted = 0
        self._ops: dict[tuple[str, str], OpRecord] = {}
        self._snapshot: Snapshot | None = None

    @property
    def epoch(self) -> str:
        return self._epoch

    def head(self) -> int:
        return self._compacted + len(self._events)

    def first_retained(self) -> int:
        return self._compacted + 1

    def append(self, batch: Sequence[PendingEvent], *, op: OpAck | None = None) -> list[Envelope]:
        return self.append_many([Batch(batch, op)])[0]

    def append_many(self, batches: Sequence[BatchLike]) -> list[list[Envelope]]:
        ts = self._clock()
        with self._lock:
            check_new_ops(batches, lambda c, o: (c, o) in self._ops)
            start_head = self.head()
            envs = number_batches(batches, epoch=self._epoch, start=start_head + 1, ts=ts)
            ops = op_records(batches, envs, start_head, ts)
            # Nothing above mutated the log; from here on nothing can fail.
            for batch in envs:
                self._events.extend(batch)
            for r in ops:
                self._ops[(r.client, r.op_id)] = r
        return envs

    def read(
        self, after: int, topics: TopicFilter | None = None, limit: int | None = None
    ) -> list[Envelope]:
        check_read_args(after, limit)
        with self._lock:
            if after < self._compacted:
                raise HistoryCompacted(after=after, first_retained=self._compacted + 1)
            tail = self._events[after - self._compacted :]
        if topics is not None:
            tail = [e for e in tail if topics(e.topic)]
        return tail if limit is None else tail[:limit]

    def save_snapshot(self, offset: int, data: bytes) -> None:
        with self._lock:
            low = max(self._compacted, self._snapshot.offset if self._snapshot else 0)
            if not low <= offset <= self.head():
                raise ValueError(f"snapshot offset {offset} outside [{low}, {self.head()}]")
            self._snapshot = Snapshot(offset, bytes(data))

    def latest_snapshot(self) -> Snapshot | None:
        return self._snapshot

    def compact(
        self,
        *,
        keep_seconds: float = DEFAULT_KEEP_SECONDS,
        keep_events: int = DEFAULT_KEEP_EVENTS,
        now: float,
        snapshot: SnapshotFn,
    ) -> int:
        with self._compact_lock:
            with self._lock:
                limit = now - keep_seconds
                first_young = next((e.offset for e in self._events if e.ts >= limit), None)
                cut = retention_cut(self.head(), keep_events, first_young)
                latest = self._snapshot
            if cut <= self._compacted:
                return 0
            # Called without the lock, as in SqliteEventLog: it may read the log.
            made = None if latest and latest.offset >= cut else covering_snapshot(cut, snapshot(cut))
            with self._lock:
                if made is not None:
                    self.save_snapshot(*made)
                count = cut - self._compacted
                del self._events[:count]
                self._compacted = cut
                self._ops = {k: r for k, r in self._ops.items() if r.head_offset > cut}
            return count

    def find_op(self, op_id: str, client: str | None = None) -> OpRecord | None:
        if client is not None:
            return self._ops.get((client, op_id))
        with self._lock:
            found = [r for (_, o), r in self._ops.items() if o == op_id]
        return max(found, key=lambda r: r.head_offset, default=None)

    def close(self) -> None:
        pass
