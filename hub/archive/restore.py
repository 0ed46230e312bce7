"""Import: writing a validated archive into the hub.

Once :mod:`hub.archive.parse` has validated everything, import puts the objects
in the CAS, adds the artifact records in one transaction and records the session
events (plus ``file.ready`` for each new artifact) through the core, so
subscribers see the imported session like any other.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from cas.errors import CasError
from hub.archive.format import MAX_ARCHIVE_BYTES, cas_code, too_large
from hub.archive.parse import Parsed, parse_archive
from hub.archive.remap import IdMap, fresh_map, identity_map, remap_event
from hub.artifact_deletion import add_records, exists
from hub.artifacts import Artifact, ArtifactNotFound
from hub.errors import ErrorCode, HubError
from hub.events import Event
from hub.media import file_ready

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.archive")


async def import_session(
    hub: Hub,
    data: bytes,
    *,
    new_ids: bool = True,
    max_bytes: int = MAX_ARCHIVE_BYTES,
) -> str:
    """Restore an archive made by :func:`export_session`; returns the new session's id.

    ``new_ids`` (default): fresh ids for the session, its sections, takes and
    artifacts, so importing the same archive twice gives two independent sessions.
    ``new_ids=False`` restores the original ids: ``conflict`` if the session still
    exists or an artifact id is taken by a record with different bytes (a record
    with the same id and hash is reused).
    """
    if len(data) > max_bytes:
        raise too_large(f"{len(data)} bytes", limit=max_bytes, size=len(data))
    parsed = await asyncio.to_thread(parse_archive, data, max_object_size=hub.cas.max_object_size)
    if new_ids:
        ids = fresh_map(parsed)
        reuse: set[str] = set()
    else:
        ids = identity_map(parsed)
        reuse = await asyncio.to_thread(_check_restore_conflicts, hub, parsed)
    events: list[Event] = [remap_event(line.event, ids) for line in parsed.lines]
    records = _remap_artifacts(hub, parsed, ids, reuse)

    def put_objects() -> None:
        for body in parsed.objects.values():
            hub.cas.put(body)

    try:
        await asyncio.to_thread(put_objects)
    except CasError as err:
        raise HubError(cas_code(err), f"cannot store archive objects: {err.message}") from err

    added = await hub.core.in_writer(add_records, hub, records)
    if ids.session in hub.core.state.sessions:
        # Checked once before; a second look right before recording closes the gap
        # (the reducer would silently merge into an existing session otherwise).
        await _drop_records(hub, added)
        raise _session_conflict(ids.session)
    try:
        await hub.core.record([*events, *(file_ready(a) for a in added)], cause="system")
    except BaseException:
        await _drop_records(hub, added)
        raise
    log.info(
        "imported session %s as %s (%d events, %d artifacts)",
        parsed.manifest.session.id,
        ids.session,
        len(events),
        len(added),
    )
    return ids.session


def _session_conflict(session_id: str) -> HubError:
    return HubError(
        ErrorCode.conflict,
        f"session {session_id!r} already exists on this hub",
        details={"session": session_id},
        suggestions=["import with new ids to get a copy", "or delete the session first"],
    )


def _check_restore_conflicts(hub: Hub, p: Parsed) -> set[str]:
    """For ``new_ids=False``: refuse clashes; return ids of identical records to reuse."""
    sid = p.manifest.session.id
    if sid in hub.core.state.sessions:
        raise _session_conflict(sid)
    reuse: set[str] = set()
    for art in p.artifacts:
        try:
            existing = hub.artifacts.get(art.id)
        except ArtifactNotFound:
            continue
        if existing.hash != art.hash:
            raise HubError(
                ErrorCode.conflict,
                f"artifact {art.id!r} already exists here with different content",
                details={"artifact_id": art.id, "hash": existing.hash, "archive_hash": art.hash},
                suggestions=["import with new ids"],
            )
        reuse.add(art.id)
    return reuse


def _remap_artifacts(hub: Hub, p: Parsed, m: IdMap, reuse: set[str]) -> list[Artifact]:
    """Records to add, remapped, parents before children (``add`` checks parents exist)."""
    old_sid = p.manifest.session.id
    in_archive = {a.id for a in p.artifacts}
    out: list[Artifact] = []
    for art in _parents_first(p.artifacts):
        if art.id in reuse:
            continue
        parent = art.parent_id
        if parent is not None:
            if parent in in_archive:
                parent = m.artifacts[parent]
            elif not exists(hub, parent):
                parent = None  # lineage outside the archive that this hub does not hold
        session_id = art.session_id
        section_id = art.section_id
        if m.session == old_sid:
            pass  # a restore keeps every field as it was
        elif session_id == old_sid:
            session_id = m.session
            if section_id is not None:
                section_id = m.sections.get(section_id)  # a removed section: no longer named
        else:
            # A copy: a record of another session (a take borrowed from it) must not
            # make this copy look like part of that session.
            session_id, section_id = None, None
        out.append(
            art.model_copy(
                update={
                    "id": m.artifacts[art.id],
                    "parent_id": parent,
                    "session_id": session_id,
                    "section_id": section_id,
                }
            )
        )
    return out


def _parents_first(artifacts: Sequence[Artifact]) -> list[Artifact]:
    by_id = {a.id: a for a in artifacts}
    done: set[str] = set()
    out: list[Artifact] = []
    for art in artifacts:
        chain: list[Artifact] = []
        cur: Artifact | None = art
        while cur is not None and cur.id not in done and cur not in chain:
            chain.append(cur)
            cur = by_id.get(cur.parent_id) if cur.parent_id is not None else None
        for item in reversed(chain):
            done.add(item.id)
            out.append(item)
    return out


async def _drop_records(hub: Hub, added: Sequence[Artifact]) -> None:
    """Undo an import's record inserts after a later step failed (best effort)."""

    def drop() -> None:
        for art in reversed(added):
            try:
                hub.artifacts.delete(art.id)
            except HubError:
                log.warning("could not roll back imported artifact %s", art.id)

    await hub.core.in_writer(drop)
