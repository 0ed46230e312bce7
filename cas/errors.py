"""Errors raised by the content-addressable store.

One root, :class:`CasError`, so a caller (the hub's HTTP routes, the GC) can
catch everything the store raises on purpose and translate ``code`` into its
wire error. The codes match the hub's documented error codes.
"""

from __future__ import annotations

from typing import Any, ClassVar


class CasError(Exception):
    """Root of every error the store raises on purpose."""

    default_code: ClassVar[str] = "cas_error"

    def __init__(self, message: str, *, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code: str = self.default_code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.code!r}, {self.message!r}, {self.details!r})"


class ObjectNotFound(CasError, LookupError):
    """No object with this digest is stored."""

    default_code = "not_found"


class CorruptObject(CasError):
    """The stored bytes no longer hash to their address (disk rot, tampering)."""

    default_code = "corrupt_object"


class PayloadTooLarge(CasError):
    """The object is larger than the store's (or the call's) size limit."""

    default_code = "payload_too_large"


class InvalidDigest(CasError, ValueError):
    """The string is not 64 lowercase hex characters (also the path-traversal guard)."""

    default_code = "invalid_digest"


class InvalidMime(CasError, ValueError):
    """The mime type is not a plain ``type/subtype[; params]`` string."""

    default_code = "validation_failed"
