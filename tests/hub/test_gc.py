"""CAS garbage collection: the sweep itself, the offline CLI entry and the in-hub gc."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from serverkit import op
from serverkit import run_command as run

from cas.store import CasStore
from hub.artifacts import ArtifactStore
from hub.errors import ErrorCode, HubError
from hub.events import ArtifactDeleted
from hub.gc import collect_garbage, gc, gc_data_dir
from hub.media import MIDI_MIME, Provenance, store_artifact
from hub.protocol import AddSection, AddTake, CreateSession, DeleteSession
from hub.runtime import Hub
from hub.sqlite import Database, connect, open_data_dir

MIDI_DIR = Path(__file__).resolve().parents[1] / "fixtures" / "midi"
HOUR = 3600.0


def age(cas: CasStore, digest: str, seconds: float) -> None:
    """Make an object look ``seconds`` old (its mtime is what the grace period reads)."""
    then = time.time() - seconds
    os.utime(cas.path(digest), (then, then))


def record(store: ArtifactStore, digest: str, size: int) -> str:
    return store.add(hash=digest, mime="application/octet-stream", size=size, kind="upload").id


@pytest.fixture
def db() -> Iterator[Database]:
    conn = connect(":memory:")
    yield conn
    conn.close()


@pytest.fixture
def cas(tmp_path: Path) -> CasStore:
    return CasStore(tmp_path / "cas")


# --- the sweep --------------------------------------------------------------------------


def test_gc_removes_only_old_unreferenced_objects(cas: CasStore, db: Database) -> None:
    store = ArtifactStore(db)
    kept = cas.put(b"referenced bytes")
    old = cas.put(b"old garbage, 25 bytes....")
    young = cas.put(b"an upload in flight")
    record(store, kept.digest, kept.size)
    age(cas, kept.digest, 2 * HOUR)  # old, but referenced: age alone never collects
    age(cas, old.digest, 2 * HOUR)

    dry = collect_garbage(cas, store, dry_run=True)
    assert (dry.scanned, dry.referenced, dry.young, dry.deleted) == (3, 1, 1, 1)
    assert dry.bytes_freed == old.size == 25
    assert dry.deleted_digests == (old.digest,)
    assert dry.dry_run
    assert all(cas.has(d) for d in (kept.digest, old.digest, young.digest))  # nothing deleted

    real = collect_garbage(cas, store)
    assert (real.deleted, real.bytes_freed, real.young, real.referenced) == (1, 25, 1, 1)
    assert not cas.has(old.digest)
    assert cas.has(kept.digest) and cas.has(young.digest)
    assert cas.get(kept.digest) == b"referenced bytes"

    # Without a grace period the young unreferenced object goes too, the referenced one stays.
    again = collect_garbage(cas, store, grace_seconds=0)
    assert again.deleted_digests == (young.digest,)
    assert list(cas.iter_digests()) == [kept.digest]


def test_gc_reports_missing_objects_and_honours_assume_deleted(cas: CasStore, db: Database) -> None:
    store = ArtifactStore(db)
    shared = cas.put(b"two records share these bytes")
    solo = cas.put(b"one record only")
    a = record(store, shared.digest, shared.size)
    record(store, shared.digest, shared.size)
    b = record(store, solo.digest, solo.size)
    record(store, "f" * 64, 3)  # a record whose bytes are gone (damage)

    report = collect_garbage(cas, store, grace_seconds=0, dry_run=True, assume_deleted=[a, b])
    assert report.missing == 1
    # `solo` would be freed with its only record; `shared` is still named by the other one.
    assert report.deleted_digests == (solo.digest,)
    assert cas.has(solo.digest)


def test_gc_rejects_negative_grace(cas: CasStore, db: Database) -> None:
    with pytest.raises(ValueError, match="grace_seconds"):
        collect_garbage(cas, ArtifactStore(db), grace_seconds=-1)


# --- offline ------------------------------------------------------------------------------


def test_gc_data_dir_offline(tmp_path: Path) -> None:
    data = tmp_path / "data"
    conn = open_data_dir(data)
    store = ArtifactStore(conn)
    cas = CasStore(data / "cas")
    used = cas.put(b"used")
    unused = cas.put(b"unused")
    record(store, used.digest, used.size)
    age(cas, used.digest, 2 * HOUR)
    age(cas, unused.digest, 2 * HOUR)
    conn.close()

    dry = gc_data_dir(data, dry_run=True)
    assert dry.deleted == 1 and cas.has(unused.digest)
    real = gc_data_dir(data, dry_run=False)
    assert real.deleted_digests == (unused.digest,)
    assert real.to_dict()["deleted_digests"] == [unused.digest]
    assert not cas.has(unused.digest) and cas.has(used.digest)


def test_gc_data_dir_refuses_a_folder_without_database(tmp_path: Path) -> None:
    cas = CasStore(tmp_path / "cas")
    obj = cas.put(b"would look unused")
    age(cas, obj.digest, 2 * HOUR)
    with pytest.raises(HubError) as exc:
        gc_data_dir(tmp_path, dry_run=False)
    assert exc.value.code is ErrorCode.not_found
    assert cas.has(obj.digest)


# --- in the running hub ---------------------------------------------------------------


async def test_deleting_a_session_then_gc_frees_its_objects(ihub: Hub) -> None:
    sid = str((await run(ihub, CreateSession(op_id=op(), title="doomed")))["session"])
    sec = str((await run(ihub, AddSection(op_id=op(), session=sid, name="verse")))["section"])
    names = ("bach_bwv66.6.mid", "corelli_op3no1_mv1.mid")
    arts = []
    for name in names:
        art = await store_artifact(
            ihub, (MIDI_DIR / name).read_bytes(), mime=MIDI_MIME, kind="midi", origin=Provenance(session_id=sid)
        )
        await run(ihub, AddTake(op_id=op(), session=sid, section=sec, artifact=art.id))
        arts.append(art)
    # An upload with no session holding the same bytes as the first take keeps them alive.
    upload = await store_artifact(
        ihub, (MIDI_DIR / names[0]).read_bytes(), mime=MIDI_MIME, kind="upload"
    )
    other = (await run(ihub, CreateSession(op_id=op(), title="survivor")))["session"]
    other_art = await store_artifact(
        ihub, b"kept", mime="text/plain", kind="render", origin=Provenance(session_id=str(other))
    )

    # While the session lives, gc (even without grace) keeps all of its objects.
    live = await gc(ihub, grace_seconds=0)
    assert live.deleted == 0 and live.records_released == 0

    await run(ihub, DeleteSession(op_id=op(), session=sid))
    # The default grace period protects just-made records and objects.
    young = await gc(ihub)
    assert young.deleted == 0 and young.records_released == 0
    assert ihub.artifacts.get(arts[1].id).id == arts[1].id

    dry = await gc(ihub, grace_seconds=0, dry_run=True)
    assert dry.records_released == 2
    assert dry.deleted_digests == (arts[1].hash,)
    assert dry.bytes_freed == arts[1].size
    assert ihub.cas.has(arts[1].hash) and ihub.artifacts.get(arts[1].id).id == arts[1].id

    real = await gc(ihub, grace_seconds=0)
    assert real.records_released == 2
    assert real.deleted_digests == (arts[1].hash,)
    assert real.bytes_freed == arts[1].size
    assert not ihub.cas.has(arts[1].hash)
    assert ihub.cas.has(arts[0].hash)  # still the upload's bytes
    assert ihub.cas.has(other_art.hash) and ihub.artifacts.get(other_art.id).id == other_art.id
    assert ihub.artifacts.get(upload.id).hash == arts[0].hash
    for art in arts:
        with pytest.raises(HubError) as exc:
            ihub.artifacts.get(art.id)
        assert exc.value.code is ErrorCode.unknown_artifact
    announced = {
        e.event.artifact
        for e in ihub.core.log.read(0)
        if isinstance(e.event, ArtifactDeleted) and e.event.session == sid
    }
    assert announced == {a.id for a in arts}

    # Nothing left to do: a second run frees nothing.
    after = await gc(ihub, grace_seconds=0)
    assert (after.deleted, after.records_released) == (0, 0)
