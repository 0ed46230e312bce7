"""Session export / import archives and artifact deletion, against an in-process hub."""

from __future__ import annotations

import io
import json
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from serverkit import op
from serverkit import run_command as run

from hub.archive import (
    ARTIFACTS,
    EVENTS,
    MANIFEST,
    delete_artifact,
    export_session,
    import_session,
    parse_archive,
)
from hub.artifacts import Artifact
from hub.errors import ErrorCode, HubError
from hub.events import ArtifactDeleted, FileReady
from hub.media import MIDI_MIME, Provenance, store_artifact
from hub.model import Session
from hub.protocol import (
    AddSection,
    AddTake,
    ChooseTake,
    CreateSession,
    DeleteSession,
    LockSection,
    RejectTake,
    SetKey,
)
from hub.runtime import Hub

MIDI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "midi"
MIDI_FILES = ("bach_bwv66.6.mid", "corelli_op3no1_mv1.mid", "haydn_op74no1_mv1.mid")


async def build_session(hub: Hub) -> str:
    """Three sections; the verse has a chosen take and a rejected one; the outro is locked."""
    sid = str(
        (await run(hub, CreateSession(op_id=op(), title="Round Trip", tempo=96.0)))["session"]
    )
    await run(hub, SetKey(op_id=op(), session=sid, key="D minor"))
    intro = (await run(hub, AddSection(op_id=op(), session=sid, name="intro", bars=4)))["section"]
    verse = (
        await run(hub, AddSection(op_id=op(), session=sid, name="verse", bars=16, tempo=100.0))
    )["section"]
    outro = (await run(hub, AddSection(op_id=op(), session=sid, name="outro", bars=2)))["section"]
    arts = [
        await store_artifact(
            hub,
            (MIDI_DIR / name).read_bytes(),
            mime=MIDI_MIME,
            kind="midi",
            origin=Provenance(filename=name, session_id=sid),
        )
        for name in MIDI_FILES
    ]
    t_intro = (
        await run(hub, AddTake(op_id=op(), session=sid, section=intro, artifact=arts[0].id))
    )["take"]
    t_good = (
        await run(
            hub, AddTake(op_id=op(), session=sid, section=verse, artifact=arts[1].id, label="best")
        )
    )["take"]
    t_bad = (await run(hub, AddTake(op_id=op(), session=sid, section=verse, artifact=arts[2].id)))[
        "take"
    ]
    await run(hub, ChooseTake(op_id=op(), session=sid, section=verse, take=t_good))
    await run(hub, RejectTake(op_id=op(), session=sid, section=verse, take=t_bad))
    await run(hub, AddTake(op_id=op(), session=sid, section=outro, artifact=arts[0].id))
    await run(hub, LockSection(op_id=op(), session=sid, section=outro, locked=True))
    assert t_intro
    # A session artifact that no take uses (like a render) travels too.
    await store_artifact(
        hub, b"not midi", mime="application/octet-stream", kind="render", origin=Provenance(session_id=sid)
    )
    return sid


def shape(hub: Hub, session: Session) -> dict[str, Any]:
    """The session without ids: what an import with new ids must reproduce."""
    sections = []
    for sec in session.sections:
        takes = [
            {
                "status": t.status,
                "label": t.label,
                "bytes": hub.cas.get(hub.artifacts.get(t.artifact_id).hash),
                "chosen": t.id == sec.chosen_take,
            }
            for t in sec.takes
        ]
        sections.append(
            {
                "name": sec.name,
                "bars": sec.bars,
                "tempo": sec.tempo,
                "key": sec.key,
                "locked": sec.locked,
                "takes": takes,
                "has_choice": sec.chosen_take is not None,
            }
        )
    return {
        "title": session.title,
        "tempo": session.tempo,
        "meter": session.meter,
        "key": session.key,
        "sections": sections,
    }


def all_ids(session: Session) -> set[str]:
    ids = {session.id}
    for sec in session.sections:
        ids.add(sec.id)
        for t in sec.takes:
            ids.update((t.id, t.artifact_id))
    return ids


def members(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        return {name: zf.read(name) for name in zf.namelist()}


def rezip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, body in entries.items():
            info = zipfile.ZipInfo(name)
            info.compress_type = zipfile.ZIP_DEFLATED  # writestr(ZipInfo) ignores the default
            zf.writestr(info, body)
    return buf.getvalue()


def cas_digests(hub: Hub) -> set[str]:
    return set(hub.cas.iter_digests())


def every_artifact(hub: Hub) -> list[Artifact]:
    return hub.artifacts.list(limit=1000)


# --- round trip -------------------------------------------------------------------------


async def test_export_import_round_trip_with_new_ids(ihub: Hub) -> None:
    sid = await build_session(ihub)
    original = ihub.session(sid)
    data = await export_session(ihub, sid)

    new_sid = await import_session(ihub, data)
    copy = ihub.session(new_sid)
    assert new_sid != sid
    assert shape(ihub, copy) == shape(ihub, original)
    assert [s.name for s in copy.sections] == ["intro", "verse", "outro"]
    assert copy.sections[1].take(copy.sections[1].chosen_take or "") is not None
    assert [t.status for t in copy.sections[1].takes] == ["approved", "rejected"]
    # No id is shared: the copy is independent of the original.
    assert all_ids(copy).isdisjoint(all_ids(original))
    # The unused session artifact came along, attached to the new session.
    kinds = sorted(a.kind for a in ihub.artifacts.list(session_id=new_sid))
    assert kinds == ["midi", "midi", "midi", "render"]
    # Imported sessions start with an empty undo history (documented).
    assert copy.undo_stack == ()

    # Subscribers saw the import as durable events on the session's topic, plus file.ready.
    events = ihub.core.log.read(0, topics=lambda t: t == f"session:{new_sid}")
    assert events[0].event.type == "session.created"
    assert {e.cause for e in events} == {"system"}
    ready = [
        e.event
        for e in ihub.core.log.read(0)
        if isinstance(e.event, FileReady) and e.event.session == new_sid
    ]
    assert len(ready) == 4

    # Importing again gives a second, separate session.
    third = await import_session(ihub, data)
    assert third not in (sid, new_sid)
    assert shape(ihub, ihub.session(third)) == shape(ihub, original)


async def test_export_is_deterministic_and_well_formed(ihub: Hub) -> None:
    sid = await build_session(ihub)
    first = await export_session(ihub, sid)
    assert await export_session(ihub, sid) == first
    with zipfile.ZipFile(io.BytesIO(first)) as zf:
        names = zf.namelist()
    assert names[:3] == [MANIFEST, EVENTS, ARTIFACTS]
    objects = names[3:]
    assert objects == sorted(objects) and len(objects) == 4  # three MIDI files + the render
    body = members(first)
    manifest = json.loads(body[MANIFEST])
    assert manifest["format"] == "tutti.session-archive"
    assert manifest["session"] == {"id": sid, "title": "Round Trip"}
    assert manifest["counts"]["sections"] == 3
    assert manifest["counts"]["takes"] == 4
    assert manifest["counts"]["artifacts"] == 4
    lines = [json.loads(x) for x in body[EVENTS].decode().splitlines()]
    assert len(lines) == manifest["counts"]["events"]
    assert lines[0]["event"]["type"] == "session.created"


async def test_restore_with_original_ids_after_delete(ihub: Hub) -> None:
    sid = await build_session(ihub)
    original = ihub.session(sid)
    data = await export_session(ihub, sid)
    with pytest.raises(HubError) as exc:
        await import_session(ihub, data, new_ids=False)
    assert exc.value.code is ErrorCode.conflict

    await run(ihub, DeleteSession(op_id=op(), session=sid))
    restored_id = await import_session(ihub, data, new_ids=False)
    assert restored_id == sid
    restored = ihub.session(sid)
    keep = {"updated_offset", "undo_stack", "redo_stack"}
    assert restored.model_dump(exclude=keep) == original.model_dump(exclude=keep)


async def test_export_of_unknown_session(ihub: Hub) -> None:
    with pytest.raises(HubError) as exc:
        await export_session(ihub, "ses_nope")
    assert exc.value.code is ErrorCode.unknown_session


# --- tampered archives ----------------------------------------------------------------


def _tamper_hash(m: dict[str, bytes]) -> dict[str, bytes]:
    name = next(n for n in m if n.startswith("objects/"))
    return {**m, name: m[name] + b"\x00"}


def _swap_object(m: dict[str, bytes]) -> dict[str, bytes]:
    # Same length, different bytes: only the hash check can notice.
    name = next(n for n in m if n.startswith("objects/"))
    body = bytearray(m[name])
    body[-1] ^= 0xFF
    return {**m, name: bytes(body)}


def _drop(member: str) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda m: {k: v for k, v in m.items() if k != member}


def _add(member: str) -> Callable[[dict[str, bytes]], dict[str, bytes]]:
    return lambda m: {**m, member: b"x"}


def _wrong_counts(m: dict[str, bytes]) -> dict[str, bytes]:
    manifest = json.loads(m[MANIFEST])
    manifest["counts"]["takes"] += 1
    return {**m, MANIFEST: json.dumps(manifest).encode()}


def _foreign_event(m: dict[str, bytes]) -> dict[str, bytes]:
    lines = m[EVENTS].decode().splitlines()
    last = json.loads(lines[-1])
    last["event"]["session"] = "ses_someoneelse"
    return {**m, EVENTS: "\n".join([*lines[:-1], json.dumps(last)]).encode()}


def _bad_event(m: dict[str, bytes]) -> dict[str, bytes]:
    lines = m[EVENTS].decode().splitlines()
    return {**m, EVENTS: "\n".join([*lines, '{"event": {"type": "session.explode"}}']).encode()}


def _unknown_take_artifact(m: dict[str, bytes]) -> dict[str, bytes]:
    records = json.loads(m[ARTIFACTS])
    midi = [r for r in records if r["kind"] == "midi"]
    dropped = midi[0]
    records = [r for r in records if r["id"] != dropped["id"]]
    still_used = {r["hash"] for r in records}
    out = {k: v for k, v in m.items() if k != f"objects/{dropped['hash']}"}
    if dropped["hash"] in still_used:  # pragma: no cover - fixture files are distinct
        out[f"objects/{dropped['hash']}"] = m[f"objects/{dropped['hash']}"]
    manifest = json.loads(m[MANIFEST])
    manifest["counts"]["artifacts"] -= 1
    return {**out, ARTIFACTS: json.dumps(records).encode(), MANIFEST: json.dumps(manifest).encode()}


TAMPERS: list[tuple[str, Callable[[dict[str, bytes]], dict[str, bytes]], ErrorCode]] = [
    ("hash-mismatch-longer", _tamper_hash, ErrorCode.validation_failed),
    ("hash-mismatch-same-size", _swap_object, ErrorCode.validation_failed),
    ("traversal-dotdot", _add("../x"), ErrorCode.path_traversal),
    ("traversal-nested", _add("objects/../../evil"), ErrorCode.path_traversal),
    ("traversal-absolute", _add("/etc/passwd"), ErrorCode.path_traversal),
    ("traversal-backslash", _add("..\\x"), ErrorCode.path_traversal),
    ("missing-manifest", _drop(MANIFEST), ErrorCode.validation_failed),
    ("missing-events", _drop(EVENTS), ErrorCode.validation_failed),
    ("unexpected-member", _add("notes.txt"), ErrorCode.validation_failed),
    ("bad-object-name", _add("objects/abc"), ErrorCode.validation_failed),
    ("manifest-counts", _wrong_counts, ErrorCode.validation_failed),
    ("event-of-other-session", _foreign_event, ErrorCode.validation_failed),
    ("unknown-event-type", _bad_event, ErrorCode.validation_failed),
    ("take-without-record", _unknown_take_artifact, ErrorCode.validation_failed),
]


@pytest.mark.parametrize(
    ("change", "code"), [(t[1], t[2]) for t in TAMPERS], ids=[t[0] for t in TAMPERS]
)
async def test_import_rejects_tampered_archive(
    ihub: Hub, change: Callable[[dict[str, bytes]], dict[str, bytes]], code: ErrorCode
) -> None:
    sid = await build_session(ihub)
    data = await export_session(ihub, sid)
    assert await import_session(ihub, rezip(members(data)))  # rezip itself is harmless
    sessions = set(ihub.core.state.sessions)
    records = {a.id for a in every_artifact(ihub)}
    digests = cas_digests(ihub)

    with pytest.raises(HubError) as exc:
        await import_session(ihub, rezip(change(members(data))))
    assert exc.value.code is code
    assert exc.value.message.startswith(("invalid session archive", "session archive"))
    # Validation happens before any write: nothing was added anywhere.
    assert set(ihub.core.state.sessions) == sessions
    assert {a.id for a in every_artifact(ihub)} == records
    assert cas_digests(ihub) == digests


async def test_import_rejects_garbage_and_oversize(ihub: Hub) -> None:
    with pytest.raises(HubError) as exc:
        await import_session(ihub, b"PK\x03\x04 definitely not a zip")
    assert exc.value.code is ErrorCode.validation_failed
    sid = await build_session(ihub)
    data = await export_session(ihub, sid)
    with pytest.raises(HubError) as exc:
        await import_session(ihub, data, max_bytes=len(data) - 1)
    assert exc.value.code is ErrorCode.payload_too_large
    assert exc.value.details["limit"] == len(data) - 1


def test_zip_bomb_is_refused_before_decompressing() -> None:
    # 8 MiB of zeros compresses to a few KiB; the declared size gives it away.
    bomb = rezip(
        {MANIFEST: b"{}", EVENTS: b"", ARTIFACTS: b"[]", "objects/" + "0" * 64: bytes(8 << 20)}
    )
    assert len(bomb) < 64 * 1024
    with pytest.raises(HubError) as exc:
        parse_archive(bomb, max_object_size=64 << 20, max_uncompressed=1 << 20)
    assert exc.value.code is ErrorCode.payload_too_large
    # An object over the CAS's per-object limit is refused while reading.
    with pytest.raises(HubError) as exc:
        parse_archive(bomb, max_object_size=1 << 20)
    assert exc.value.code is ErrorCode.payload_too_large


# --- deleting artifacts -----------------------------------------------------------------


async def test_delete_artifact_refuses_referenced_and_deletes_unused(ihub: Hub) -> None:
    sid = await build_session(ihub)
    session = ihub.session(sid)
    used = session.sections[1].takes[0].artifact_id
    with pytest.raises(HubError) as exc:
        await delete_artifact(ihub, used)
    assert exc.value.code is ErrorCode.conflict
    assert exc.value.details["takes"][0]["take"] == session.sections[1].takes[0].id
    assert ihub.artifacts.get(used).id == used  # still there

    render = next(a for a in ihub.artifacts.list(session_id=sid) if a.kind == "render")
    deleted = await delete_artifact(ihub, render.id)
    assert deleted.id == render.id
    with pytest.raises(HubError) as exc:
        ihub.artifacts.get(render.id)
    assert exc.value.code is ErrorCode.unknown_artifact
    announced = [e.event for e in ihub.core.log.read(0) if isinstance(e.event, ArtifactDeleted)]
    assert announced == [ArtifactDeleted(artifact=render.id, session=sid)]

    with pytest.raises(HubError) as exc:
        await delete_artifact(ihub, render.id)
    assert exc.value.code is ErrorCode.unknown_artifact
