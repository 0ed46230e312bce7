"""The on-disk content-addressable store.

Layout under ``root``::

    objects/ab/cdef…        the bytes whose sha256 is ``abcdef…`` (62 chars after the folder)
    objects/ab/cdef….meta   JSON sidecar: size and mime type
    tmp/                    temp files of puts in flight (same file system, so rename is atomic)

Every write goes temp file -> fsync -> rename -> fsync folder, so a crash leaves
either no object or a whole one, never a torn file under a valid address.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from cas.base import DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MIME, BytesLike, StoredObject
from cas.digest import is_valid_digest, new_hasher, sha256_hex, validate_digest
from cas.errors import CorruptObject, ObjectNotFound, PayloadTooLarge
from cas.fsutil import commit_temp, discard_temp, ensure_dir, fsync_dir, open_temp, write_atomic
from cas.mime import validate_mime
from cas.reader import open_verified
from cas.sidecar import SIDECAR_SUFFIX, Sidecar, decode_sidecar, encode_sidecar

_CHUNK = 1024 * 1024
_LOCK_STRIPES = 64
_SHARD_LEN = 2
_STALE_TEMP_S = 3600.0


class CasStore:
    """sha256-addressed byte store in a folder; safe for concurrent use from threads.

    Concurrent puts of the same bytes are serialised per digest inside the process;
    across processes they are still safe because both write identical bytes and the
    final step is an atomic rename.
    """

    def __init__(
        self,
        root: Path | str,
        *,
        max_object_size: int = DEFAULT_MAX_OBJECT_SIZE,
        chunk_size: int = _CHUNK,
    ) -> None:
        if max_object_size < 0:
            raise ValueError("max_object_size must be >= 0")
        if chunk_size <= 0:
            raise ValueError("chunk_size must be > 0")
        self._root = Path(root)
        self._objects = self._root / "objects"
        self._tmp = self._root / "tmp"
        self._max_object_size = max_object_size
        self._chunk_size = chunk_size
        # Striped locks: bounded memory, and puts of different content rarely contend.
        self._locks = tuple(threading.Lock() for _ in range(_LOCK_STRIPES))
        ensure_dir(self._objects)
        ensure_dir(self._tmp)
        self.remove_stale_temp()

    # -- properties ---------------------------------------------------------------

    @property
    def root(self) -> Path:
        return self._root

    @property
    def max_object_size(self) -> int:
        return self._max_object_size

    # -- writing --------------------------------------------------------------------

    def put(self, data: BytesLike, *, mime: str = DEFAULT_MIME) -> StoredObject:
        """Store ``data``; returns the existing object untouched if the bytes are already here."""
        mime = validate_mime(mime)
        payload = bytes(data)
        self._check_size(len(payload), self._max_object_size)
        digest = sha256_hex(payload)
        with self._lock_for(digest):
            existing = self._existing(digest, len(payload), mime)
            if existing is not None:
                return existing
            shard = self._shard_dir(digest)
            ensure_dir(shard)
            self._write_sidecar(digest, Sidecar(len(payload), mime), sync_dir=False)
            write_atomic(self._object_path(digest), payload, self._tmp)
        return StoredObject(digest, len(payload), mime)

    def put_stream(
        self,
        chunks: Iterable[BytesLike],
        *,
        mime: str = DEFAULT_MIME,
        max_size: int | None = None,
    ) -> StoredObject:
        """Store bytes arriving in chunks, hashing as they come.

        Raises :class:`PayloadTooLarge` as soon as the running total passes
        ``min(max_size, max_object_size)``; nothing is kept in that case.
        """
        mime = validate_mime(mime)
        limit = self._effective_limit(max_size)
        handle, temp = open_temp(self._tmp)
        try:
            hasher = new_hasher()
            size = 0
            for chunk in chunks:
                size += len(chunk)
                self._check_size(size, limit, streaming=True)
                hasher.update(chunk)
                handle.write(chunk)
            digest = hasher.hexdigest()
            with self._lock_for(digest):
                existing = self._existing(digest, size, mime)
                if existing is not None:
                    discard_temp(handle, temp)
                    return existing
                ensure_dir(self._shard_dir(digest))
                self._write_sidecar(digest, Sidecar(size, mime), sync_dir=False)
                commit_temp(handle, temp, self._object_path(digest))
        except BaseException:
            discard_temp(handle, temp)
            raise
        return StoredObject(digest, size, mime)

    def put_file(
        self, path: Path | str, *, mime: str = DEFAULT_MIME, max_size: int | None = None
    ) -> StoredObject:
        """Store the contents of a file, streamed (the size limit applies while reading)."""
        with open(path, "rb") as source:
            return self.put_stream(
                iter(lambda: source.read(self._chunk_size), b""), mime=mime, max_size=max_size
            )

    # -- reading --------------------------------------------------------------------

    def get(self, digest: str) -> bytes:
        """The object's bytes, verified against its digest."""
        path = self._object_path(digest)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            raise self._not_found(digest) from None
        if sha256_hex(data) != digest:
            raise CorruptObject(
                "object bytes do not match their sha256 address",
                details={"digest": digest, "size": len(data)},
            )
        return data

    def open(self, digest: str) -> BinaryIO:
        """A binary reader that raises :class:`CorruptObject` at end of data on a mismatch."""
        path = self._object_path(digest)
        try:
            source = path.open("rb")
        except FileNotFoundError:
            raise self._not_found(digest) from None
        return open_verified(source, digest)

    def path(self, digest: str) -> Path:
        """The object's file, for zero-copy serving (``sendfile``).

        Not verified on its own: call :meth:`verify` first when the caller cannot
        tolerate serving damaged bytes, or use :meth:`open`.
        """
        path = self._object_path(digest)
        if not path.is_file():
            raise self._not_found(digest)
        return path

    def verify(self, digest: str) -> StoredObject:
        """Re-hash the object on disk; :class:`CorruptObject` if it no longer matches."""
        info = self.stat(digest)
        with self.open(digest) as reader:
            while reader.read(self._chunk_size):
                pass
        return info

    def has(self, digest: str) -> bool:
        return self._object_path(digest).is_file()

    def stat(self, digest: str) -> StoredObject:
        path = self._object_path(digest)
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise self._not_found(digest) from None
        meta = self._read_sidecar(digest)
        # The file length is the truth (it is what gets served); the sidecar gives the mime.
        return StoredObject(digest, size, meta.mime if meta is not None else DEFAULT_MIME)

    # -- maintenance ------------------------------------------------------------------

    def delete(self, digest: str) -> bool:
        """Remove the object and its sidecar; False when it was not stored."""
        path = self._object_path(digest)
        with self._lock_for(digest):
            try:
                path.unlink()
            except FileNotFoundError:
                return False
            with contextlib.suppress(FileNotFoundError):
                self._sidecar_path(digest).unlink()
            fsync_dir(path.parent)
        return True

    def iter_digests(self) -> Iterator[str]:
        """Every stored digest, in sorted order (temp files and sidecars are skipped)."""
        for shard, name, _ in self._scan():
            yield shard + name

    def total_size(self) -> int:
        """Sum of the stored objects' sizes in bytes (sidecars not counted)."""
        return sum(size for _, _, size in self._scan())

    def remove_stale_temp(self, older_than_s: float = _STALE_TEMP_S) -> int:
        """Delete temp files left by crashed puts; returns how many were removed."""
        cutoff = time.time() - older_than_s
        removed = 0
        for entry in os.scandir(self._tmp):
            with contextlib.suppress(FileNotFoundError):
                if entry.is_file() and entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
                    removed += 1
        return removed

    # -- internals ----------------------------------------------------------------------

    def _scan(self) -> Iterator[tuple[str, str, int]]:
        for shard in sorted(os.listdir(self._objects)):
            shard_path = self._objects / shard
            if len(shard) != _SHARD_LEN or not shard_path.is_dir():
                continue
            with os.scandir(shard_path) as entries:
                found = sorted(
                    (e.name, e.stat().st_size)
                    for e in entries
                    if e.is_file() and is_valid_digest(shard + e.name)
                )
            for name, size in found:
                yield shard, name, size

    def _existing(self, digest: str, size: int, mime: str) -> StoredObject | None:
        """The stored object if these bytes are already present and intact in length."""
        try:
            on_disk = self._object_path(digest).stat().st_size
        except FileNotFoundError:
            return None
        if on_disk != size:
            # A truncated file under this address: rewrite it from the good bytes we hold.
            return None
        meta = self._read_sidecar(digest)
        if meta is None:
            # Sidecar lost or damaged: restore it instead of serving the default mime forever.
            meta = Sidecar(size, mime)
            self._write_sidecar(digest, meta, sync_dir=True)
        return StoredObject(digest, size, meta.mime)

    def _read_sidecar(self, digest: str) -> Sidecar | None:
        try:
            return decode_sidecar(self._sidecar_path(digest).read_bytes())
        except FileNotFoundError:
            return None

    def _write_sidecar(self, digest: str, meta: Sidecar, *, sync_dir: bool) -> None:
        write_atomic(self._sidecar_path(digest), encode_sidecar(meta), self._tmp, sync_dir=sync_dir)

    def _object_path(self, digest: str) -> Path:
        digest = validate_digest(digest)  # the path-traversal guard: only [0-9a-f]{64} gets here
        return self._objects / digest[:_SHARD_LEN] / digest[_SHARD_LEN:]

    def _sidecar_path(self, digest: str) -> Path:
        path = self._object_path(digest)
        return path.with_name(path.name + SIDECAR_SUFFIX)

    def _shard_dir(self, digest: str) -> Path:
        return self._object_path(digest).parent

    def _lock_for(self, digest: str) -> threading.Lock:
        return self._locks[int(digest[:4], 16) % _LOCK_STRIPES]

    def _effective_limit(self, max_size: int | None) -> int:
        if max_size is None:
            return self._max_object_size
        if max_size < 0:
            raise ValueError("max_size must be >= 0")
        return min(max_size, self._max_object_size)

    @staticmethod
    def _check_size(size: int, limit: int, *, streaming: bool = False) -> None:
        if size > limit:
            key = "received_at_least" if streaming else "size"
            raise PayloadTooLarge(
                f"object is larger than the {limit}-byte limit",
                details={"limit": limit, key: size},
            )

    @staticmethod
    def _not_found(digest: str) -> ObjectNotFound:
        return ObjectNotFound("no object is stored under this hash", details={"digest": digest})

    def __repr__(self) -> str:
        return f"CasStore({str(self._root)!r}, max_object_size={self._max_object_size})"
