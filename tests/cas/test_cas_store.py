"""What the on-disk store promises beyond the contract: layout, durability, repair."""

from __future__ import annotations

import hashlib
import json
import os
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cas_testkit import INVALID_DIGESTS, corrupt_on_disk

from cas import CasStore, CorruptObject, InvalidDigest, PayloadTooLarge, StoredObject

DATA = b"MThd\x00\x00\x00\x06\x00\x01\x00\x01\x01\xe0"
DIGEST = hashlib.sha256(DATA).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> CasStore:
    return CasStore(tmp_path / "cas")


def files_under(root: Path) -> set[Path]:
    return {p.relative_to(root) for p in root.rglob("*") if p.is_file()}


def test_layout_is_two_char_folder_then_rest_with_json_sidecar(
    store: CasStore, tmp_path: Path
) -> None:
    store.put(DATA, mime="audio/midi")
    obj = Path("objects", DIGEST[:2], DIGEST[2:])
    assert files_under(store.root) == {obj, obj.with_name(obj.name + ".meta")}
    assert (store.root / obj).read_bytes() == DATA
    meta = json.loads((store.root / obj.with_name(obj.name + ".meta")).read_bytes())
    assert meta == {"v": 1, "size": len(DATA), "mime": "audio/midi"}
    assert store.path(DIGEST) == store.root / obj


def test_a_new_store_on_the_same_root_sees_everything(store: CasStore) -> None:
    a = store.put(DATA, mime="audio/midi")
    b = store.put(b"wav", mime="audio/wav")
    reopened = CasStore(store.root)
    assert reopened.stat(a.digest) == a
    assert reopened.stat(b.digest) == b
    assert reopened.get(a.digest) == DATA
    assert sorted(reopened.iter_digests()) == sorted([a.digest, b.digest])


def test_second_put_does_not_rewrite_the_file(store: CasStore) -> None:
    store.put(DATA, mime="audio/midi")
    before = os.stat(store.path(DIGEST))
    time.sleep(0.01)
    store.put(DATA, mime="audio/midi")
    store.put_stream([DATA[:3], DATA[3:]], mime="audio/midi")
    after = os.stat(store.path(DIGEST))
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert list((store.root / "tmp").iterdir()) == []


def test_no_temp_file_survives_a_rejected_or_failed_stream(store: CasStore) -> None:
    limited = CasStore(store.root, max_object_size=10)
    with pytest.raises(PayloadTooLarge):
        limited.put_stream([b"x" * 6, b"y" * 6])

    def broken() -> Iterator[bytes]:
        yield b"partial upload"
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.put_stream(broken())
    assert files_under(store.root) == set()


def test_crash_at_rename_leaves_no_object_and_no_temp(
    store: CasStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_replace = os.replace

    def failing_replace(src: str | Path, dst: str | Path) -> None:
        if not str(dst).endswith(".meta"):
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        store.put(DATA, mime="audio/midi")
    assert not store.has(DIGEST)
    assert list((store.root / "tmp").iterdir()) == []
    monkeypatch.setattr(os, "replace", real_replace)
    # The orphan sidecar is harmless and the next put completes the object.
    assert store.put(DATA, mime="text/plain") == StoredObject(DIGEST, len(DATA), "text/plain")
    assert store.get(DIGEST) == DATA


def test_file_is_fsynced_before_rename_and_folder_after(
    store: CasStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[str] = []
    real_fsync, real_replace = os.fsync, os.replace

    def spy_fsync(fd: int) -> None:
        calls.append("fsync-dir" if stat.S_ISDIR(os.fstat(fd).st_mode) else "fsync-file")
        real_fsync(fd)

    def spy_replace(src: str | Path, dst: str | Path) -> None:
        calls.append("rename-meta" if str(dst).endswith(".meta") else "rename-object")
        real_replace(src, dst)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    monkeypatch.setattr(os, "replace", spy_replace)
    store.put(DATA, mime="audio/midi")
    # Sidecar first (an object never exists without it), object last, one folder fsync
    # after the object's rename makes both names durable. Earlier entries are the new
    # shard folder being made durable in its parent.
    tail = calls[calls.index("fsync-file") :]
    assert tail == ["fsync-file", "rename-meta", "fsync-file", "rename-object", "fsync-dir"]
    assert "fsync-dir" in calls[: calls.index("fsync-file")]


def test_stream_put_is_fsynced_too(store: CasStore, monkeypatch: pytest.MonkeyPatch) -> None:
    synced: list[bool] = []
    real_fsync = os.fsync

    def spy_fsync(fd: int) -> None:
        synced.append(stat.S_ISDIR(os.fstat(fd).st_mode))
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", spy_fsync)
    store.put_stream([DATA], mime="audio/midi")
    assert synced.count(False) == 2  # sidecar and object
    assert synced[-1] is True


def test_truncated_object_is_repaired_by_the_next_put(store: CasStore) -> None:
    store.put(DATA, mime="audio/midi")
    store.path(DIGEST).write_bytes(DATA[:5])
    with pytest.raises(CorruptObject):
        store.get(DIGEST)
    assert store.put(DATA, mime="audio/midi").size == len(DATA)
    assert store.get(DIGEST) == DATA


def test_same_length_corruption_is_reported_by_verify_and_open(store: CasStore) -> None:
    store.put(DATA, mime="audio/midi")
    assert store.verify(DIGEST) == StoredObject(DIGEST, len(DATA), "audio/midi")
    corrupt_on_disk(store, DIGEST)
    with pytest.raises(CorruptObject):
        store.verify(DIGEST)
    reader = store.open(DIGEST)
    with pytest.raises(CorruptObject):
        reader.read()
    reader.close()


def test_lost_sidecar_means_default_mime_until_the_next_put_restores_it(store: CasStore) -> None:
    store.put(DATA, mime="audio/midi")
    sidecar = store.path(DIGEST).with_name(DIGEST[2:] + ".meta")
    sidecar.unlink()
    assert store.stat(DIGEST).mime == "application/octet-stream"
    assert store.put(DATA, mime="audio/midi").mime == "audio/midi"
    assert store.stat(DIGEST).mime == "audio/midi"
    sidecar.write_bytes(b"{not json")
    assert store.stat(DIGEST) == StoredObject(DIGEST, len(DATA), "application/octet-stream")


def test_delete_removes_object_and_sidecar(store: CasStore) -> None:
    store.put(DATA, mime="audio/midi")
    assert store.delete(DIGEST)
    assert files_under(store.root / "objects") == set()


def test_stray_files_are_not_objects(store: CasStore) -> None:
    stored = store.put(DATA)
    (store.root / "objects" / "README").write_text("hi")
    (store.root / "objects" / "zz").mkdir()
    (store.root / "objects" / "zz" / ("0" * 62)).write_text("not hex folder")
    (store.root / "objects" / DIGEST[:2] / "notes.txt").write_text("junk")
    assert list(store.iter_digests()) == [stored.digest]
    assert store.total_size() == len(DATA)


def test_put_file_streams_and_respects_limit(tmp_path: Path) -> None:
    store = CasStore(tmp_path / "cas", max_object_size=1000, chunk_size=64)
    source = tmp_path / "take.mid"
    source.write_bytes(DATA * 50)
    assert store.put_file(source, mime="audio/midi").digest == hashlib.sha256(DATA * 50).hexdigest()
    with pytest.raises(PayloadTooLarge):
        store.put_file(source, max_size=100)
    big = tmp_path / "big.bin"
    big.write_bytes(b"b" * 1001)
    with pytest.raises(PayloadTooLarge):
        store.put_file(big)


def test_stale_temp_files_are_removed_fresh_ones_kept(tmp_path: Path) -> None:
    store = CasStore(tmp_path / "cas")
    stale, fresh = store.root / "tmp" / "put-old.tmp", store.root / "tmp" / "put-new.tmp"
    stale.write_bytes(b"crashed put")
    fresh.write_bytes(b"put in flight")
    two_hours_ago = time.time() - 7200
    os.utime(stale, (two_hours_ago, two_hours_ago))
    CasStore(store.root)  # opening the store cleans up after a crash
    assert not stale.exists()
    assert fresh.exists()


@pytest.mark.parametrize("bad", INVALID_DIGESTS)
def test_traversal_digest_touches_nothing_outside_the_root(tmp_path: Path, bad: object) -> None:
    root = tmp_path / "deep" / "cas"
    victim = tmp_path / "deep" / "victim"
    store = CasStore(root)
    victim.write_bytes(b"keep me")
    for call in (
        store.get,
        store.has,
        store.stat,
        store.open,
        store.delete,
        store.path,
        store.verify,
    ):
        with pytest.raises(InvalidDigest):
            call(bad)  # type: ignore[arg-type]
    assert victim.read_bytes() == b"keep me"
    assert files_under(tmp_path) == {Path("deep", "victim")}


def test_invalid_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        CasStore(tmp_path, max_object_size=-1)
    with pytest.raises(ValueError):
        CasStore(tmp_path, chunk_size=0)
    with pytest.raises(ValueError):
        CasStore(tmp_path).put_stream([b"x"], max_size=-5)
