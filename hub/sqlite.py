"""The hub's one SQLite database: opening it and running transactions on it.

Everything durable (event log, op records, snapshots, job records) lives in a
single file so one transaction can cover a command's events, its op record and
a job-state change together.

Settings and why:

- ``journal_mode=WAL``: readers never block the writer and a commit is one
  sequential append to the WAL.
- ``synchronous=FULL``: the WAL is fsynced at every commit, so a command that
  was acknowledged after its commit survives ``kill -9`` *and* a power cut that
  loses the OS page cache (``NORMAL`` would only survive the former).
- ``busy_timeout``: another process holding the file (a backup, the CLI's
  ``gc``) makes us wait instead of failing at once.
- ``foreign_keys=ON``: SQLite leaves them off by default.

Threads: the connection is opened with ``check_same_thread=False`` because the
hub uses it from its asyncio thread and possibly one writer thread (group
commit). Python's sqlite3 module is safe to call from two threads, but a
transaction belongs to the *connection*, not the thread: a read issued by
thread B while thread A has an open transaction would see A's uncommitted rows,
and B's writes would join A's transaction. :class:`Database` therefore carries
one re-entrant lock; every access goes through :meth:`Database.transaction`
(writes) or ``with db.lock`` (reads). Holding the lock across a commit means a
reader waits for at most one fsync.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

DB_FILENAME = "tutti.db"
DEFAULT_BUSY_TIMEOUT_MS = 5000


class Database(sqlite3.Connection):
    """A connection with a lock and nestable transactions with commit hooks.

    Create it with :func:`connect` or :func:`open_data_dir`, not directly.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.lock = threading.RLock()
        # One list of after-commit hooks per open (save)point; index 0 is the
        # outer transaction. Empty when no transaction is open.
        self._hooks: list[list[Callable[[], None]]] = []

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """Run the block atomically: ``BEGIN IMMEDIATE`` ... ``COMMIT``.

        Nested use (e.g. a job-state change and an event append in one outer
        transaction) becomes a savepoint: an inner failure rolls back only the
        inner block, the outer one commits or rolls back everything.
        ``IMMEDIATE`` takes the write lock up front, so a concurrent writer in
        another process waits (busy timeout) instead of failing at commit.
        """
        with self.lock:
            depth = len(self._hooks)
            if depth == 0:
                self.execute("BEGIN IMMEDIATE")
            else:
                self.execute(f"SAVEPOINT sp{depth}")
            self._hooks.append([])
            try:
                yield
            except BaseException:
                self._hooks.pop()
                if depth == 0:
                    self.execute("ROLLBACK")
                else:
                    self.execute(f"ROLLBACK TO sp{depth}")
                    self.execute(f"RELEASE sp{depth}")
                raise
            if depth == 0:
                try:
                    self.execute("COMMIT")
                except BaseException:
                    self._hooks.pop()
                    if self.in_transaction:
                        self.execute("ROLLBACK")
                    raise
                for hook in self._hooks.pop():
                    hook()
            else:
                self.execute(f"RELEASE sp{depth}")
                inner = self._hooks.pop()
                self._hooks[-1].extend(inner)

    def after_commit(self, hook: Callable[[], None]) -> None:
        """Call ``hook`` once the enclosing outermost transaction has committed.

        Used to update in-memory caches (the log head) only for data that is
        durable; dropped if the transaction or savepoint is rolled back.
        """
        if not self._hooks:
            raise RuntimeError("after_commit outside a transaction")
        self._hooks[-1].append(hook)


def connect(
    path: str | Path,
    *,
    busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS,
) -> Database:
    """Open (creating if needed) the database at ``path`` with the hub's settings.

    ``":memory:"`` works too (no WAL there; used by ephemeral hubs and tests).
    """
    conn = sqlite3.connect(
        str(path),
        factory=Database,
        isolation_level=None,  # autocommit; transactions are explicit (BEGIN IMMEDIATE)
        check_same_thread=False,  # see the module docstring: guarded by Database.lock
        timeout=busy_timeout_ms / 1000,
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {int(busy_timeout_ms)}")
        mode = conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if str(path) != ":memory:" and str(mode).lower() != "wal":
            raise RuntimeError(f"could not put {path} in WAL mode (journal_mode={mode})")
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        conn.close()
        raise
    return conn


def database_path(data_dir: str | Path) -> Path:
    """Where the hub's database lives inside its data directory."""
    return Path(data_dir) / DB_FILENAME


def open_data_dir(
    data_dir: str | Path, *, busy_timeout_ms: int = DEFAULT_BUSY_TIMEOUT_MS
) -> Database:
    """Open the database of the data directory ``data_dir``, creating both if needed."""
    path = database_path(data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    return connect(path, busy_timeout_ms=busy_timeout_ms)
