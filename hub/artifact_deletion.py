"""Deleting artifacts safely: never while a take uses one, announced with ``artifact.deleted``.

:func:`add_records` and :func:`exists` also serve the session import
(:mod:`hub.archive.restore`), which adds the records of an archive the same way.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from hub.artifacts import Artifact, ArtifactNotFound
from hub.errors import ErrorCode, HubError
from hub.events import ArtifactDeleted
from hub.state import HubState

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.artifacts")


def take_references(state: HubState, artifact_id: str) -> list[dict[str, str]]:
    """Every take (of every live session) whose artifact is ``artifact_id``."""
    refs: list[dict[str, str]] = []
    for session in state.sessions.values():
        for sec in session.sections:
            for take in sec.takes:
                if take.artifact_id == artifact_id:
                    refs.append({"session": session.id, "section": sec.id, "take": take.id})
    return refs


def _referenced_ids(state: HubState) -> set[str]:
    return {t.artifact_id for s in state.sessions.values() for sec in s.sections for t in sec.takes}


async def delete_artifact(hub: Hub, artifact_id: str) -> Artifact:
    """Delete an artifact record (its bytes go at the next GC) and announce it.

    ``conflict`` while a take of any session uses it; ``unknown_artifact`` if there is
    no such record. Undo history is not consulted: undoing a take removal after its
    artifact was deleted gives a take whose render fails with ``unknown_artifact``.
    """
    refs = take_references(hub.core.state, artifact_id)
    if refs:
        raise HubError(
            ErrorCode.conflict,
            f"artifact {artifact_id!r} is used by {len(refs)} take(s); remove them first",
            details={"artifact_id": artifact_id, "takes": refs[:20]},
            suggestions=["remove the take (take.remove), then delete the artifact"],
        )
    deleted = await delete_records(hub, [artifact_id])
    if not deleted:
        raise HubError(
            ErrorCode.conflict,
            f"artifact {artifact_id!r} was added to a take while it was being deleted",
            details={"artifact_id": artifact_id},
        )
    return deleted[0]


async def delete_records(hub: Hub, artifact_ids: Sequence[str]) -> list[Artifact]:
    """Delete records no take uses, announce each with ``artifact.deleted``.

    The race with a concurrent ``take.add``: a command decided before the delete
    may still be committing. After deleting we push an empty batch through the
    commit pipeline (a barrier: everything queued earlier is then committed) and
    look again; a record some take now uses is put back and left out. After the
    delete no new ``take.add`` can name it (``unknown_artifact``).
    Raises ``unknown_artifact`` only for a single missing id; in a batch missing
    ids are skipped.
    """

    def delete_all() -> list[Artifact]:
        out: list[Artifact] = []
        for aid in artifact_ids:
            try:
                out.append(hub.artifacts.delete(aid))
            except ArtifactNotFound:
                if len(artifact_ids) == 1:
                    raise
        return out

    removed = await hub.core.in_writer(delete_all)
    if not removed:
        return []
    await hub.core.record([])  # barrier, see above
    used = _referenced_ids(hub.core.state)
    back = [a for a in removed if a.id in used]
    if back:
        await hub.core.in_writer(_restore, hub, back)
    gone = [a for a in removed if a.id not in used]
    if gone:
        await hub.core.record(
            [ArtifactDeleted(artifact=a.id, session=a.session_id) for a in gone], cause="system"
        )
    return gone


def _restore(hub: Hub, records: Sequence[Artifact]) -> None:
    for art in records:
        parent = art.parent_id if art.parent_id is not None and exists(hub, art.parent_id) else None
        try:
            add_records(hub, [art.model_copy(update={"parent_id": parent})])
        except HubError as err:
            log.error("could not restore artifact %s after a delete race: %s", art.id, err.message)


def exists(hub: Hub, artifact_id: str) -> bool:
    try:
        hub.artifacts.get(artifact_id)
    except ArtifactNotFound:
        return False
    return True


def add_records(hub: Hub, records: Sequence[Artifact]) -> list[Artifact]:
    """All records in one transaction: an import never leaves half its records."""
    added: list[Artifact] = []
    with hub.db.transaction():
        for art in records:
            added.append(
                hub.artifacts.add(
                    hash=art.hash,
                    mime=art.mime,
                    size=art.size,
                    kind=art.kind,
                    session_id=art.session_id,
                    section_id=art.section_id,
                    job_id=art.job_id,
                    variation_index=art.variation_index,
                    variation_set=art.variation_set,
                    parent_id=art.parent_id,
                    tags=art.tags,
                    creator=art.creator,
                    filename=art.filename,
                    metadata=art.metadata,
                    created_at=art.created_at,
                    artifact_id=art.id,
                )
            )
    return added
