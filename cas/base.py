"""The blob-store interface: what the hub relies on, whatever holds the bytes.

:class:`CasStore` is the on-disk implementation; tests run one contract suite
against it and against an in-memory double to keep this interface honest.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import BinaryIO, Protocol, runtime_checkable

BytesLike = bytes | bytearray | memoryview
DEFAULT_MIME = "application/octet-stream"
DEFAULT_MAX_OBJECT_SIZE = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class StoredObject:
    """What the store knows about one object: its address, length and media type."""

    digest: str
    size: int
    mime: str


@runtime_checkable
class BlobStore(Protocol):
    """A content-addressed byte store (sha256, lowercase hex).

    Every method that takes a digest raises ``InvalidDigest`` for anything but 64
    lowercase hex characters, and ``ObjectNotFound`` when nothing is stored there.
    Storing bytes that are already present returns the existing object (the first
    mime type recorded wins: mime belongs to artifact records, bytes are bytes).
    """

    @property
    def max_object_size(self) -> int: ...

    def put(self, data: BytesLike, *, mime: str = DEFAULT_MIME) -> StoredObject: ...

    def put_stream(
        self, chunks: Iterable[bytes], *, mime: str = DEFAULT_MIME, max_size: int | None = None
    ) -> StoredObject:
        """Store an upload chunk by chunk; ``PayloadTooLarge`` as soon as it passes the limit."""
        ...

    def get(self, digest: str) -> bytes:
        """The bytes, verified against the digest (``CorruptObject`` otherwise)."""
        ...

    def open(self, digest: str) -> BinaryIO:
        """A reader that raises ``CorruptObject`` at end of data if the bytes do not verify."""
        ...

    def has(self, digest: str) -> bool: ...

    def stat(self, digest: str) -> StoredObject: ...

    def delete(self, digest: str) -> bool:
        """Remove the object; False when it was not there."""
        ...

    def iter_digests(self) -> Iterator[str]: ...

    def total_size(self) -> int: ...
