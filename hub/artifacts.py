"""Artifact records: what a stored object is, where it came from and what it belongs to.

An artifact has its own random id, never the content hash: two jobs can make
identical bytes, and each result still needs its own lineage (job, variation,
parent), tags and metadata. The bytes live in the CAS; this module only keeps
the records, in the hub's SQLite database.

Transactions: each write runs in one transaction. On the hub's
:class:`hub.sqlite.Database` that is ``Database.transaction()`` (so an artifact
can be added in the same transaction as the event that announces it); on a plain
``sqlite3.Connection`` a write opens ``BEGIN IMMEDIATE`` under ``with conn:``, or,
when the caller already has a transaction open, joins it through a savepoint
and leaves the commit to the caller, so we never commit someone else's work.
"""

from __future__ import annotations

import builtins
import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from hub.errors import ErrorCode, HubError
from hub.ids import ARTIFACT, new_id
from hub.sqlite import Database

ArtifactKind = Literal[
    "midi",  # a finished MIDI result (take candidate, transform output)
    "partial_midi",  # MIDI written mid-generation so a DAW can play what exists so far
    "audio",
    "embedding",
    "render",  # a session or section rendered to one file
    "upload",  # bytes a client sent (POST /cas, inbox)
    "analysis",
    "archive",  # a session export
]
ARTIFACT_KINDS: tuple[str, ...] = get_args(ArtifactKind)

ARTIFACT_ID_PATTERN = r"^art_[0-9a-f]{16}$"
DEFAULT_LIST_LIMIT = 100
MAX_LIST_LIMIT = 1000
MAX_TAGS = 64
MAX_TAG_LENGTH = 64
MAX_METADATA_BYTES = 64 * 1024
_REF_MAX = 200  # session / section / job / variation-set / creator ids


def new_artifact_id() -> str:
    """``art_`` + 16 random hex characters (64 bits): unguessable, never content-derived."""
    return new_id(ARTIFACT)


class ArtifactNotFound(HubError, LookupError):
    """No artifact has this id (never created, or deleted)."""

    def __init__(self, artifact_id: str, *, role: str = "artifact") -> None:
        super().__init__(
            ErrorCode.unknown_artifact,
            f"{role} {artifact_id!r} not found",
            details={"artifact_id": artifact_id, "role": role},
        )
        self.artifact_id = artifact_id


class Artifact(BaseModel):
    """One artifact record. Immutable; updates return a new record."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str = Field(pattern=ARTIFACT_ID_PATTERN)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$", description="sha256 of the bytes in the CAS")
    mime: str = Field(min_length=3, max_length=255)
    size: int = Field(ge=0)
    kind: ArtifactKind
    session_id: str | None = Field(None, min_length=1, max_length=_REF_MAX)
    section_id: str | None = Field(None, min_length=1, max_length=_REF_MAX)
    job_id: str | None = Field(None, min_length=1, max_length=_REF_MAX)
    variation_index: int | None = Field(None, ge=0)
    variation_set: str | None = Field(None, min_length=1, max_length=_REF_MAX)
    parent_id: str | None = Field(None, pattern=ARTIFACT_ID_PATTERN)
    tags: list[str] = Field(default_factory=list, max_length=MAX_TAGS)
    creator: str | None = Field(None, min_length=1, max_length=_REF_MAX)
    filename: str | None = Field(None, min_length=1, max_length=255)
    metadata: dict[str, Any] = Field(default_factory=dict)
    created_at: float

    @field_validator("tags")
    @classmethod
    def _tags(cls, tags: list[str]) -> list[str]:
        for tag in tags:
            if not 1 <= len(tag) <= MAX_TAG_LENGTH or not tag.isprintable() or tag != tag.strip():
                raise ValueError(
                    f"tag {tag[:80]!r}: 1-{MAX_TAG_LENGTH} printable characters, no outer spaces"
                )
        return list(dict.fromkeys(tags))  # drop repeats, keep first-seen order

    @field_validator("filename")
    @classmethod
    def _filename(cls, name: str | None) -> str | None:
        # Exports and downloads build paths from this, so it must be a bare name.
        if name is None:
            return None
        if name in {".", ".."} or any(c in name for c in "/\\\x00") or not name.isprintable():
            raise ValueError("filename must be a plain file name (no folders, no control chars)")
        return name

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, metadata: dict[str, Any]) -> dict[str, Any]:
        # Round-trip through JSON so the record equals what a later read returns
        # (tuples become lists) and anything SQLite could not store fails now.
        try:
            encoded = json.dumps(metadata, allow_nan=False, separators=(",", ":"))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"metadata must be JSON (no NaN/Infinity): {exc}") from None
        if len(encoded.encode()) > MAX_METADATA_BYTES:
            raise ValueError(f"metadata is larger than {MAX_METADATA_BYTES} bytes as JSON")
        decoded: dict[str, Any] = json.loads(encoded)
        return decoded


_COLUMNS = (
    "id",
    "hash",
    "mime",
    "size",
    "kind",
    "session_id",
    "section_id",
    "job_id",
    "variation_index",
    "variation_set",
    "parent_id",
    "tags",
    "creator",
    "filename",
    "metadata",
    "created_at",
)
_SELECT = f"SELECT {', '.join(_COLUMNS)} FROM artifacts"

_SCHEMA = (
    # seq: insertion order, never reused (AUTOINCREMENT), so listing order is stable
    # and survives deletes; tags are kept in the row (in order) and indexed beside it.
    """
    CREATE TABLE IF NOT EXISTS artifacts (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        hash TEXT NOT NULL,
        mime TEXT NOT NULL,
        size INTEGER NOT NULL,
        kind TEXT NOT NULL,
        session_id TEXT,
        section_id TEXT,
        job_id TEXT,
        variation_index INTEGER,
        variation_set TEXT,
        parent_id TEXT,
        tags TEXT NOT NULL DEFAULT '[]',
        creator TEXT,
        filename TEXT,
        metadata TEXT NOT NULL DEFAULT '{}',
        created_at REAL NOT NULL
    )
    """,
    "CREATE INDEX IF NOT EXISTS artifacts_session ON artifacts (session_id, seq)",
    "CREATE INDEX IF NOT EXISTS artifacts_section ON artifacts (section_id, seq)",
    "CREATE INDEX IF NOT EXISTS artifacts_job ON artifacts (job_id, seq)",
    "CREATE INDEX IF NOT EXISTS artifacts_hash ON artifacts (hash)",
    """
    CREATE TABLE IF NOT EXISTS artifact_tags (
        tag TEXT NOT NULL,
        artifact_id TEXT NOT NULL REFERENCES artifacts (id) ON DELETE CASCADE,
        PRIMARY KEY (tag, artifact_id)
    ) WITHOUT ROWID
    """,
    "CREATE INDEX IF NOT EXISTS artifact_tags_artifact ON artifact_tags (artifact_id)",
)


class ArtifactStore:
    """Artifact records in the hub's SQLite database (tables ``artifacts``, ``artifact_tags``)."""

    def __init__(
        self,
        conn: sqlite3.Connection,
        *,
        clock: Callable[[], float] = time.time,
        id_factory: Callable[[], str] = new_artifact_id,
    ) -> None:
        self._conn = conn
        self._clock = clock
        self._new_id = id_factory
        # The hub's Database carries the lock every user of the connection shares.
        self._lock: contextlib.AbstractContextManager[Any] = (
            conn.lock if isinstance(conn, Database) else threading.RLock()
        )
        with self._write():
            for statement in _SCHEMA:
                self._conn.execute(statement)

    # -- writes -------------------------------------------------------------------------

    def add(
        self,
        *,
        hash: str,
        mime: str,
        size: int,
        kind: ArtifactKind,
        session_id: str | None = None,
        section_id: str | None = None,
        job_id: str | None = None,
        variation_index: int | None = None,
        variation_set: str | None = None,
        parent_id: str | None = None,
        tags: Iterable[str] = (),
        creator: str | None = None,
        filename: str | None = None,
        metadata: Mapping[str, Any] | None = None,
        created_at: float | None = None,
        artifact_id: str | None = None,
    ) -> Artifact:
        """Record a new artifact for bytes already in the CAS.

        ``artifact_id`` is for restoring an archive with its original ids; otherwise a
        fresh random id is made. A ``parent_id`` must name an existing artifact.
        """
        artifact = _validated(
            id=artifact_id if artifact_id is not None else self._new_id(),
            hash=hash,
            mime=mime,
            size=size,
            kind=kind,
            session_id=session_id,
            section_id=section_id,
            job_id=job_id,
            variation_index=variation_index,
            variation_set=variation_set,
            parent_id=parent_id,
            tags=builtins.list(tags),
            creator=creator,
            filename=filename,
            metadata=dict(metadata or {}),
            created_at=self._clock() if created_at is None else created_at,
        )
        with self._write():
            if parent_id is not None and self._find(parent_id) is None:
                raise ArtifactNotFound(parent_id, role="parent artifact")
            try:
                self._conn.execute(
                    f"INSERT INTO artifacts ({', '.join(_COLUMNS)}) "
                    f"VALUES ({', '.join('?' * len(_COLUMNS))})",
                    _to_row(artifact),
                )
            except sqlite3.IntegrityError:
                raise HubError(
                    ErrorCode.conflict,
                    f"artifact {artifact.id!r} already exists",
                    details={"artifact_id": artifact.id},
                ) from None
            self._insert_tags(artifact.id, artifact.tags)
        return artifact

    def delete(self, artifact_id: str) -> Artifact:
        """Remove the record and return it (its hash may now be garbage).

        Children keep their ``parent_id``: lineage records what happened, even
        after the parent's record is gone.
        """
        with self._write():
            artifact = self.get(artifact_id)
            self._conn.execute("DELETE FROM artifact_tags WHERE artifact_id = ?", (artifact_id,))
            self._conn.execute("DELETE FROM artifacts WHERE id = ?", (artifact_id,))
        return artifact

    def update_metadata(
        self, artifact_id: str, metadata: Mapping[str, Any], *, replace: bool = False
    ) -> Artifact:
        """Merge ``metadata`` into the record's top-level keys (or replace it all)."""
        with self._write():
            current = self.get(artifact_id)
            merged = dict(metadata) if replace else {**current.metadata, **metadata}
            updated = _validated(**{**current.model_dump(), "metadata": merged})
            self._conn.execute(
                "UPDATE artifacts SET metadata = ? WHERE id = ?",
                (_json(updated.metadata), artifact_id),
            )
        return updated

    def set_tags(self, artifact_id: str, tags: Iterable[str]) -> Artifact:
        """Replace the record's tags."""
        with self._write():
            current = self.get(artifact_id)
            updated = _validated(**{**current.model_dump(), "tags": builtins.list(tags)})
            self._conn.execute(
                "UPDATE artifacts SET tags = ? WHERE id = ?", (_json(updated.tags), artifact_id)
            )
            self._conn.execute("DELETE FROM artifact_tags WHERE artifact_id = ?", (artifact_id,))
            self._insert_tags(artifact_id, updated.tags)
        return updated

    # -- reads --------------------------------------------------------------------------

    def get(self, artifact_id: str) -> Artifact:
        found = self._find(artifact_id)
        if found is None:
            raise ArtifactNotFound(artifact_id)
        return found

    def list(
        self,
        *,
        session_id: str | None = None,
        section_id: str | None = None,
        job_id: str | None = None,
        kind: str | None = None,
        tag: str | None = None,
        hash: str | None = None,
        limit: int = DEFAULT_LIST_LIMIT,
        after: str | None = None,
    ) -> builtins.list[Artifact]:
        """Matching records, oldest first (insertion order), at most ``limit``.

        ``after`` is the id of the last record of the previous page; paging this
        way neither skips nor repeats records while others are added or deleted
        (as long as that cursor record itself still exists).
        """
        if not 1 <= limit <= MAX_LIST_LIMIT:
            raise _invalid("limit", f"limit must be between 1 and {MAX_LIST_LIMIT}", limit)
        if kind is not None and kind not in ARTIFACT_KINDS:
            raise _invalid("kind", f"kind must be one of {', '.join(ARTIFACT_KINDS)}", kind)
        where: builtins.list[str] = []
        params: builtins.list[Any] = []
        for column, value in (
            ("session_id", session_id),
            ("section_id", section_id),
            ("job_id", job_id),
            ("kind", kind),
            ("hash", hash),
        ):
            if value is not None:
                where.append(f"{column} = ?")
                params.append(value)
        if tag is not None:
            where.append(
                "EXISTS (SELECT 1 FROM artifact_tags t WHERE t.artifact_id = artifacts.id"
                " AND t.tag = ?)"
            )
            params.append(tag)
        with self._lock:
            if after is not None:
                cursor = self._rows("SELECT seq FROM artifacts WHERE id = ?", (after,))
                if not cursor:
                    raise ArtifactNotFound(after, role="cursor artifact")
                where.append("seq > ?")
                params.append(cursor[0][0])
            sql = _SELECT + (f" WHERE {' AND '.join(where)}" if where else "")
            rows = self._rows(sql + " ORDER BY seq LIMIT ?", (*params, limit))
        return [_from_row(row) for row in rows]

    def referenced_hashes(self) -> set[str]:
        """Every hash some artifact points at: the CAS objects GC must keep."""
        with self._lock:
            return {row[0] for row in self._rows("SELECT DISTINCT hash FROM artifacts", ())}

    def hashes_for_session(self, session_id: str) -> set[str]:
        """Hashes of the session's artifacts (for export archives)."""
        with self._lock:
            rows = self._rows(
                "SELECT DISTINCT hash FROM artifacts WHERE session_id = ?", (session_id,)
            )
        return {row[0] for row in rows}

    # -- internals ----------------------------------------------------------------------

    @contextlib.contextmanager
    def _write(self) -> Iterator[None]:
        conn = self._conn
        if isinstance(conn, Database):
            with conn.transaction():
                yield
            return
        with self._lock:
            if conn.in_transaction:
                # The caller's transaction: join it, let the caller decide about COMMIT.
                conn.execute("SAVEPOINT artifact_store")
                try:
                    yield
                except BaseException:
                    conn.execute("ROLLBACK TO artifact_store")
                    conn.execute("RELEASE artifact_store")
                    raise
                conn.execute("RELEASE artifact_store")
            else:
                with conn:  # COMMIT on success, ROLLBACK on error
                    conn.execute("BEGIN IMMEDIATE")
                    yield

    def _find(self, artifact_id: str) -> Artifact | None:
        with self._lock:
            rows = self._rows(_SELECT + " WHERE id = ?", (artifact_id,))
        return _from_row(rows[0]) if rows else None

    def _insert_tags(self, artifact_id: str, tags: Iterable[str]) -> None:
        self._conn.executemany(
            "INSERT INTO artifact_tags (tag, artifact_id) VALUES (?, ?)",
            [(tag, artifact_id) for tag in tags],
        )

    def _rows(self, sql: str, params: tuple[Any, ...]) -> builtins.list[tuple[Any, ...]]:
        # Our own cursor with plain tuples: another module may set the connection's
        # row_factory, and that must not change how we read our rows.
        cur = self._conn.cursor()
        cur.row_factory = None
        try:
            return cur.execute(sql, params).fetchall()
        finally:
            cur.close()


def _validated(**fields: Any) -> Artifact:
    try:
        return Artifact.model_validate(fields)
    except ValidationError as exc:
        raise HubError(
            ErrorCode.validation_failed,
            "invalid artifact record",
            details={"errors": json.loads(exc.json(include_url=False))},
        ) from None


def _invalid(field: str, message: str, value: object) -> HubError:
    return HubError(
        ErrorCode.validation_failed, message, details={"field": field, "value": repr(value)[:80]}
    )


def _json(value: Any) -> str:
    return json.dumps(value, allow_nan=False, separators=(",", ":"))


def _to_row(artifact: Artifact) -> tuple[Any, ...]:
    values = artifact.model_dump()
    values["tags"] = _json(artifact.tags)
    values["metadata"] = _json(artifact.metadata)
    return tuple(values[column] for column in _COLUMNS)


def _from_row(row: tuple[Any, ...]) -> Artifact:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["tags"] = json.loads(values["tags"])
    values["metadata"] = json.loads(values["metadata"])
    return Artifact.model_validate(values)
