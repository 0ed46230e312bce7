"""The durable, ordered event log: the interface, its pure helpers and the SQLite log.

Every durable event gets an ``(epoch, offset)``: offsets are consecutive from 1
and never reused; the ``epoch`` is a random id made with a fresh log and changes
only when history was lost (the database file was recreated), so a client's
``(epoch, offset)`` either names a real position or is recognisably stale.

Retention rule (what :meth:`EventLog.compact` deletes): an event at offset ``o``
is deleted when ALL of these hold

1. ``o <= head - keep_events`` (it is not among the newest ``keep_events``);
2. it and every event before it are older than ``keep_seconds``
   (``ts < now - keep_seconds``; one young event protects everything after it,
   so a wall-clock step backwards never opens a hole);
3. a snapshot at an offset ``>= o`` exists; if the latest one is older, the
   ``snapshot`` callback is asked for the state at the new cut first.

So the log always holds a suffix ``first_retained() .. head()`` and the latest
snapshot is valid at an offset ``>= first_retained() - 1``: state is always
``snapshot + read(after=snapshot.offset)``. Op records (idempotency) whose
command's events were compacted go with them.

A reader asking for events after an offset that is gone gets
:class:`HistoryCompacted`, never a partial replay.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

import orjson

from hub.errors import ErrorCode, HubError
from hub.events import SCHEMA_VERSION, Cause, Envelope, Event, topic_of, upcast
from hub.sqlite import Database

DEFAULT_KEEP_SECONDS = 24 * 3600.0
DEFAULT_KEEP_EVENTS = 100_000

Upcaster = Callable[[int, dict[str, Any]], dict[str, Any]]
TopicFilter = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class Retention:
    """How much history the log keeps (see the module docstring for the exact rule)."""

    keep_seconds: float = DEFAULT_KEEP_SECONDS
    keep_events: int = DEFAULT_KEEP_EVENTS


class PendingEvent(NamedTuple):
    """An event on its way into the log; ``topic`` defaults to ``topic_of(event)``."""

    event: Event
    topic: str | None = None
    cause: Cause = "do"
    group: str | None = None
    op_id: str | None = None


class OpAck(NamedTuple):
    """What to remember about a command so a repeated ``op_id`` gets the same ack.

    ``client`` is the hub's key for who sent it ("" when op ids are global);
    ``result`` is the ack's JSON payload.
    """

    op_id: str
    client: str = ""
    result: dict[str, Any] = {}  # noqa: RUF012  (a NamedTuple default; copied when stored)


@dataclass(frozen=True, slots=True)
class OpRecord:
    """A stored ack. ``last_offset``: the command's last event (None: it made no events);
    ``head_offset``: the log head right after it (retention is judged by it)."""

    op_id: str
    client: str
    result: dict[str, Any]
    last_offset: int | None
    head_offset: int
    ts: float


class Batch(NamedTuple):
    """One command's events and its op record, for :meth:`EventLog.append_many`."""

    events: Sequence[PendingEvent]
    op: OpAck | None = None


# append_many takes Batch or any plain (events, op) pair.
BatchLike = tuple[Sequence[PendingEvent], OpAck | None]


class Snapshot(NamedTuple):
    offset: int
    data: bytes


# Returns the state at the given offset, or a Snapshot at any later offset
# (e.g. the hub's current state at its head, which needs no replay).
SnapshotFn = Callable[[int], bytes | Snapshot]


class HistoryCompacted(HubError):
    """Events after ``after`` are no longer all retained; serve a snapshot instead.

    The hub also raises it itself (with only a message) for a stale epoch.
    """

    def __init__(
        self,
        message: str | None = None,
        *,
        after: int | None = None,
        first_retained: int | None = None,
    ) -> None:
        if message is None:
            message = (
                f"events after offset {after} were compacted; the log starts at {first_retained}"
            )
        super().__init__(
            ErrorCode.not_found,
            message,
            details={"after": after, "first_retained": first_retained},
            suggestions=["resume from the latest snapshot"],
        )
        self.after = after
        self.first_retained = first_retained


class DuplicateOp(HubError):
    """An op id that already has a record; the hub must answer with the stored ack."""

    def __init__(self, client: str, op_id: str) -> None:
        super().__init__(
            ErrorCode.conflict,
            f"op {op_id!r} of client {client!r} was already applied",
            details={"op_id": op_id, "client": client},
        )


class EventLog(Protocol):
    """The interface the hub programs against. Implementations are thread-safe."""

    @property
    def epoch(self) -> str: ...

    def append(self, batch: Sequence[PendingEvent], *, op: OpAck | None = None) -> list[Envelope]:
        """Append one command's events atomically and durably; return them as stored."""
        ...

    def append_many(self, batches: Sequence[BatchLike]) -> list[list[Envelope]]:
        """Group commit: several commands in one transaction; results in request order.

        Raises :class:`DuplicateOp` (nothing written) if any op was already recorded.
        """
        ...

    def head(self) -> int:
        """The offset of the newest durable event; 0 for an empty log."""
        ...

    def first_retained(self) -> int:
        """The lowest offset still readable (``head() + 1`` when all was compacted)."""
        ...

    def read(
        self, after: int, topics: TopicFilter | None = None, limit: int | None = None
    ) -> list[Envelope]:
        """Events with offset > ``after`` (optionally only matching topics), oldest first.

        Raises :class:`HistoryCompacted` if ``after < first_retained() - 1``.
        """
        ...

    def save_snapshot(self, offset: int, data: bytes) -> None:
        """Store the hub's serialized state valid at ``offset`` (replaces older ones)."""
        ...

    def latest_snapshot(self) -> Snapshot | None: ...

    def compact(
        self,
        *,
        keep_seconds: float = DEFAULT_KEEP_SECONDS,
        keep_events: int = DEFAULT_KEEP_EVENTS,
        now: float,
        snapshot: SnapshotFn,
    ) -> int:
        """Apply the retention rule; return how many events were deleted.

        ``snapshot(cut)`` returns the state valid at ``cut`` (bytes) or a
        :class:`Snapshot` at a later offset; it is called without the log's lock
        held, and only when no stored snapshot covers the cut.
        """
        ...

    def find_op(self, op_id: str, client: str | None = None) -> OpRecord | None:
        """The stored ack of ``op_id`` from ``client`` (None: from any client, newest)."""
        ...

    def close(self) -> None: ...


# --- helpers for implementations (pure; also used by the contract suite's model) ----


def number_batches(
    batches: Sequence[BatchLike], *, epoch: str, start: int, ts: float
) -> list[list[Envelope]]:
    """Validate and number every event before anything is written (atomic batches)."""
    out: list[list[Envelope]] = []
    offset = start
    for events, _op in batches:
        envs: list[Envelope] = []
        for p in events:
            envs.append(
                Envelope(
                    epoch=epoch,
                    offset=offset,
                    ts=ts,
                    topic=p.topic if p.topic is not None else topic_of(p.event),
                    cause=p.cause,
                    group=p.group,
                    op_id=p.op_id,
                    schema_version=SCHEMA_VERSION,
                    event=p.event,
                )
            )
            offset += 1
        out.append(envs)
    return out


def check_new_ops(batches: Sequence[BatchLike], exists: Callable[[str, str], bool]) -> None:
    seen: set[tuple[str, str]] = set()
    for _events, op in batches:
        if op is None:
            continue
        key = (op.client, op.op_id)
        if key in seen or exists(*key):
            raise DuplicateOp(*key)
        seen.add(key)


def op_records(
    batches: Sequence[BatchLike], envs: list[list[Envelope]], start_head: int, ts: float
) -> list[OpRecord]:
    records: list[OpRecord] = []
    head = start_head
    for (_events, op), e in zip(batches, envs, strict=True):
        head += len(e)
        if op is not None:
            last = e[-1].offset if e else None
            records.append(OpRecord(op.op_id, op.client, dict(op.result), last, head, ts))
    return records


def covering_snapshot(cut: int, made: bytes | Snapshot) -> Snapshot:
    snap = made if isinstance(made, Snapshot) else Snapshot(cut, made)
    if snap.offset < cut:
        raise ValueError(f"snapshot at {snap.offset} does not cover the compaction cut {cut}")
    return snap


def retention_cut(head: int, keep_events: int, first_young: int | None) -> int:
    """The highest offset the retention rule allows deleting (see module docstring)."""
    by_count = head - max(keep_events, 0)
    by_age = head if first_young is None else first_young - 1
    return min(by_count, by_age)


def check_read_args(after: int, limit: int | None) -> None:
    if after < 0:
        raise ValueError(f"after must be >= 0, got {after}")
    if limit is not None and limit < 0:
        raise ValueError(f"limit must be >= 0, got {limit}")


# --- SQLite ---------------------------------------------------------------------------

_SCHEMA = """
CREATE TABLE IF NOT EXISTS eventlog_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    "offset" INTEGER PRIMARY KEY,
    ts REAL NOT NULL,
    topic TEXT NOT NULL,
    cause TEXT NOT NULL,
    "group" TEXT,
    op_id TEXT,
    schema_version INTEGER NOT NULL,
    type TEXT NOT NULL,
    data TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS ops (
    client TEXT NOT NULL,
    op_id TEXT NOT NULL,
    result TEXT NOT NULL,
    last_offset INTEGER,
    head_offset INTEGER NOT NULL,
    ts REAL NOT NULL,
    PRIMARY KEY (client, op_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS ops_by_head ON ops (head_offset);
CREATE INDEX IF NOT EXISTS ops_by_id ON ops (op_id, head_offset);
CREATE TABLE IF NOT EXISTS snapshots ("offset" INTEGER PRIMARY KEY, ts REAL NOT NULL, data BLOB NOT NULL);
"""

_INSERT_EVENT = (
    'INSERT INTO events ("offset", ts, topic, cause, "group", op_id, schema_version, type, data)'
    " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_EVENTS = (
    'SELECT "offset", ts, topic, cause, "group", op_id, schema_version, data'
    ' FROM events WHERE "offset" > ? ORDER BY "offset"'
)
_READ_CHUNK = 512  # rows fetched at a time while filtering by topic


class SqliteEventLog:
    """The durable log in the hub's database (see :mod:`hub.sqlite` for threading).

    One instance owns the log tables of its database: head and first_retained
    are cached in memory and refreshed only after commits.
    ``upcaster`` exists for tests of old-schema rows; the hub uses the default.
    """

    def __init__(
        self,
        conn: Database,
        *,
        clock: Callable[[], float] = time.time,
        upcaster: Upcaster = upcast,
    ) -> None:
        self._db = conn
        self._clock = clock
        self._upcast = upcaster
        self._compact_lock = threading.Lock()
        with conn.transaction():
            for stmt in _SCHEMA.split(";"):  # executescript() would COMMIT first
                if stmt.strip():
                    conn.execute(stmt)
            # The epoch is born with the tables: a recreated file gets a new one.
            conn.execute(
                "INSERT OR IGNORE INTO eventlog_meta VALUES ('epoch', ?)", (uuid.uuid4().hex,)
            )
            conn.execute("INSERT OR IGNORE INTO eventlog_meta VALUES ('compacted_through', '0')")
            meta = dict(conn.execute("SELECT key, value FROM eventlog_meta").fetchall())
            self._epoch = str(meta["epoch"])
            self._compacted = int(meta["compacted_through"])
            self._head = self._db_head()

    def _db_head(self) -> int:
        """The head as the current transaction sees it (includes own uncommitted rows)."""
        (top,) = self._db.execute('SELECT MAX("offset") FROM events').fetchone()
        return max(int(top or 0), self._compacted)

    @property
    def epoch(self) -> str:
        return self._epoch

    def head(self) -> int:
        return self._head

    def first_retained(self) -> int:
        return self._compacted + 1

    def append(self, batch: Sequence[PendingEvent], *, op: OpAck | None = None) -> list[Envelope]:
        return self.append_many([Batch(batch, op)])[0]

    def append_many(self, batches: Sequence[BatchLike]) -> list[list[Envelope]]:
        db = self._db
        ts = self._clock()
        with db.transaction():
            check_new_ops(batches, lambda c, o: self._op_row(c, o) is not None)
            start_head = self._db_head()
            envs = number_batches(batches, epoch=self._epoch, start=start_head + 1, ts=ts)
            rows = [
                (
                    e.offset,
                    e.ts,
                    e.topic,
                    e.cause,
                    e.group,
                    e.op_id,
                    e.schema_version,
                    e.event.type,
                    orjson.dumps(e.event.model_dump()).decode(),
                )
                for batch in envs
                for e in batch
            ]
            db.executemany(_INSERT_EVENT, rows)
            ops = op_records(batches, envs, start_head, ts)
            db.executemany(
                "INSERT INTO ops VALUES (?, ?, ?, ?, ?, ?)",
                [
                    (
                        r.client,
                        r.op_id,
                        orjson.dumps(r.result).decode(),
                        r.last_offset,
                        r.head_offset,
                        r.ts,
                    )
                    for r in ops
                ],
            )
            new_head = start_head + len(rows)
            db.after_commit(lambda: self._set_head(new_head))
        return envs

    def _set_head(self, head: int) -> None:
        self._head = max(self._head, head)

    def read(
        self, after: int, topics: TopicFilter | None = None, limit: int | None = None
    ) -> list[Envelope]:
        check_read_args(after, limit)
        out: list[Envelope] = []
        # Under the lock no compaction can run between the check and the query.
        with self._db.lock:
            if after < self._compacted:
                raise HistoryCompacted(after=after, first_retained=self._compacted + 1)
            if limit == 0:
                return out
            if topics is None:
                sql = _SELECT_EVENTS + (" LIMIT ?" if limit is not None else "")
                args: tuple[int, ...] = (after, limit) if limit is not None else (after,)
                return [self._decode(row) for row in self._db.execute(sql, args)]
            cur = self._db.execute(_SELECT_EVENTS, (after,))
            while rows := cur.fetchmany(_READ_CHUNK):
                for row in rows:
                    if topics(row[2]):  # filter on the column before paying for decoding
                        out.append(self._decode(row))
                        if limit is not None and len(out) >= limit:
                            cur.close()
                            return out
        return out

    def _decode(self, row: tuple[Any, ...]) -> Envelope:
        offset, ts, topic, cause, group, op_id, version, data = row
        event = orjson.loads(data)
        if version != SCHEMA_VERSION:
            event = self._upcast(version, event)
        return Envelope.model_validate(
            {
                "epoch": self._epoch,
                "offset": offset,
                "ts": ts,
                "topic": topic,
                "cause": cause,
                "group": group,
                "op_id": op_id,
                "schema_version": SCHEMA_VERSION,
                "event": event,
            }
        )

    def save_snapshot(self, offset: int, data: bytes) -> None:
        with self._db.transaction():
            self._save_snapshot(offset, data)

    def _save_snapshot(self, offset: int, data: bytes) -> None:
        latest = self.latest_snapshot()
        head = self._db_head()
        if offset > head or offset < self._compacted or (latest and offset < latest.offset):
            raise ValueError(
                f"snapshot offset {offset} outside [{max(self._compacted, latest.offset if latest else 0)}, {head}]"
            )
        self._db.execute("DELETE FROM snapshots")  # only the latest is ever needed
        self._db.execute("INSERT INTO snapshots VALUES (?, ?, ?)", (offset, self._clock(), data))

    def latest_snapshot(self) -> Snapshot | None:
        with self._db.lock:
            row = self._db.execute(
                'SELECT "offset", data FROM snapshots ORDER BY "offset" DESC LIMIT 1'
            ).fetchone()
        return None if row is None else Snapshot(int(row[0]), bytes(row[1]))

    def compact(
        self,
        *,
        keep_seconds: float = DEFAULT_KEEP_SECONDS,
        keep_events: int = DEFAULT_KEEP_EVENTS,
        now: float,
        snapshot: SnapshotFn,
    ) -> int:
        with self._compact_lock:
            with self._db.lock:
                # Scans from the oldest event and stops at the first young one,
                # so the cost is the number of old events (no index on ts needed).
                row = self._db.execute(
                    'SELECT "offset" FROM events WHERE ts >= ? ORDER BY "offset" LIMIT 1',
                    (now - keep_seconds,),
                ).fetchone()
                cut = retention_cut(self._head, keep_events, None if row is None else int(row[0]))
                latest = self.latest_snapshot()
            if cut <= self._compacted:
                return 0
            # The callback may take a while (replay); appends go on meanwhile.
            made = None if latest and latest.offset >= cut else covering_snapshot(cut, snapshot(cut))
            with self._db.transaction():
                if made is not None:
                    self._save_snapshot(*made)
                deleted = self._db.execute('DELETE FROM events WHERE "offset" <= ?', (cut,))
                self._db.execute("DELETE FROM ops WHERE head_offset <= ?", (cut,))
                self._db.execute(
                    "UPDATE eventlog_meta SET value = ? WHERE key = 'compacted_through'",
                    (str(cut),),
                )
                count = deleted.rowcount
                self._db.after_commit(lambda: setattr(self, "_compacted", cut))
            return count

    def _op_row(self, client: str | None, op_id: str) -> tuple[Any, ...] | None:
        where = "op_id = ?" if client is None else "op_id = ? AND client = ?"
        args = (op_id,) if client is None else (op_id, client)
        row: tuple[Any, ...] | None = self._db.execute(
            "SELECT op_id, client, result, last_offset, head_offset, ts FROM ops"
            f" WHERE {where} ORDER BY head_offset DESC LIMIT 1",
            args,
        ).fetchone()
        return row

    def find_op(self, op_id: str, client: str | None = None) -> OpRecord | None:
        with self._db.lock:
            row = self._op_row(client, op_id)
        if row is None:
            return None
        return OpRecord(row[0], row[1], orjson.loads(row[2]), row[3], int(row[4]), float(row[5]))

    def close(self) -> None:
        """The connection belongs to the caller (the job store shares it); nothing to free."""
