"""The session archive format: member names, limits, the manifest, shared helpers.

Archive layout (format ``tutti.session-archive``, version 1), members in this order::

    manifest.json      format, versions, the session's id and title, counts
    events.jsonl       one session event per line: {"event": {...}, "cause", "group"}
    artifacts.json     the artifact records: every take's artifact + the session's own
    objects/<sha256>   the CAS bytes of those artifacts, sorted by hash

Why the events are *synthesised from the current state* rather than copied from
the log: the log may have been compacted (retention), so a log-based export
would work for young sessions and fail or need a second code path for old
ones. Synthesising always works, makes the archive a deterministic function of
the session (same session -> identical bytes), keeps its size proportional to
the session rather than to its edit history, and never carries references to
artifacts of takes that were removed long ago. The price: undo/redo history is
not carried; an imported session starts with an empty undo stack (its events
are recorded with cause ``system``, which is not undoable, like session creation).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from cas.errors import CasError
from hub.errors import ErrorCode, HubError
from hub.events import SessionEvent

ARCHIVE_FORMAT = "tutti.session-archive"
ARCHIVE_VERSION = 1
ARCHIVE_MIME = "application/zip"

MANIFEST = "manifest.json"
EVENTS = "events.jsonl"
ARTIFACTS = "artifacts.json"
OBJECTS_DIR = "objects/"

# Limits for untrusted archives (import). The per-object limit is the CAS's own.
MAX_ARCHIVE_BYTES = 256 * 1024 * 1024
MAX_UNCOMPRESSED_BYTES = 512 * 1024 * 1024
MAX_MEMBERS = 10_000
MAX_JSON_MEMBER_BYTES = 32 * 1024 * 1024  # events.jsonl / artifacts.json
MAX_MANIFEST_BYTES = 64 * 1024
MAX_EVENTS = 200_000

EVENT_ADAPTER: TypeAdapter[SessionEvent] = TypeAdapter(SessionEvent)


class ArchiveCounts(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    sections: int = Field(ge=0)
    takes: int = Field(ge=0)
    events: int = Field(ge=1)
    artifacts: int = Field(ge=0)
    objects: int = Field(ge=0)
    bytes: int = Field(ge=0)  # total size of the objects


class ArchiveSession(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(min_length=1, max_length=128)
    title: str = Field(max_length=200)


class Manifest(BaseModel):
    """``manifest.json``: what the archive holds, checked against its members on import."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str
    format_version: int
    hub_version: str = Field(max_length=64)
    session: ArchiveSession
    counts: ArchiveCounts
    events_source: str = "state"  # see the module docstring
    undo_history: bool = False


def invalid(message: str, **details: Any) -> HubError:
    return HubError(
        ErrorCode.validation_failed, f"invalid session archive: {message}", details=details
    )


def too_large(message: str, *, limit: int, **details: Any) -> HubError:
    return HubError(
        ErrorCode.payload_too_large,
        f"session archive too large: {message}",
        details={"limit": limit, **details},
    )


def cas_code(err: CasError) -> ErrorCode:
    return ErrorCode(err.code) if err.code in ErrorCode.__members__ else ErrorCode.internal_error
