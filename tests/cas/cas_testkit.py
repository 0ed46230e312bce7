"""Shared pieces of the CAS tests: the in-memory double, harnesses and inputs.

The in-memory store is a test double; it exists so the contract suite is shown
to describe the interface, not the quirks of the on-disk store.
"""

from __future__ import annotations

import io
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cas import (
    DEFAULT_MAX_OBJECT_SIZE,
    DEFAULT_MIME,
    BlobStore,
    BytesLike,
    CasStore,
    CorruptObject,
    ObjectNotFound,
    PayloadTooLarge,
    StoredObject,
    sha256_hex,
    validate_digest,
)
from cas.mime import validate_mime
from cas.reader import open_verified

# Each must be refused with InvalidDigest before any file-system access.
INVALID_DIGESTS: list[object] = [
    "../../etc/passwd",
    "../" * 21 + "x",
    "/etc/passwd",
    "ab/../../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "",
    "a" * 63,
    "a" * 65,
    "A" * 64,
    "g" * 64,
    "a" * 63 + "\n",
    "a" * 64 + "\n",
    "\x00" + "a" * 63,
    "a" * 62 + "/x",
    "\u0660" * 64,  # Arabic-Indic zero: a Unicode digit, not hex
    " " + "a" * 63,
    None,
    123,
    b"a" * 64,
]


def split_into(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` as consecutive chunks split at the given offsets (clipped, sorted)."""
    points = sorted({min(c, len(data)) for c in cuts} | {0, len(data)})
    for start, end in itertools.pairwise(points):
        yield data[start:end]


class MemoryBlobStore:
    """Dict-backed blob store with the same observable behaviour as CasStore."""

    def __init__(self, max_object_size: int = DEFAULT_MAX_OBJECT_SIZE) -> None:
        self._max = max_object_size
        self._objects: dict[str, tuple[bytes, str]] = {}
        self._lock = threading.Lock()

    @property
    def max_object_size(self) -> int:
        return self._max

    def put(self, data: BytesLike, *, mime: str = DEFAULT_MIME) -> StoredObject:
        return self.put_stream([bytes(data)], mime=mime)

    def put_stream(
        self, chunks: Iterable[BytesLike], *, mime: str = DEFAULT_MIME, max_size: int | None = None
    ) -> StoredObject:
        mime = validate_mime(mime)
        limit = self._max if max_size is None else min(max_size, self._max)
        buf = bytearray()
        for chunk in chunks:
            buf += chunk
            if len(buf) > limit:
                raise PayloadTooLarge("too large", details={"limit": limit})
        data = bytes(buf)
        digest = sha256_hex(data)
        with self._lock:
            stored = self._objects.setdefault(digest, (data, mime))
        return StoredObject(digest, len(data), stored[1])

    def _entry(self, digest: str) -> tuple[bytes, str]:
        try:
            return self._objects[validate_digest(digest)]
        except KeyError:
            raise ObjectNotFound("missing", details={"digest": digest}) from None

    def get(self, digest: str) -> bytes:
        data, _ = self._entry(digest)
        if sha256_hex(data) != digest:
            raise CorruptObject("mismatch", details={"digest": digest})
        return data

    def open(self, digest: str) -> BinaryIO:
        data, _ = self._entry(digest)
        return open_verified(io.BytesIO(data), digest)

    def has(self, digest: str) -> bool:
        return validate_digest(digest) in self._objects

    def stat(self, digest: str) -> StoredObject:
        data, mime = self._entry(digest)
        return StoredObject(digest, len(data), mime)

    def delete(self, digest: str) -> bool:
        with self._lock:
            return self._objects.pop(validate_digest(digest), None) is not None

    def iter_digests(self) -> Iterator[str]:
        return iter(sorted(self._objects))

    def total_size(self) -> int:
        return sum(len(data) for data, _ in self._objects.values())

    def corrupt(self, digest: str) -> None:
        data, mime = self._objects[digest]
        self._objects[digest] = (_damaged(data), mime)


def _damaged(data: bytes) -> bytes:
    """Same length with one bit flipped (or one byte more when there is nothing to flip)."""
    if not data:
        return b"\x00"
    middle = len(data) // 2
    return data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :]


def corrupt_on_disk(store: CasStore, digest: str) -> None:
    path = store.path(digest)
    path.write_bytes(_damaged(path.read_bytes()))


@dataclass(frozen=True)
class Harness:
    """How to build one implementation and how to damage an object inside it."""

    name: str
    make: Callable[[int], BlobStore]
    corrupt: Callable[[BlobStore, str], None]


def disk_harness(root: Path) -> Harness:
    counter = iter(range(1_000_000))

    def make(max_object_size: int) -> BlobStore:
        return CasStore(root / f"store{next(counter)}", max_object_size=max_object_size)

    def corrupt(store: BlobStore, digest: str) -> None:
        assert isinstance(store, CasStore)
        corrupt_on_disk(store, digest)

    return Harness("disk", make, corrupt)


def memory_harness() -> Harness:
    def corrupt(store: BlobStore, digest: str) -> None:
        assert isinstance(store, MemoryBlobStore)
        store.corrupt(digest)

    return Harness("memory", MemoryBlobStore, corrupt)
