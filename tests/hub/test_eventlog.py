"""The event log: the shared contract on both implementations, then SQLite specifics."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from eventlog_contract import (
    EventLogContract,
    FakeClock,
    LogFactory,
    bpms,
    offsets,
    tempo,
)
from memory_eventlog import MemoryEventLog

from hub.eventlog import OpAck, Retention, SqliteEventLog
from hub.events import SCHEMA_VERSION, Envelope, SessionCreated, TempoSet, upcast
from hub.sqlite import Database, connect, database_path, open_data_dir

REPO = Path(__file__).resolve().parents[2]


class TestMemoryEventLog(EventLogContract):
    @pytest.fixture
    def make_log(self) -> LogFactory:
        return lambda clock: MemoryEventLog(clock=clock)

    def test_each_log_has_its_own_epoch(self) -> None:
        assert MemoryEventLog().epoch != MemoryEventLog().epoch


class TestSqliteEventLog(EventLogContract):
    @pytest.fixture
    def make_log(self, tmp_path: Path) -> Iterator[LogFactory]:
        opened: list[Database] = []

        def make(clock: FakeClock) -> SqliteEventLog:
            db = connect(tmp_path / "hub.db")
            opened.append(db)
            return SqliteEventLog(db, clock=clock)

        yield make
        for db in opened:
            db.close()


def test_retention_defaults() -> None:
    assert Retention() == Retention(keep_seconds=24 * 3600, keep_events=100_000)


# --- the database ----------------------------------------------------------------------


def test_connect_settings(tmp_path: Path) -> None:
    db = open_data_dir(tmp_path / "data" / "nested")
    try:
        assert database_path(tmp_path / "data" / "nested").exists()
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
        assert db.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        assert db.execute("PRAGMA busy_timeout").fetchone()[0] == 5000
    finally:
        db.close()


def test_memory_database_works() -> None:
    db = connect(":memory:")
    log = SqliteEventLog(db)
    assert offsets(log.append([tempo(1)])) == [1]
    db.close()


def test_nested_transactions_and_commit_hooks(tmp_path: Path) -> None:
    db = connect(tmp_path / "t.db")
    db.execute("CREATE TABLE t (x INTEGER)")
    ran: list[str] = []
    with db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        db.after_commit(lambda: ran.append("outer"))
        with pytest.raises(RuntimeError), db.transaction():
            db.execute("INSERT INTO t VALUES (2)")
            db.after_commit(lambda: ran.append("rolled back"))
            raise RuntimeError("inner fails")
        with db.transaction():
            db.execute("INSERT INTO t VALUES (3)")
            db.after_commit(lambda: ran.append("inner"))
        assert ran == []  # nothing runs before the outer commit
    assert ran == ["outer", "inner"]
    assert [r[0] for r in db.execute("SELECT x FROM t ORDER BY x")] == [1, 3]

    with pytest.raises(ValueError), db.transaction():
        db.execute("INSERT INTO t VALUES (4)")
        db.after_commit(lambda: ran.append("never"))
        raise ValueError("outer fails")
    assert ran == ["outer", "inner"]
    assert [r[0] for r in db.execute("SELECT x FROM t ORDER BY x")] == [1, 3]
    with pytest.raises(RuntimeError):
        db.after_commit(lambda: None)
    db.close()


# --- SQLite specifics ----------------------------------------------------------------


def test_reopen_keeps_everything(tmp_path: Path) -> None:
    clock = FakeClock(1000.0)
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db, clock=clock)
    written = log.append([tempo(i) for i in range(1, 11)], op=OpAck("op", "c", {"r": 1}))
    clock.now = 9000.0
    written += log.append([tempo(11)])
    log.compact(keep_seconds=100, keep_events=0, now=9000, snapshot=lambda o: b"state@%d" % o)
    epoch = log.epoch
    db.close()

    db = connect(tmp_path / "hub.db")
    again = SqliteEventLog(db, clock=clock)
    assert again.epoch == epoch
    assert again.head() == 11
    assert again.first_retained() == 11
    assert again.latest_snapshot() == (10, b"state@10")
    assert again.read(10) == written[10:]
    assert again.find_op("op", "c") is None  # compacted with its events
    assert offsets(again.append([tempo(12)])) == [12]
    db.close()


def test_head_survives_compacting_everything(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db, clock=FakeClock(10.0))
    log.append([tempo(i) for i in range(7)])
    log.compact(keep_seconds=0, keep_events=0, now=1e9, snapshot=lambda o: b"")
    db.close()
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db)
    assert (log.head(), log.first_retained()) == (7, 8)
    assert offsets(log.append([tempo(8)])) == [8]
    db.close()


def test_recreated_file_gets_a_new_epoch(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    db = connect(path)
    first = SqliteEventLog(db).epoch
    db.close()
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    db = connect(path)
    log = SqliteEventLog(db)
    assert log.epoch != first
    assert log.head() == 0
    db.close()


def test_failure_inside_the_database_rolls_back_the_batch(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db)
    db.execute(
        'CREATE TEMP TRIGGER boom BEFORE INSERT ON events WHEN NEW."offset" = 3'
        " BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
    )
    with pytest.raises(sqlite3.DatabaseError, match="disk says no"):
        log.append_many([([tempo(1), tempo(2)], OpAck("a")), ([tempo(3)], OpAck("b"))])
    assert log.head() == 0
    assert log.read(0) == []
    assert log.find_op("a") is None
    db.execute("DROP TRIGGER boom")
    assert offsets(log.append([tempo(1)], op=OpAck("a"))) == [1]
    db.close()


def test_append_joins_an_outer_transaction(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db)
    with pytest.raises(RuntimeError), db.transaction():
        log.append([tempo(1)])
        raise RuntimeError("the rest of the command failed")
    assert log.head() == 0 and log.read(0) == []
    with db.transaction():
        assert offsets(log.append([tempo(1)])) == [1]
        assert offsets(log.append([tempo(2)])) == [2]  # sees its own uncommitted rows
        assert log.head() == 0  # readers only see durable data
    assert log.head() == 2
    db.close()


# --- old schema versions ---------------------------------------------------------------


def _insert_raw(db: Database, offset: int, version: int, data: dict[str, Any]) -> None:
    db.execute(
        'INSERT INTO events ("offset", ts, topic, cause, "group", op_id, schema_version, type, data)'
        " VALUES (?, 5.0, 'session:old', 'do', NULL, NULL, ?, ?, ?)",
        (offset, version, data["type"], orjson.dumps(data).decode()),
    )


def test_rows_of_an_older_schema_are_upcast(tmp_path: Path) -> None:
    """A hand-made version-0 shape ('name' instead of 'title') read through a test upcaster."""
    calls: list[int] = []

    def upcast_v0(version: int, data: dict[str, Any]) -> dict[str, Any]:
        calls.append(version)
        if version == 0 and data["type"] == "session.created":
            data = {k: v for k, v in data.items() if k != "name"} | {"title": data["name"]}
        return upcast(version, data)  # then the shipped migrations

    db = connect(tmp_path / "hub.db")
    SqliteEventLog(db)  # creates the tables
    _insert_raw(db, 1, 0, {"type": "session.created", "session": "old", "name": "Old song"})
    _insert_raw(
        db,
        2,
        SCHEMA_VERSION,
        {"type": "session.tempo_set", "session": "old", "bpm": 90.0, "old_bpm": 120.0},
    )
    log = SqliteEventLog(db, upcaster=upcast_v0)
    envs = log.read(0)
    assert calls == [0]  # current-version rows need no migration
    assert envs[0].event == SessionCreated(session="old", title="Old song")
    assert envs[0].schema_version == SCHEMA_VERSION
    assert envs[1].event == TempoSet(session="old", bpm=90.0, old_bpm=120.0)
    assert offsets(log.append([tempo(1)])) == [3]
    db.close()


def test_shipped_upcast_loads_old_rows_of_unchanged_shape(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db)
    _insert_raw(db, 1, 0, {"type": "session.created", "session": "old", "title": "T"})
    assert log.read(0)[0].event == SessionCreated(session="old", title="T")
    db.close()


def test_rows_from_a_newer_release_are_refused(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    log = SqliteEventLog(db)
    _insert_raw(
        db, 1, SCHEMA_VERSION + 1, {"type": "session.created", "session": "x", "title": "T"}
    )
    with pytest.raises(ValueError, match="newer than this hub"):
        log.read(0)
    db.close()


# --- durability --------------------------------------------------------------------------

_WRITER = """
import sys
from hub.eventlog import OpAck, PendingEvent, SqliteEventLog
from hub.events import TempoSet
from hub.sqlite import connect

log = SqliteEventLog(connect(sys.argv[1]))
n = 0
while True:
    batch = [PendingEvent(TempoSet(session="s", bpm=float(n + k), old_bpm=0.0)) for k in range(3)]
    envs = log.append(batch, op=OpAck(f"op{n}", "w", {"first": n}))
    n += 3
    print(envs[-1].offset, flush=True)  # the ack: only printed once the commit returned
"""


def test_acked_events_survive_kill_9(tmp_path: Path) -> None:
    path = tmp_path / "hub.db"
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdout=subprocess.PIPE,
        text=True,
        cwd=REPO,
        env=env,
    )
    assert proc.stdout is not None
    acked: list[int] = []
    try:
        while len(acked) < 60:
            line = proc.stdout.readline()
            assert line, f"writer exited early with {proc.poll()}"
            acked.append(int(line))
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    acked += [int(line) for line in proc.stdout.read().split()]  # acks already in the pipe
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    db = connect(path)
    log = SqliteEventLog(db)
    last = acked[-1]
    assert log.head() >= last
    assert log.head() % 3 == 0  # whole batches only
    events: list[Envelope] = log.read(0)
    assert offsets(events) == list(range(1, log.head() + 1))
    assert bpms(events) == [float(i) for i in range(log.head())]
    for off in acked:
        rec = log.find_op(f"op{off - 3}", "w")
        assert rec is not None and rec.last_offset == off and rec.result == {"first": off - 3}
    db.close()
