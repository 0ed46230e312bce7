"""Garbage collection: remove CAS objects that no artifact record references.

The rule is simple: an object is live while some artifact record names its
hash. Two things protect bytes that are about to become live:

- a grace period by object mtime (default 1 h): an upload sits in the CAS for a
  moment before its record is inserted, and must not be collected in between;
- each candidate is looked up once more right before it is unlinked, so a record
  inserted while the sweep ran (offline ``tutti gc`` beside a running hub) saves it.

Known gap: ``CasStore.put`` of bytes that are already stored returns the old
object without refreshing its mtime, so an old *unreferenced* object that is
uploaded again can lose the race between the put and its record insert. The
in-hub :func:`gc` closes that for the hub's own writes (records are inserted on
the writer thread, where the sweep runs); the offline sweep narrows it to the
moment between the last lookup and the unlink.

The in-hub :func:`gc` first releases the records of deleted sessions (records
whose ``session_id`` names no live session and that no take uses), announcing
each with ``artifact.deleted``; that is what makes "delete a session, then gc"
free its bytes. The offline :func:`gc_data_dir` has no session state and no
commit pipeline, so it only sweeps objects; run the hub's gc to release records.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.errors import CasError
from cas.store import CasStore
from hub.artifact_deletion import delete_records
from hub.artifacts import MAX_LIST_LIMIT, Artifact, ArtifactStore
from hub.errors import ErrorCode, HubError
from hub.sqlite import connect, database_path

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.gc")

DEFAULT_GRACE_SECONDS = 3600.0


@dataclass(frozen=True, slots=True)
class GcReport:
    """What a collection found and did (in a dry run: what it would have done)."""

    dry_run: bool
    scanned: int = 0  # objects looked at
    referenced: int = 0  # kept: some record names them
    young: int = 0  # kept: unreferenced but inside the grace period
    deleted: int = 0  # removed (dry run: would be removed)
    bytes_freed: int = 0  # their total size
    missing: int = 0  # hashes records name that the CAS lacks (damage; never "fixed" here)
    temp_removed: int = 0  # stale temp files of crashed puts
    records_released: int = 0  # records of deleted sessions removed first (in-hub gc only)
    deleted_digests: tuple[str, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["deleted_digests"] = list(self.deleted_digests)
        return out


def collect_garbage(
    cas: CasStore,
    artifacts: ArtifactStore,
    *,
    dry_run: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    now: float | None = None,
    assume_deleted: Collection[str] = (),
) -> GcReport:
    """Delete every CAS object no artifact record references and older than the grace.

    ``assume_deleted``: artifact ids to treat as already gone (a dry run uses it to
    count what releasing deleted sessions' records would free). Blocking: run it on
    the hub's writer thread (:func:`gc`) or offline (:func:`gc_data_dir`).
    """
    if grace_seconds < 0:
        raise ValueError("grace_seconds must be >= 0")
    cutoff = (time.time() if now is None else now) - grace_seconds
    live = _live_hashes(artifacts, assume_deleted)
    scanned = referenced = young = deleted = freed = 0
    gone: list[str] = []
    present: set[str] = set()
    for digest in list(cas.iter_digests()):
        scanned += 1
        present.add(digest)
        if digest in live:
            referenced += 1
            continue
        try:
            st = os.stat(cas.path(digest))
        except (OSError, CasError):
            continue  # removed by someone else meanwhile
        if st.st_mtime > cutoff:
            young += 1
            continue
        if not dry_run:
            # Last look: a record inserted since `live` was read keeps the object.
            if artifacts.list(hash=digest, limit=1):
                referenced += 1
                continue
            if not cas.delete(digest):
                continue
        deleted += 1
        freed += st.st_size
        gone.append(digest)
    temp_removed = 0 if dry_run else cas.remove_stale_temp()
    report = GcReport(
        dry_run=dry_run,
        scanned=scanned,
        referenced=referenced,
        young=young,
        deleted=deleted,
        bytes_freed=freed,
        missing=len(live - present),
        temp_removed=temp_removed,
        deleted_digests=tuple(gone),
    )
    log.info(
        "gc%s: %d objects scanned, %d deleted (%d bytes), %d young kept, %d missing",
        " (dry run)" if dry_run else "",
        scanned,
        deleted,
        freed,
        young,
        report.missing,
    )
    return report


def _live_hashes(artifacts: ArtifactStore, assume_deleted: Collection[str]) -> set[str]:
    live = artifacts.referenced_hashes()
    ignored = set(assume_deleted)
    if not ignored:
        return live
    for aid in ignored:
        try:
            art = artifacts.get(aid)
        except HubError:
            continue
        # The hash stays live if any record outside the ignored ones still names it.
        users = artifacts.list(hash=art.hash, limit=MAX_LIST_LIMIT)
        if len(users) < MAX_LIST_LIMIT and all(u.id in ignored for u in users):
            live.discard(art.hash)
    return live


# --- in the running hub -------------------------------------------------------------


def orphaned_records(hub: Hub, *, grace_seconds: float, now: float | None = None) -> list[Artifact]:
    """Records of sessions that no longer exist that no take uses (blocking: a thread).

    Records without a session (uploads, inbox files) are never orphans: they are
    deleted explicitly. The grace period applies to ``created_at`` as well, so a
    job's result recorded a moment ago is left alone.
    """
    cutoff = (time.time() if now is None else now) - grace_seconds
    state = hub.core.state  # one immutable snapshot for the whole scan
    used = {t.artifact_id for s in state.sessions.values() for sec in s.sections for t in sec.takes}
    out: list[Artifact] = []
    after: str | None = None
    while True:
        page = hub.artifacts.list(limit=MAX_LIST_LIMIT, after=after)
        for art in page:
            if (
                art.session_id is not None
                and art.session_id not in state.sessions
                and art.id not in used
                and art.created_at <= cutoff
            ):
                out.append(art)
        if len(page) < MAX_LIST_LIMIT:
            return out
        after = page[-1].id


async def gc(
    hub: Hub,
    *,
    dry_run: bool = False,
    grace_seconds: float = DEFAULT_GRACE_SECONDS,
    release_deleted_sessions: bool = True,
) -> GcReport:
    """Release deleted sessions' records, then sweep the CAS on the writer thread.

    The sweep runs on the writer thread so no artifact insert of this hub can
    interleave with it (inserts run there too).
    """
    orphans: list[Artifact] = []
    if release_deleted_sessions:
        orphans = await asyncio.to_thread(orphaned_records, hub, grace_seconds=grace_seconds)
    released: list[Artifact] = []
    if orphans and not dry_run:
        released = await delete_records(hub, [a.id for a in orphans])
    report = await hub.core.in_writer(
        lambda: collect_garbage(
            hub.cas,
            hub.artifacts,
            dry_run=dry_run,
            grace_seconds=grace_seconds,
            assume_deleted=[a.id for a in orphans] if dry_run else (),
        )
    )
    return replace(report, records_released=len(orphans) if dry_run else len(released))


# --- offline (the CLI) ----------------------------------------------------------------


def gc_data_dir(
    data: Path, dry_run: bool = False, *, grace_seconds: float = DEFAULT_GRACE_SECONDS
) -> GcReport:
    """Sweep the CAS of a data folder without a running hub (``tutti gc``).

    Safe beside a running hub (the grace period and the last lookup protect uploads
    in flight; SQLite's busy timeout covers the lock). Refuses a folder without a
    hub database: with no records every object would look like garbage.
    """
    db_path = database_path(data)
    if not db_path.is_file():
        raise HubError(
            ErrorCode.not_found,
            f"no hub database at {db_path}; refusing to collect (every object would look unused)",
            details={"path": str(db_path)},
            suggestions=["pass the hub's --data folder"],
        )
    cas_root = Path(data) / "cas"
    if not (cas_root / "objects").is_dir():
        return GcReport(dry_run=dry_run)
    db = connect(db_path)
    try:
        with db.lock:
            has_table = db.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'artifacts'"
            ).fetchone()
        if has_table is None:
            raise HubError(
                ErrorCode.not_found,
                f"{db_path} has no artifact records table; refusing to collect",
                details={"path": str(db_path)},
            )
        # ArtifactStore's CREATE TABLE IF NOT EXISTS is a no-op on an existing table.
        return collect_garbage(
            CasStore(cas_root), ArtifactStore(db), dry_run=dry_run, grace_seconds=grace_seconds
        )
    finally:
        db.close()
