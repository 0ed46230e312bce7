"""Durable job records: lifecycle, restart recovery, expiry and the two 'missing' errors."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hub.errors import ErrorCode, HubError
from hub.eventlog import PendingEvent, SqliteEventLog
from hub.events import ArtifactRef, JobQueued
from hub.jobstore import DEFAULT_JOB_KEEP_SECONDS, INTERRUPTED_MESSAGE, JobRecord, JobStore
from hub.sqlite import Database, connect

DAY = 24 * 3600.0


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Database]:
    conn = connect(tmp_path / "hub.db")
    yield conn
    conn.close()


@pytest.fixture
def store(db: Database) -> JobStore:
    return JobStore(db)


def job(
    job_id: str, *, created_at: float = 100.0, session: str | None = "s1", **kw: object
) -> JobRecord:
    return JobRecord.model_validate(
        {
            "id": job_id,
            "engine": "transform",
            "task": "transpose",
            "params": {"semitones": 3, "nested": {"a": [1, 2]}},
            "created_at": created_at,
            "session": session,
            **kw,
        }
    )


def artifact(n: int) -> ArtifactRef:
    digest = f"{n:02x}" * 32
    return ArtifactRef(
        id=f"art{n}",
        hash=digest,
        url=f"/cas/{digest}",
        mime="audio/midi",
        size=10 + n,
        kind="midi",
        variation_index=n,
        metadata={"bars": 4},
    )


def code_of(exc: pytest.ExceptionInfo[HubError]) -> ErrorCode:
    return exc.value.code


# --- lifecycle ---------------------------------------------------------------------------


def test_create_and_get(store: JobStore) -> None:
    rec = job(
        "j1",
        section="verse",
        client_job_id="mine-1",
        priority=5,
        num_variations=3,
        submitted_by="daw",
    )
    assert store.create(rec) == rec
    got = store.get("j1")
    assert got == rec
    assert got.state == "queued" and not got.finished
    assert got.params == {"semitones": 3, "nested": {"a": [1, 2]}}


def test_ids_are_never_reused(store: JobStore) -> None:
    store.create(job("j1"))
    with pytest.raises(HubError) as exc:
        store.create(job("j1"))
    assert code_of(exc) == ErrorCode.conflict
    store.mark_finished("j1", "cancelled", now=200.0)
    store.expire(now=200.0 + DEFAULT_JOB_KEEP_SECONDS + 1)
    with pytest.raises(HubError) as exc:
        store.create(job("j1"))
    assert code_of(exc) == ErrorCode.conflict


def test_started_then_completed(store: JobStore) -> None:
    store.create(job("j1"))
    started = store.mark_started("j1", now=150.0)
    assert (started.state, started.started_at) == ("started", 150.0)
    done = store.mark_finished("j1", "completed", now=180.0, artifacts=[artifact(0), artifact(1)])
    assert done.state == "completed" and done.finished
    assert done.finished_at == 180.0 and done.started_at == 150.0
    assert store.get("j1") == done
    assert [a.id for a in store.get("j1").artifacts] == ["art0", "art1"]


def test_failed_keeps_code_and_message(store: JobStore) -> None:
    store.create(job("j1"))
    store.mark_started("j1", now=1.0)
    store.mark_finished("j1", "failed", now=2.0, code="engine_error", message="bad input")
    got = store.get("j1")
    assert (got.state, got.code, got.message) == ("failed", "engine_error", "bad input")


def test_queued_job_can_be_cancelled(store: JobStore) -> None:
    store.create(job("j1"))
    assert store.mark_finished("j1", "cancelled", now=5.0).state == "cancelled"


def test_exactly_one_ending(store: JobStore) -> None:
    store.create(job("j1"))
    store.mark_started("j1", now=1.0)
    with pytest.raises(HubError) as exc:
        store.mark_started("j1", now=2.0)
    assert code_of(exc) == ErrorCode.conflict
    store.mark_finished("j1", "completed", now=3.0)
    attempts: list[Callable[[], JobRecord]] = [
        lambda: store.mark_finished("j1", "failed", now=4.0, code="x"),
        lambda: store.mark_finished("j1", "cancelled", now=4.0),
        lambda: store.mark_started("j1", now=4.0),
    ]
    for attempt in attempts:
        with pytest.raises(HubError) as exc:
            attempt()
        assert code_of(exc) == ErrorCode.job_finished
    assert store.get("j1").state == "completed"


def test_not_a_final_state(store: JobStore) -> None:
    store.create(job("j1"))
    with pytest.raises(ValueError):
        store.mark_finished("j1", "started", now=1.0)  # type: ignore[arg-type]


# --- missing and expired ------------------------------------------------------------------


def test_unknown_and_expired_are_different_errors(store: JobStore) -> None:
    with pytest.raises(HubError) as exc:
        store.get("never")
    assert code_of(exc) == ErrorCode.job_not_found
    with pytest.raises(HubError) as exc:
        store.mark_started("never", now=1.0)
    assert code_of(exc) == ErrorCode.job_not_found

    store.create(job("old"))
    store.mark_finished("old", "completed", now=1000.0)
    assert store.expire(now=1000.0 + 8 * DAY) == 1
    with pytest.raises(HubError) as exc:
        store.get("old")
    assert code_of(exc) == ErrorCode.job_expired
    assert exc.value.details["job"] == "old"
    with pytest.raises(HubError) as exc:
        store.get("never", now=1000.0 + 8 * DAY)
    assert code_of(exc) == ErrorCode.job_not_found


def test_expiry_rule(store: JobStore) -> None:
    keep = DEFAULT_JOB_KEEP_SECONDS
    assert keep == 7 * DAY
    for name in ("a", "b", "running", "queued"):
        store.create(job(name))
    store.mark_finished("a", "completed", now=1000.0)
    store.mark_finished("b", "failed", now=2000.0, code="engine_error")
    store.mark_started("running", now=0.0)
    # Exactly keep_seconds after finishing is still kept; unfinished jobs never expire.
    assert store.expire(now=1000.0 + keep) == 0
    assert store.expire(now=1000.0 + keep + 1) == 1
    assert {j.id for j in store.list()} == {"b", "running", "queued"}
    assert store.expire(now=1e12) == 1
    assert {j.id for j in store.list()} == {"running", "queued"}
    assert store.get("running").state == "started"


def test_get_applies_expiry_before_expire_runs(store: JobStore) -> None:
    store.create(job("j1"))
    store.mark_finished("j1", "completed", now=1000.0)
    assert store.get("j1", now=1000.0 + DAY).state == "completed"
    with pytest.raises(HubError) as exc:
        store.get("j1", now=1000.0 + 8 * DAY)
    assert code_of(exc) == ErrorCode.job_expired
    assert store.get("j1").state == "completed"  # still stored until expire() runs


def test_custom_retention(db: Database) -> None:
    store = JobStore(db, keep_seconds=60.0)
    store.create(job("j1"))
    store.create(job("j2"))
    store.mark_finished("j1", "completed", now=0.0)
    store.mark_finished("j2", "completed", now=0.0)
    with pytest.raises(HubError) as exc:
        store.get("j1", now=61.0)
    assert code_of(exc) == ErrorCode.job_expired
    assert store.expire(now=30.0, keep_seconds=10.0) == 2


# --- listing ----------------------------------------------------------------------------


def test_list_filters_newest_first(store: JobStore) -> None:
    store.create(job("a", created_at=1.0, session="s1"))
    store.create(job("b", created_at=2.0, session="s2"))
    store.create(job("c", created_at=3.0, session="s1"))
    store.create(job("d", created_at=4.0, session=None))
    store.mark_started("c", now=5.0)
    assert [j.id for j in store.list()] == ["d", "c", "b", "a"]
    assert [j.id for j in store.list(limit=2)] == ["d", "c"]
    assert [j.id for j in store.list(state="queued")] == ["d", "b", "a"]
    assert [j.id for j in store.list(session="s1")] == ["c", "a"]
    assert [j.id for j in store.list(state="queued", session="s1")] == ["a"]
    assert store.list(state="completed") == []


# --- restart ----------------------------------------------------------------------------


def test_interrupt_running_after_restart(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    store = JobStore(db)
    store.create(job("q2", created_at=20.0))
    store.create(job("q1", created_at=10.0))
    store.create(job("run", created_at=5.0))
    store.create(job("done", created_at=1.0))
    store.mark_started("run", now=30.0)
    store.mark_started("done", now=30.0)
    store.mark_finished("done", "completed", now=31.0)
    db.close()  # the hub dies here

    db = connect(tmp_path / "hub.db")
    store = JobStore(db)
    recovery = store.interrupt_running(now=99.0)
    assert [j.id for j in recovery.interrupted] == ["run"]
    failed = recovery.interrupted[0]
    assert (failed.state, failed.code, failed.message) == (
        "failed",
        ErrorCode.interrupted.value,
        INTERRUPTED_MESSAGE,
    )
    assert failed.finished_at == 99.0 and failed.started_at == 30.0
    assert store.get("run") == failed
    assert [j.id for j in recovery.queued] == ["q1", "q2"]  # oldest first
    assert all(j.state == "queued" for j in recovery.queued)
    assert store.get("done").state == "completed"
    # Running it again finds nothing left to interrupt.
    assert store.interrupt_running(now=100.0).interrupted == []
    db.close()


def test_records_and_tombstones_survive_reopen(tmp_path: Path) -> None:
    db = connect(tmp_path / "hub.db")
    store = JobStore(db)
    store.create(job("kept"))
    store.create(job("gone"))
    store.mark_finished("gone", "cancelled", now=0.0)
    store.expire(now=30 * DAY)
    db.close()
    db = connect(tmp_path / "hub.db")
    store = JobStore(db)
    assert store.get("kept").state == "queued"
    with pytest.raises(HubError) as exc:
        store.get("gone")
    assert code_of(exc) == ErrorCode.job_expired
    db.close()


def test_job_record_and_event_commit_together(db: Database) -> None:
    store = JobStore(db)
    log = SqliteEventLog(db)
    queued = JobQueued(job="j1", engine="transform", task="transpose")
    with pytest.raises(RuntimeError), db.transaction():
        store.create(job("j1"))
        log.append([PendingEvent(queued)])
        raise RuntimeError("crash before the commit")
    with pytest.raises(HubError) as exc:
        store.get("j1")
    assert code_of(exc) == ErrorCode.job_not_found
    assert log.head() == 0

    with db.transaction():
        store.create(job("j1"))
        log.append([PendingEvent(queued)])
    assert store.get("j1").state == "queued"
    assert [e.event for e in log.read(0)] == [queued]


async def test_a_record_update_and_its_event_commit_together_or_not_at_all(tmp_path: Path) -> None:
    """The hub's pipeline runs the job-record write in the event batch's transaction."""
    from hub.config import HubConfig
    from hub.runtime import Hub

    hub = Hub(HubConfig(data=tmp_path / "data", watch_inbox=False, disabled_engines=["amt"]))
    await hub.start()
    try:
        head = hub.core.log.head()
        queued = JobQueued(job="job_a", engine="transform", task="transpose", session=None,
                           section=None, client_job_id=None, priority=0, num_variations=1, params={})

        def create_then_fail() -> None:
            hub.jobstore.create(job("job_a"))
            raise RuntimeError("disk on fire")

        with pytest.raises(HubError, match="commit failed"):
            await hub.core.record([queued], also=create_then_fail)
        assert hub.core.log.head() == head  # no event ...
        with pytest.raises(HubError) as missing:
            hub.jobstore.get("job_a")
        assert missing.value.code == ErrorCode.job_not_found  # ... and no record

        envelopes = await hub.core.record([queued], also=lambda: hub.jobstore.create(job("job_a")))
        assert [e.offset for e in envelopes] == [head + 1]
        assert hub.jobstore.get("job_a").state == "queued"
    finally:
        await hub.stop()
