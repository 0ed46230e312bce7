"""Export: a session as one archive, events synthesised from its current state.

The layout, and why the events are synthesised, are described in
:mod:`hub.archive.format`.
"""

from __future__ import annotations

import asyncio
import io
import json
import zipfile
from typing import TYPE_CHECKING, Any

from cas.errors import CasError
from hub import __version__
from hub.archive.format import (
    ARCHIVE_FORMAT,
    ARCHIVE_VERSION,
    ARTIFACTS,
    EVENTS,
    MANIFEST,
    OBJECTS_DIR,
    ArchiveCounts,
    ArchiveSession,
    Manifest,
    cas_code,
)
from hub.artifacts import MAX_LIST_LIMIT, Artifact, ArtifactNotFound
from hub.errors import ErrorCode, HubError
from hub.events import SectionAdded, SectionLocked, SessionCreated, SessionEvent, TakeAdded
from hub.model import Session

if TYPE_CHECKING:
    from hub.runtime import Hub


# Fixed zip timestamps and modes so the same session always gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o644 << 16


def session_events(session: Session) -> list[SessionEvent]:
    """Events that rebuild ``session`` exactly (ids, order, statuses, choice, locks).

    Sections are added bare, then their takes (each ``TakeAdded`` carries the take's
    status and whether it is the chosen one), then the lock, because a locked
    section refuses new takes in ``decide`` (the reducer would not care, but the
    events should also make sense to a reader).
    """
    sid = session.id
    events: list[SessionEvent] = [
        SessionCreated(
            session=sid,
            title=session.title,
            tempo=session.tempo,
            meter=session.meter,
            key=session.key,
            created_at=session.created_at,
        )
    ]
    for index, sec in enumerate(session.sections):
        bare = sec.model_copy(update={"takes": (), "chosen_take": None, "locked": False})
        events.append(SectionAdded(session=sid, section=bare, index=index))
        for take in sec.takes:
            events.append(
                TakeAdded(session=sid, section=sec.id, take=take, chosen=take.id == sec.chosen_take)
            )
        if sec.locked:
            events.append(SectionLocked(session=sid, section=sec.id, locked=True))
    return events


async def export_session(hub: Hub, session_id: str) -> bytes:
    """The session as one archive (bytes of a zip); ``unknown_session`` if there is none."""
    session = hub.session(session_id)  # an immutable value: safe to hand to a thread
    return await asyncio.to_thread(_build_archive, hub, session)


def _build_archive(hub: Hub, session: Session) -> bytes:
    artifacts = _session_artifacts(hub, session)
    objects: dict[str, bytes] = {}
    for art in artifacts:
        if art.hash in objects:
            continue
        try:
            objects[art.hash] = hub.cas.get(art.hash)
        except CasError as err:
            raise HubError(
                cas_code(err),
                f"cannot export session {session.id!r}: object {art.hash} of artifact "
                f"{art.id!r} is unreadable ({err.message})",
                details={"artifact_id": art.id, "hash": art.hash},
            ) from err
    events = session_events(session)
    manifest = Manifest(
        format=ARCHIVE_FORMAT,
        format_version=ARCHIVE_VERSION,
        hub_version=__version__,
        session=ArchiveSession(id=session.id, title=session.title),
        counts=ArchiveCounts(
            sections=len(session.sections),
            takes=sum(len(s.takes) for s in session.sections),
            events=len(events),
            artifacts=len(artifacts),
            objects=len(objects),
            bytes=sum(len(b) for b in objects.values()),
        ),
    )
    lines = [
        _dumps({"event": ev.model_dump(mode="json"), "cause": "system", "group": None})
        for ev in events
    ]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        _write_member(zf, MANIFEST, _dumps(manifest.model_dump(mode="json"), indent=2).encode())
        _write_member(zf, EVENTS, "".join(line + "\n" for line in lines).encode())
        records = [a.model_dump(mode="json") for a in artifacts]
        _write_member(zf, ARTIFACTS, _dumps(records, indent=2).encode())
        for digest in sorted(objects):
            _write_member(zf, OBJECTS_DIR + digest, objects[digest])
    return buf.getvalue()


def _session_artifacts(hub: Hub, session: Session) -> list[Artifact]:
    """Every take's artifact plus every record naming the session, in a stable order."""
    found: dict[str, Artifact] = {}
    for sec in session.sections:
        for take in sec.takes:
            if take.artifact_id in found:
                continue
            try:
                found[take.artifact_id] = hub.artifacts.get(take.artifact_id)
            except ArtifactNotFound as err:
                raise HubError(
                    ErrorCode.unknown_artifact,
                    f"cannot export session {session.id!r}: take {take.id!r} of section "
                    f"{sec.name!r} names artifact {take.artifact_id!r}, which no longer exists",
                    details={"take": take.id, "section": sec.id, "artifact_id": take.artifact_id},
                    suggestions=["remove that take, then export again"],
                ) from err
    after: str | None = None
    while True:
        page = hub.artifacts.list(session_id=session.id, limit=MAX_LIST_LIMIT, after=after)
        for art in page:
            found.setdefault(art.id, art)
        if len(page) < MAX_LIST_LIMIT:
            break
        after = page[-1].id
    return sorted(found.values(), key=lambda a: (a.created_at, a.id))


def _write_member(zf: zipfile.ZipFile, name: str, data: bytes) -> None:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = _ZIP_MODE
    zf.writestr(info, data)


def _dumps(value: Any, *, indent: int | None = None) -> str:
    seps = (",", ": ") if indent else (",", ":")
    return json.dumps(
        value, sort_keys=True, ensure_ascii=False, allow_nan=False, indent=indent, separators=seps
    )
