"""A file reader that checks the content hash as the bytes go by.

Serving an object should not need a second full read just to verify it, so the
reader hashes what it hands out and raises at end of data when the total does
not match the address. A consumer that stops early simply gets no verdict.
"""

from __future__ import annotations

import io
from typing import BinaryIO

from cas.digest import new_hasher
from cas.errors import CorruptObject


class VerifyingReader(io.RawIOBase):
    """Raw reader over ``source`` that raises :class:`CorruptObject` at EOF on a mismatch."""

    def __init__(self, source: BinaryIO, digest: str, *, expected_size: int | None = None) -> None:
        super().__init__()
        self._source = source
        self._digest = digest
        self._expected_size = expected_size
        self._hasher = new_hasher()
        self._seen = 0
        self._checked = False

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview | bytearray) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        chunk = self._source.read(len(view))
        n = len(chunk)
        if n == 0:
            self._verify()
            return 0
        view[:n] = chunk
        self._hasher.update(chunk)
        self._seen += n
        if self._expected_size is not None and self._seen > self._expected_size:
            self._fail("object is longer than recorded")
        return n

    def close(self) -> None:
        try:
            self._source.close()
        finally:
            super().close()

    def _verify(self) -> None:
        if self._checked:
            return
        # Marked only on success, so every later read at EOF raises again.
        if self._expected_size is not None and self._seen != self._expected_size:
            self._fail("object length differs from the recorded size")
        if self._hasher.hexdigest() != self._digest:
            self._fail("object bytes do not match their sha256 address")
        self._checked = True

    def _fail(self, why: str) -> None:
        raise CorruptObject(
            why,
            details={"digest": self._digest, "bytes_read": self._seen},
        )


def open_verified(source: BinaryIO, digest: str, *, expected_size: int | None = None) -> BinaryIO:
    """Wrap ``source`` in a buffered, verifying reader typed as a plain binary file."""
    raw = VerifyingReader(source, digest, expected_size=expected_size)
    return io.BufferedReader(raw)
