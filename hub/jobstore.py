"""Durable job records, in the hub's database beside the event log.

A job moves ``queued -> started -> completed | failed | cancelled`` (a queued job
may also end directly, e.g. cancelled before it ran). Finished records are kept
``keep_seconds`` (default 7 days) after they finished, then expire: the record
is deleted and its id goes into a tombstone table, so an expired id answers
``job_expired`` while an id never seen answers ``job_not_found``.

Expiry rule: a finished job is expired when ``now - finished_at > keep_seconds``.
:meth:`JobStore.get` applies it lazily, so the answer does not depend on when
:meth:`JobStore.expire` last ran.

All methods join an enclosing :meth:`Database.transaction`, so the hub can
change a job's state and append its lifecycle event in one commit.
"""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field

from hub.errors import ErrorCode, HubError
from hub.events import ArtifactRef
from hub.sqlite import Database

JobState = Literal["queued", "started", "completed", "failed", "cancelled"]
FinalState = Literal["completed", "failed", "cancelled"]
FINAL_STATES: frozenset[str] = frozenset({"completed", "failed", "cancelled"})

DEFAULT_JOB_KEEP_SECONDS = 7 * 24 * 3600.0
INTERRUPTED_MESSAGE = "The hub stopped while the job was running."


class JobRecord(BaseModel):
    """Everything the hub remembers about one job."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    engine: str
    task: str
    params: dict[str, Any] = Field(default_factory=dict)
    num_variations: int = Field(1, ge=1)
    priority: int = 0
    session: str | None = None
    section: str | None = None
    client_job_id: str | None = None
    state: JobState = "queued"
    code: str | None = None  # failed: an ErrorCode value (e.g. "interrupted")
    message: str | None = None
    artifacts: list[ArtifactRef] = Field(default_factory=list)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    submitted_by: str | None = None

    @property
    def finished(self) -> bool:
        return self.state in FINAL_STATES


class Recovery(NamedTuple):
    """What :meth:`JobStore.interrupt_running` found at startup."""

    interrupted: list[JobRecord]  # were running; now failed with code ``interrupted``
    queued: list[JobRecord]  # never started; the hub re-queues them (oldest first)


_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        state TEXT NOT NULL,
        session TEXT,
        created_at REAL NOT NULL,
        finished_at REAL,
        data TEXT NOT NULL
    )""",
    "CREATE INDEX IF NOT EXISTS jobs_by_state ON jobs (state, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_by_session ON jobs (session, created_at)",
    "CREATE INDEX IF NOT EXISTS jobs_by_finish ON jobs (finished_at) WHERE finished_at IS NOT NULL",
    # Only ids: tiny rows, so keeping them for good is cheap.
    """CREATE TABLE IF NOT EXISTS expired_jobs (
        id TEXT PRIMARY KEY, expired_at REAL NOT NULL
    ) WITHOUT ROWID""",
)


def _not_found(job_id: str) -> HubError:
    return HubError(ErrorCode.job_not_found, f"no job has id {job_id!r}", details={"job": job_id})


def _expired(job_id: str, keep_seconds: float) -> HubError:
    return HubError(
        ErrorCode.job_expired,
        f"job {job_id!r} finished more than {keep_seconds:g} s ago; its record is gone",
        details={"job": job_id, "keep_seconds": keep_seconds},
    )


class JobStore:
    """Job records in ``conn`` (see :mod:`hub.sqlite` for threading)."""

    def __init__(self, conn: Database, *, keep_seconds: float = DEFAULT_JOB_KEEP_SECONDS) -> None:
        self._db = conn
        self.keep_seconds = keep_seconds
        with conn.transaction():
            for stmt in _SCHEMA:
                conn.execute(stmt)

    # --- writes -----------------------------------------------------------------------

    def create(self, record: JobRecord) -> JobRecord:
        """Store a new job; ``conflict`` if the id was ever used (even if expired)."""
        with self._db.transaction():
            taken = self._db.execute(
                "SELECT 1 FROM jobs WHERE id = ? UNION ALL SELECT 1 FROM expired_jobs WHERE id = ?",
                (record.id, record.id),
            ).fetchone()
            if taken:
                raise HubError(
                    ErrorCode.conflict, f"job id {record.id!r} is taken", details={"job": record.id}
                )
            self._db.execute(
                "INSERT INTO jobs VALUES (?, ?, ?, ?, ?, ?)",
                (
                    record.id,
                    record.state,
                    record.session,
                    record.created_at,
                    record.finished_at,
                    record.model_dump_json(),
                ),
            )
        return record

    def mark_started(self, job_id: str, *, now: float) -> JobRecord:
        """``queued -> started``; ``job_finished`` if it already ended, ``conflict`` if running."""
        with self._db.transaction():
            job = self._load(job_id, now)
            if job.finished:
                raise HubError(ErrorCode.job_finished, f"job {job_id!r} already {job.state}")
            if job.state == "started":
                raise HubError(ErrorCode.conflict, f"job {job_id!r} is already running")
            return self._save(job.model_copy(update={"state": "started", "started_at": now}))

    def mark_finished(
        self,
        job_id: str,
        state: FinalState,
        *,
        now: float,
        code: str | None = None,
        message: str | None = None,
        artifacts: Sequence[ArtifactRef] = (),
    ) -> JobRecord:
        """End a queued or started job; exactly one ending (``job_finished`` on a second)."""
        if state not in FINAL_STATES:
            raise ValueError(f"not a final state: {state!r}")
        with self._db.transaction():
            job = self._load(job_id, now)
            if job.finished:
                raise HubError(ErrorCode.job_finished, f"job {job_id!r} already {job.state}")
            done = job.model_copy(
                update={
                    "state": state,
                    "code": code,
                    "message": message,
                    "artifacts": list(artifacts),
                    "finished_at": now,
                }
            )
            return self._save(done)

    def interrupt_running(self, now: float) -> Recovery:
        """At startup: fail jobs that were running when the hub stopped; list queued ones."""
        with self._db.transaction():
            interrupted = [
                self._save(
                    job.model_copy(
                        update={
                            "state": "failed",
                            "code": ErrorCode.interrupted.value,
                            "message": INTERRUPTED_MESSAGE,
                            "finished_at": now,
                        }
                    )
                )
                for job in self._select("WHERE state = 'started' ORDER BY created_at, id")
            ]
            queued = self._select("WHERE state = 'queued' ORDER BY created_at, id")
        return Recovery(interrupted, queued)

    def expire(self, now: float, keep_seconds: float | None = None) -> int:
        """Delete finished records older than the retention; return how many."""
        keep = self.keep_seconds if keep_seconds is None else keep_seconds
        with self._db.transaction():
            limit = now - keep
            self._db.execute(
                "INSERT OR IGNORE INTO expired_jobs SELECT id, ? FROM jobs"
                " WHERE finished_at IS NOT NULL AND finished_at < ?",
                (now, limit),
            )
            cur = self._db.execute(
                "DELETE FROM jobs WHERE finished_at IS NOT NULL AND finished_at < ?", (limit,)
            )
            return cur.rowcount

    # --- reads ------------------------------------------------------------------------

    def get(self, job_id: str, now: float | None = None) -> JobRecord:
        """The record; ``job_not_found`` if never seen, ``job_expired`` if past retention.

        With ``now`` the expiry rule is applied even if :meth:`expire` has not run yet.
        """
        with self._db.lock:
            return self._load(job_id, now)

    def list(
        self,
        *,
        state: JobState | None = None,
        session: str | None = None,
        limit: int = 100,
    ) -> builtins.list[JobRecord]:
        """Newest first, optionally filtered by state and/or session."""
        where: builtins.list[str] = []
        args: builtins.list[Any] = []
        if state is not None:
            where.append("state = ?")
            args.append(state)
        if session is not None:
            where.append("session = ?")
            args.append(session)
        clause = f"WHERE {' AND '.join(where)} " if where else ""
        with self._db.lock:
            return self._select(
                f"{clause}ORDER BY created_at DESC, id DESC LIMIT ?", [*args, limit]
            )

    # --- internals --------------------------------------------------------------------

    def _load(self, job_id: str, now: float | None) -> JobRecord:
        row = self._db.execute("SELECT data FROM jobs WHERE id = ?", (job_id,)).fetchone()
        if row is None:
            gone = self._db.execute("SELECT 1 FROM expired_jobs WHERE id = ?", (job_id,)).fetchone()
            raise _expired(job_id, self.keep_seconds) if gone else _not_found(job_id)
        job = JobRecord.model_validate_json(row[0])
        finished_at = job.finished_at
        if now is not None and finished_at is not None and now - finished_at > self.keep_seconds:
            raise _expired(job_id, self.keep_seconds)
        return job

    def _save(self, job: JobRecord) -> JobRecord:
        self._db.execute(
            "UPDATE jobs SET state = ?, finished_at = ?, data = ? WHERE id = ?",
            (job.state, job.finished_at, job.model_dump_json(), job.id),
        )
        return job

    def _select(self, tail: str, args: Sequence[Any] = ()) -> builtins.list[JobRecord]:
        rows = self._db.execute(f"SELECT data FROM jobs {tail}", tuple(args)).fetchall()
        return [JobRecord.model_validate_json(r[0]) for r in rows]
