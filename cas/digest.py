"""The one hash convention of Tutti: sha256 of the bytes, lowercase hex.

``validate_digest`` is also the path-traversal guard: a digest that passes is
exactly 64 characters from ``[0-9a-f]``, so it can never contain a separator,
``..``, a drive letter or a NUL when it becomes part of a file path.
"""

from __future__ import annotations

import hashlib
import re

from cas.errors import InvalidDigest

DIGEST_LENGTH = 64
_DIGEST_RE = re.compile(r"[0-9a-f]{64}")


def sha256_hex(data: bytes | bytearray | memoryview) -> str:
    """Digest of ``data`` in the store's address format."""
    return hashlib.sha256(data).hexdigest()


def new_hasher() -> hashlib._Hash:
    """A streaming hasher whose ``hexdigest()`` matches :func:`sha256_hex`."""
    return hashlib.sha256()


def is_valid_digest(value: object) -> bool:
    """True when ``value`` is a str of exactly 64 lowercase hex characters."""
    # fullmatch, not match + "$": "$" would accept a trailing newline.
    return isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None


def validate_digest(value: object) -> str:
    """Return ``value`` unchanged if it is a valid digest, else raise :class:`InvalidDigest`."""
    if isinstance(value, str) and _DIGEST_RE.fullmatch(value) is not None:
        return value
    shown = value[:80] if isinstance(value, str) else type(value).__name__
    raise InvalidDigest(
        "a content hash must be 64 lowercase hex characters (sha256)",
        details={"digest": shown},
    )
