"""The small JSON file beside each object that records its mime type and size.

A sidecar keeps the store self-describing (``tutti gc``, export and a plain
``ls`` need no database), and it is written before the object is renamed into
place: an object that exists always has its metadata, and a sidecar without an
object is just an unfinished put that the next put of the same bytes rewrites.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

SIDECAR_SUFFIX = ".meta"
_VERSION = 1


@dataclass(frozen=True, slots=True)
class Sidecar:
    size: int
    mime: str


def encode_sidecar(meta: Sidecar) -> bytes:
    return json.dumps(
        {"v": _VERSION, "size": meta.size, "mime": meta.mime}, separators=(",", ":")
    ).encode()


def decode_sidecar(raw: bytes) -> Sidecar | None:
    """Parse a sidecar; ``None`` when it is damaged (the caller falls back to defaults)."""
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return None
    if not isinstance(doc, dict):
        return None
    size, mime = doc.get("size"), doc.get("mime")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0:
        return None
    if not isinstance(mime, str) or not mime:
        return None
    return Sidecar(size=size, mime=mime)
