"""Session export / import as one zip archive, and deleting artifacts safely.

Archive layout (format ``tutti.session-archive``, version 1), members in this order::

    manifest.json      format, versions, the session's id and title, counts
    events.jsonl       one session event per line: {"event": {...}, "cause", "group"}
    artifacts.json     the artifact records: every take's artifact + the session's own
    objects/<sha256>   the CAS bytes of those artifacts, sorted by hash

Why the events are *synthesised from the current state* rather than copied from
the log: the log may have been compacted (retention), so a log-based export
would work for young sessions and fail or need a second code path for old
ones. Synthesising always works, makes the archive a deterministic function of
the session (same session -> identical bytes), keeps its size proportional to
the session rather than to its edit history, and never carries references to
artifacts of takes that were removed long ago. The price: undo/redo history is
not carried; an imported session starts with an empty undo stack (its events
are recorded with cause ``system``, which is not undoable, like session creation).

Import validates everything before it writes anything: size limits (archive,
members, total uncompressed, per object), member names (no traversal, only the
names above), every object's sha256 against its name, record sizes against the
bytes, the event schema and the state the events fold to. Then it puts the
objects in the CAS, adds the artifact records in one transaction and records
the session events (plus ``file.ready`` for each new artifact) through the core,
so subscribers see the imported session like any other.
"""

from __future__ import annotations

import asyncio
import io
import json
import logging
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from cas.digest import is_valid_digest, sha256_hex
from cas.errors import CasError
from hub import __version__
from hub.artifacts import MAX_LIST_LIMIT, Artifact, ArtifactNotFound
from hub.errors import ErrorCode, HubError
from hub.events import (
    ArtifactDeleted,
    Cause,
    Envelope,
    Event,
    SectionAdded,
    SectionLocked,
    SessionCreated,
    SessionEvent,
    TakeAdded,
    topic_of,
)
from hub.ids import ARTIFACT, SECTION, SESSION, TAKE, new_id
from hub.media import file_ready
from hub.model import Session
from hub.state import EMPTY, HubState, replay

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.archive")

ARCHIVE_FORMAT = "tutti.session-archive"
ARCHIVE_VERSION = 1
ARCHIVE_MIME = "application/zip"

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
ARTIFACTS = "artifacts.json"
OBJECTS_DIR = "objects/"

# Limits for untrusted archives (import). The per-object limit is the CAS's own.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_JSON_MEMBER_BYTES = 32 * 1024 * 1024  # events.jsonl / artifacts.json
MAX_MANIFEST_BYTES = 64 * 1024
MAX_EVENTS = 200_000

# Fixed zip timestamps and modes so the same session always gives the same bytes.
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)
_ZIP_MODE = 0o644 << 16
_READ_CHUNK = 1024 * 1024

_EVENT_ADAPTER: TypeAdapter[SessionEvent] = TypeAdapter(SessionEvent)
_CAUSES: frozenset[str] = frozenset({"do", "undo", "redo", "system"})


class ArchiveCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sections: int = Field(ge=0)
    takes: int = Field(ge=0)
    events: int = Field(ge=1)
    artifacts: int = Field(ge=0)
    objects: int = Field(ge=0)
    bytes: int = Field(ge=0)  # total size of the objects


class ArchiveSession(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    title: str = Field(max_length=200)


class Manifest(BaseModel):
    """``manifest.json``: what the archive holds, checked against its members on import."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str
    format_version: int
    hub_version: str = Field(max_length=64)
    session: ArchiveSession
    counts: ArchiveCounts
    events_source: str = "state"  # see the module docstring
    undo_history: bool = False


# --- export -------------------------------------------------------------------------


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
                _cas_code(err),
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


# --- import: parsing and validation (pure, runs on a worker thread) -------------------


@dataclass
class _Line:
    event: SessionEvent
    cause: Cause
    group: str | None


@dataclass
class _Parsed:
    manifest: Manifest
    lines: list[_Line]
    artifacts: list[Artifact]
    objects: dict[str, bytes]
    session: Session = field(default_factory=lambda: Session(id="-", title="-"))


def _invalid(message: str, **details: Any) -> HubError:
    return HubError(
        ErrorCode.validation_failed, f"invalid session archive: {message}", details=details
    )


def _too_large(message: str, *, limit: int, **details: Any) -> HubError:
    return HubError(
        ErrorCode.payload_too_large,
        f"session archive too large: {message}",
        details={"limit": limit, **details},
    )


def _check_member_name(name: str) -> None:
    """Only the archive's own names pass; anything that could leave a folder is traversal."""
    parts = name.replace("\\", "/").split("/")
    if (
        not name
        or name.startswith(("/", "\\"))
        or "\\" in name
        or "\x00" in name
        or ".." in parts
        or (len(name) > 1 and name[1] == ":")  # C:... drive letters
    ):
        raise HubError(
            ErrorCode.path_traversal,
            f"invalid session archive: member name {name[:200]!r} tries to leave the archive",
            details={"member": name[:200]},
        )
    if name in (MANIFEST, EVENTS, ARTIFACTS):
        return
    if name.startswith(OBJECTS_DIR) and is_valid_digest(name[len(OBJECTS_DIR) :]):
        return
    raise _invalid(
        f"unexpected member {name[:200]!r}",
        member=name[:200],
        expected=[MANIFEST, EVENTS, ARTIFACTS, "objects/<sha256>"],
    )


def _read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int) -> bytes:
    """Read one member, never more than ``limit`` bytes whatever its header claims."""
    out = bytearray()
    with zf.open(info) as fh:
        while chunk := fh.read(_READ_CHUNK):
            out += chunk
            if len(out) > limit:
                raise _too_large(f"member {info.filename!r} is over {limit} bytes", limit=limit)
    return bytes(out)


def parse_archive(
    data: bytes,
    *,
    max_object_size: int,
    max_uncompressed: int = MAX_UNCOMPRESSED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> _Parsed:
    """Open and fully validate an archive; raises HubError, never writes anything."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise _invalid(f"not a zip file ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise _too_large(f"{len(infos)} members", limit=max_members, members=len(infos))
        seen: set[str] = set()
        declared = 0
        for info in infos:
            _check_member_name(info.filename)
            if info.filename in seen:
                raise _invalid(f"member {info.filename!r} appears twice", member=info.filename)
            seen.add(info.filename)
            if info.flag_bits & 0x1:
                raise _invalid(f"member {info.filename!r} is encrypted", member=info.filename)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise _invalid(
                    f"member {info.filename!r} uses an unsupported compression method",
                    member=info.filename,
                )
            # Declared sizes are what zipfile will return at most, so summing them
            # before decompressing anything stops a zip bomb up front.
            declared += info.file_size
        if declared > max_uncompressed:
            raise _too_large(
                f"{declared} bytes uncompressed", limit=max_uncompressed, uncompressed=declared
            )
        for required in (MANIFEST, EVENTS, ARTIFACTS):
            if required not in seen:
                raise _invalid(f"{required} is missing", member=required)
        by_name = {info.filename: info for info in infos}
        try:
            manifest_raw = _read_member(zf, by_name[MANIFEST], MAX_MANIFEST_BYTES)
            events_raw = _read_member(zf, by_name[EVENTS], MAX_JSON_MEMBER_BYTES)
            artifacts_raw = _read_member(zf, by_name[ARTIFACTS], MAX_JSON_MEMBER_BYTES)
            objects: dict[str, bytes] = {}
            for name in sorted(seen):
                if name.startswith(OBJECTS_DIR):
                    digest = name[len(OBJECTS_DIR) :]
                    body = _read_member(zf, by_name[name], max_object_size)
                    if sha256_hex(body) != digest:
                        raise _invalid(
                            f"object {digest} does not match its sha256 (content was altered)",
                            member=name,
                            actual=sha256_hex(body),
                        )
                    objects[digest] = body
        except zipfile.BadZipFile as exc:  # bad CRC, truncated data
            raise _invalid(f"damaged zip data ({exc})") from None
    parsed = _Parsed(
        manifest=_parse_manifest(manifest_raw),
        lines=_parse_events(events_raw),
        artifacts=_parse_artifacts(artifacts_raw),
        objects=objects,
    )
    _check_consistency(parsed)
    return parsed


def _json_member(raw: bytes, name: str) -> Any:
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        raise _invalid(f"{name} is not valid UTF-8 JSON ({exc})", member=name) from None


def _validation_details(exc: ValidationError) -> list[Any]:
    errors: list[Any] = json.loads(exc.json(include_url=False))
    return errors[:20]


def _parse_manifest(raw: bytes) -> Manifest:
    body = _json_member(raw, MANIFEST)
    if not isinstance(body, dict) or body.get("format") != ARCHIVE_FORMAT:
        raise _invalid(f"{MANIFEST} does not describe a {ARCHIVE_FORMAT}", member=MANIFEST)
    if body.get("format_version") != ARCHIVE_VERSION:
        raise _invalid(
            f"archive format version {body.get('format_version')!r} is not supported "
            f"(this hub reads version {ARCHIVE_VERSION})",
            member=MANIFEST,
        )
    try:
        return Manifest.model_validate(body)
    except ValidationError as exc:
        raise _invalid(f"{MANIFEST} is malformed", errors=_validation_details(exc)) from None


def _parse_events(raw: bytes) -> list[_Line]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _invalid(f"{EVENTS} is not UTF-8 ({exc})", member=EVENTS) from None
    lines: list[_Line] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(lines) >= MAX_EVENTS:
            raise _too_large(f"more than {MAX_EVENTS} events", limit=MAX_EVENTS)
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise _invalid(f"{EVENTS} line {number} is not JSON ({exc})", line=number) from None
        if (
            not isinstance(obj, dict)
            or not set(obj) <= {"event", "cause", "group"}
            or "event" not in obj
        ):
            raise _invalid(
                f"{EVENTS} line {number} must be an object with event, cause and group",
                line=number,
            )
        cause = obj.get("cause", "system")
        group = obj.get("group")
        if cause not in _CAUSES or not (group is None or isinstance(group, str)):
            raise _invalid(f"{EVENTS} line {number} has a bad cause or group", line=number)
        try:
            event = _EVENT_ADAPTER.validate_python(obj["event"])
        except ValidationError as exc:
            raise _invalid(
                f"{EVENTS} line {number} is not a valid session event",
                line=number,
                errors=_validation_details(exc),
            ) from None
        lines.append(_Line(event, cause, group))
    return lines


def _parse_artifacts(raw: bytes) -> list[Artifact]:
    body = _json_member(raw, ARTIFACTS)
    if not isinstance(body, list):
        raise _invalid(f"{ARTIFACTS} must be a JSON list of artifact records", member=ARTIFACTS)
    out: list[Artifact] = []
    for i, item in enumerate(body):
        try:
            out.append(Artifact.model_validate(item))
        except ValidationError as exc:
            raise _invalid(
                f"{ARTIFACTS} record {i} is not a valid artifact record",
                index=i,
                errors=_validation_details(exc),
            ) from None
    return out


def _check_consistency(p: _Parsed) -> None:
    """Cross-checks: records against objects, events against the manifest and records."""
    ids = [a.id for a in p.artifacts]
    if len(set(ids)) != len(ids):
        raise _invalid(f"{ARTIFACTS} lists an artifact id twice")
    for art in p.artifacts:
        body = p.objects.get(art.hash)
        if body is None:
            raise _invalid(
                f"artifact {art.id!r} needs object {art.hash}, which the archive lacks",
                artifact_id=art.id,
                hash=art.hash,
            )
        if len(body) != art.size:
            raise _invalid(
                f"artifact {art.id!r} says {art.size} bytes but its object has {len(body)}",
                artifact_id=art.id,
            )
    unused = set(p.objects) - {a.hash for a in p.artifacts}
    if unused:
        raise _invalid("objects that no artifact record uses", hashes=sorted(unused)[:20])

    sid = p.manifest.session.id
    if not p.lines or not isinstance(p.lines[0].event, SessionCreated):
        raise _invalid(f"{EVENTS} must start with session.created")
    for number, line in enumerate(p.lines, start=1):
        ev = line.event
        if ev.session != sid:
            raise _invalid(
                f"{EVENTS} line {number} names session {ev.session!r}, not the archive's {sid!r}",
                line=number,
            )
        if number > 1 and isinstance(ev, SessionCreated):
            raise _invalid(f"{EVENTS} line {number} creates the session a second time", line=number)
        if ev.type == "session.deleted":
            raise _invalid(f"{EVENTS} line {number} deletes the session", line=number)

    # Fold the events exactly as the hub will, and check the outcome.
    state = _fold(EMPTY, p.lines)
    session = state.sessions.get(sid)
    if session is None:  # unreachable after the checks above; kept as a guard
        raise _invalid("the events do not produce the session")
    p.session = session
    known = set(ids)
    for sec in session.sections:
        for take in sec.takes:
            if take.artifact_id not in known:
                raise _invalid(
                    f"take {take.id!r} names artifact {take.artifact_id!r}, "
                    f"which {ARTIFACTS} does not hold",
                    take=take.id,
                    artifact_id=take.artifact_id,
                )
    counts = p.manifest.counts
    actual = {
        "sections": len(session.sections),
        "takes": sum(len(s.takes) for s in session.sections),
        "events": len(p.lines),
        "artifacts": len(p.artifacts),
        "objects": len(p.objects),
        "bytes": sum(len(b) for b in p.objects.values()),
    }
    wrong = {
        k: {"manifest": getattr(counts, k), "actual": v}
        for k, v in actual.items()
        if getattr(counts, k) != v
    }
    if wrong:
        raise _invalid(f"{MANIFEST} counts do not match the archive", counts=wrong)


def _fold(state: HubState, lines: Sequence[_Line]) -> HubState:
    envelopes = [
        Envelope(
            epoch="import",
            offset=state.offset + i,
            ts=0.0,
            topic=topic_of(line.event),
            cause=line.cause,
            group=line.group,
            event=line.event,
        )
        for i, line in enumerate(lines, start=1)
    ]
    return replay(state, envelopes)


# --- import: id remapping -------------------------------------------------------------


@dataclass
class _IdMap:
    session: str
    sections: dict[str, str]
    takes: dict[str, str]
    artifacts: dict[str, str]


def _identity_map(p: _Parsed) -> _IdMap:
    sections = {s: s for s in _section_ids(p.lines)}
    takes = {t: t for t in _take_ids(p.lines)}
    arts = {a.id: a.id for a in p.artifacts}
    return _IdMap(p.manifest.session.id, sections, takes, arts)


def _fresh_map(p: _Parsed) -> _IdMap:
    return _IdMap(
        new_id(SESSION),
        {s: new_id(SECTION) for s in _section_ids(p.lines)},
        {t: new_id(TAKE) for t in _take_ids(p.lines)},
        {a.id: new_id(ARTIFACT) for a in p.artifacts},
    )


def _section_ids(lines: Iterable[_Line]) -> list[str]:
    out: dict[str, None] = {}
    for line in lines:
        if isinstance(line.event, SectionAdded):
            out[line.event.section.id] = None
    return list(out)


def _take_ids(lines: Iterable[_Line]) -> list[str]:
    out: dict[str, None] = {}
    for line in lines:
        ev = line.event
        if isinstance(ev, SectionAdded):
            for take in ev.section.takes:
                out[take.id] = None
        elif isinstance(ev, TakeAdded):
            out[ev.take.id] = None
    return list(out)


def _lookup(table: Mapping[str, str], value: str, what: str) -> str:
    try:
        return table[value]
    except KeyError:
        raise _invalid(
            f"an event names {what} {value!r}, which no event adds", **{what: value}
        ) from None


def _remap_take(d: dict[str, Any], m: _IdMap) -> dict[str, Any]:
    return {
        **d,
        "id": _lookup(m.takes, d["id"], "take"),
        "artifact_id": _lookup(m.artifacts, d["artifact_id"], "artifact"),
    }


def _remap_section(d: dict[str, Any], m: _IdMap) -> dict[str, Any]:
    chosen = d.get("chosen_take")
    return {
        **d,
        "id": _lookup(m.sections, d["id"], "section"),
        "takes": [_remap_take(t, m) for t in d.get("takes", [])],
        "chosen_take": None if chosen is None else _lookup(m.takes, chosen, "take"),
    }


def _remap_event(ev: SessionEvent, m: _IdMap) -> SessionEvent:
    """The event with every session/section/take/artifact id replaced via ``m``."""
    d = ev.model_dump(mode="json")
    d["session"] = m.session
    sec = d.get("section")
    if isinstance(sec, dict):
        d["section"] = _remap_section(sec, m)
    elif isinstance(sec, str):
        d["section"] = _lookup(m.sections, sec, "section")
    for key in ("take", "old_take"):
        value = d.get(key)
        if isinstance(value, dict):
            d[key] = _remap_take(value, m)
        elif isinstance(value, str):
            d[key] = _lookup(m.takes, value, "take")
    return _EVENT_ADAPTER.validate_python(d)


# --- import: writing --------------------------------------------------------------------


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
        raise _too_large(f"{len(data)} bytes", limit=max_bytes, size=len(data))
    parsed = await asyncio.to_thread(parse_archive, data, max_object_size=hub.cas.max_object_size)
    if new_ids:
        ids = _fresh_map(parsed)
        reuse: set[str] = set()
    else:
        ids = _identity_map(parsed)
        reuse = await asyncio.to_thread(_check_restore_conflicts, hub, parsed)
    events: list[Event] = [_remap_event(line.event, ids) for line in parsed.lines]
    records = _remap_artifacts(hub, parsed, ids, reuse)

    def put_objects() -> None:
        for body in parsed.objects.values():
            hub.cas.put(body)

    try:
        await asyncio.to_thread(put_objects)
    except CasError as err:
        raise HubError(_cas_code(err), f"cannot store archive objects: {err.message}") from err

    added = await hub.core.in_writer(_add_records, hub, records)
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


def _check_restore_conflicts(hub: Hub, p: _Parsed) -> set[str]:
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


def _remap_artifacts(hub: Hub, p: _Parsed, m: _IdMap, reuse: set[str]) -> list[Artifact]:
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
            elif not _exists(hub, parent):
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


def _exists(hub: Hub, artifact_id: str) -> bool:
    try:
        hub.artifacts.get(artifact_id)
    except ArtifactNotFound:
        return False
    return True


def _add_records(hub: Hub, records: Sequence[Artifact]) -> list[Artifact]:
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


async def _drop_records(hub: Hub, added: Sequence[Artifact]) -> None:
    """Undo an import's record inserts after a later step failed (best effort)."""

    def drop() -> None:
        for art in reversed(added):
            try:
                hub.artifacts.delete(art.id)
            except HubError:
                log.warning("could not roll back imported artifact %s", art.id)

    await hub.core.in_writer(drop)


# --- deleting artifacts ----------------------------------------------------------------


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
        parent = (
            art.parent_id if art.parent_id is not None and _exists(hub, art.parent_id) else None
        )
        try:
            _add_records(hub, [art.model_copy(update={"parent_id": parent})])
        except HubError as err:
            log.error("could not restore artifact %s after a delete race: %s", art.id, err.message)


def _cas_code(err: CasError) -> ErrorCode:
    return ErrorCode(err.code) if err.code in ErrorCode.__members__ else ErrorCode.internal_error
