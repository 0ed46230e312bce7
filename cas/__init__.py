"""Content-addressable store: sha256-addressed bytes on disk, verified on read."""

from cas.base import DEFAULT_MAX_OBJECT_SIZE, DEFAULT_MIME, BlobStore, BytesLike, StoredObject
from cas.digest import is_valid_digest, sha256_hex, validate_digest
from cas.errors import (
    CasError,
    CorruptObject,
    InvalidDigest,
    InvalidMime,
    ObjectNotFound,
    PayloadTooLarge,
)
from cas.store import CasStore

__all__ = [
    "DEFAULT_MAX_OBJECT_SIZE",
    "DEFAULT_MIME",
    "BlobStore",
    "BytesLike",
    "CasError",
    "CasStore",
    "CorruptObject",
    "InvalidDigest",
    "InvalidMime",
    "ObjectNotFound",
    "PayloadTooLarge",
    "StoredObject",
    "is_valid_digest",
    "sha256_hex",
    "validate_digest",
]
