"""Import: parsing and validation (pure, runs on a worker thread).

Import validates everything before it writes anything: size limits (archive,
members, total uncompressed, per object), member names (no traversal, only the
names of the layout in :mod:`hub.archive.format`), every object's sha256 against
its name, record sizes against the bytes, the event schema and the state the
events fold to. The writing is :mod:`hub.archive.restore`.
"""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from cas.digest import is_valid_digest, sha256_hex
from hub.archive.format import (
    ARCHIVE_FORMAT,
    ARCHIVE_VERSION,
    ARTIFACTS,
    EVENT_ADAPTER,
    EVENTS,
    MANIFEST,
    MAX_EVENTS,
    MAX_JSON_MEMBER_BYTES,
    MAX_MANIFEST_BYTES,
    MAX_MEMBERS,
    MAX_UNCOMPRESSED_BYTES,
    OBJECTS_DIR,
    Manifest,
    invalid,
    too_large,
)
from hub.artifacts import Artifact
from hub.errors import ErrorCode, HubError
from hub.events import Cause, Envelope, SessionCreated, SessionEvent, topic_of
from hub.model import Session
from hub.state import EMPTY, HubState, replay

_READ_CHUNK = 1024 * 1024
_CAUSES: frozenset[str] = frozenset({"do", "undo", "redo", "system"})


@dataclass
class Line:
    event: SessionEvent
    cause: Cause
    group: str | None


@dataclass
class Parsed:
    manifest: Manifest
    lines: list[Line]
    artifacts: list[Artifact]
    objects: dict[str, bytes]
    session: Session = field(default_factory=lambda: Session(id="-", title="-"))


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
    raise invalid(
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
                raise too_large(f"member {info.filename!r} is over {limit} bytes", limit=limit)
    return bytes(out)


def parse_archive(
    data: bytes,
    *,
    max_object_size: int,
    max_uncompressed: int = MAX_UNCOMPRESSED_BYTES,
    max_members: int = MAX_MEMBERS,
) -> Parsed:
    """Open and fully validate an archive; raises HubError, never writes anything."""
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, EOFError) as exc:
        raise invalid(f"not a zip file ({exc})") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise too_large(f"{len(infos)} members", limit=max_members, members=len(infos))
        seen: set[str] = set()
        declared = 0
        for info in infos:
            _check_member_name(info.filename)
            if info.filename in seen:
                raise invalid(f"member {info.filename!r} appears twice", member=info.filename)
            seen.add(info.filename)
            if info.flag_bits & 0x1:
                raise invalid(f"member {info.filename!r} is encrypted", member=info.filename)
            if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                raise invalid(
                    f"member {info.filename!r} uses an unsupported compression method",
                    member=info.filename,
                )
            # Declared sizes are what zipfile will return at most, so summing them
            # before decompressing anything stops a zip bomb up front.
            declared += info.file_size
        if declared > max_uncompressed:
            raise too_large(
                f"{declared} bytes uncompressed", limit=max_uncompressed, uncompressed=declared
            )
        for required in (MANIFEST, EVENTS, ARTIFACTS):
            if required not in seen:
                raise invalid(f"{required} is missing", member=required)
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
                        raise invalid(
                            f"object {digest} does not match its sha256 (content was altered)",
                            member=name,
                            actual=sha256_hex(body),
                        )
                    objects[digest] = body
        except zipfile.BadZipFile as exc:  # bad CRC, truncated data
            raise invalid(f"damaged zip data ({exc})") from None
    parsed = Parsed(
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
        raise invalid(f"{name} is not valid UTF-8 JSON ({exc})", member=name) from None


def _validation_details(exc: ValidationError) -> list[Any]:
    errors: list[Any] = json.loads(exc.json(include_url=False))
    return errors[:20]


def _parse_manifest(raw: bytes) -> Manifest:
    body = _json_member(raw, MANIFEST)
    if not isinstance(body, dict) or body.get("format") != ARCHIVE_FORMAT:
        raise invalid(f"{MANIFEST} does not describe a {ARCHIVE_FORMAT}", member=MANIFEST)
    if body.get("format_version") != ARCHIVE_VERSION:
        raise invalid(
            f"archive format version {body.get('format_version')!r} is not supported "
            f"(this hub reads version {ARCHIVE_VERSION})",
            member=MANIFEST,
        )
    try:
        return Manifest.model_validate(body)
    except ValidationError as exc:
        raise invalid(f"{MANIFEST} is malformed", errors=_validation_details(exc)) from None


def _parse_events(raw: bytes) -> list[Line]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise invalid(f"{EVENTS} is not UTF-8 ({exc})", member=EVENTS) from None
    lines: list[Line] = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        if len(lines) >= MAX_EVENTS:
            raise too_large(f"more than {MAX_EVENTS} events", limit=MAX_EVENTS)
        try:
            obj = json.loads(line)
        except ValueError as exc:
            raise invalid(f"{EVENTS} line {number} is not JSON ({exc})", line=number) from None
        if (
            not isinstance(obj, dict)
            or not set(obj) <= {"event", "cause", "group"}
            or "event" not in obj
        ):
            raise invalid(
                f"{EVENTS} line {number} must be an object with event, cause and group",
                line=number,
            )
        cause = obj.get("cause", "system")
        group = obj.get("group")
        if cause not in _CAUSES or not (group is None or isinstance(group, str)):
            raise invalid(f"{EVENTS} line {number} has a bad cause or group", line=number)
        try:
            event = EVENT_ADAPTER.validate_python(obj["event"])
        except ValidationError as exc:
            raise invalid(
                f"{EVENTS} line {number} is not a valid session event",
                line=number,
                errors=_validation_details(exc),
            ) from None
        lines.append(Line(event, cause, group))
    return lines


def _parse_artifacts(raw: bytes) -> list[Artifact]:
    body = _json_member(raw, ARTIFACTS)
    if not isinstance(body, list):
        raise invalid(f"{ARTIFACTS} must be a JSON list of artifact records", member=ARTIFACTS)
    out: list[Artifact] = []
    for i, item in enumerate(body):
        try:
            out.append(Artifact.model_validate(item))
        except ValidationError as exc:
            raise invalid(
                f"{ARTIFACTS} record {i} is not a valid artifact record",
                index=i,
                errors=_validation_details(exc),
            ) from None
    return out


def _check_consistency(p: Parsed) -> None:
    """Cross-checks: records against objects, events against the manifest and records."""
    ids = [a.id for a in p.artifacts]
    if len(set(ids)) != len(ids):
        raise invalid(f"{ARTIFACTS} lists an artifact id twice")
    for art in p.artifacts:
        body = p.objects.get(art.hash)
        if body is None:
            raise invalid(
                f"artifact {art.id!r} needs object {art.hash}, which the archive lacks",
                artifact_id=art.id,
                hash=art.hash,
            )
        if len(body) != art.size:
            raise invalid(
                f"artifact {art.id!r} says {art.size} bytes but its object has {len(body)}",
                artifact_id=art.id,
            )
    unused = set(p.objects) - {a.hash for a in p.artifacts}
    if unused:
        raise invalid("objects that no artifact record uses", hashes=sorted(unused)[:20])

    sid = p.manifest.session.id
    if not p.lines or not isinstance(p.lines[0].event, SessionCreated):
        raise invalid(f"{EVENTS} must start with session.created")
    for number, line in enumerate(p.lines, start=1):
        ev = line.event
        if ev.session != sid:
            raise invalid(
                f"{EVENTS} line {number} names session {ev.session!r}, not the archive's {sid!r}",
                line=number,
            )
        if number > 1 and isinstance(ev, SessionCreated):
            raise invalid(f"{EVENTS} line {number} creates the session a second time", line=number)
        if ev.type == "session.deleted":
            raise invalid(f"{EVENTS} line {number} deletes the session", line=number)

    # Fold the events exactly as the hub will, and check the outcome.
    state = _fold(EMPTY, p.lines)
    session = state.sessions.get(sid)
    if session is None:  # unreachable after the checks above; kept as a guard
        raise invalid("the events do not produce the session")
    p.session = session
    known = set(ids)
    for sec in session.sections:
        for take in sec.takes:
            if take.artifact_id not in known:
                raise invalid(
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
        raise invalid(f"{MANIFEST} counts do not match the archive", counts=wrong)


def _fold(state: HubState, lines: Sequence[Line]) -> HubState:
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
