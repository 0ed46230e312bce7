"""Bytes that become artifacts: uploads, job outputs, renders; plus analysis.

Every new artifact gets musical metadata (MIDI), a record, an export file where
it belongs, and a durable ``file.ready`` event for subscribers.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cas.errors import CasError
from engines.errors import EngineError
from hub.artifacts import Artifact
from hub.errors import ErrorCode, HubError
from hub.events import ArtifactRef, FileReady
from hub.render import render_section, render_session

if TYPE_CHECKING:
    from hub.runtime import Hub

MIDI_MIME = "audio/midi"
MIDI_MIMES = frozenset({"audio/midi", "audio/x-midi", "audio/mid"})


def midi_metadata(data: bytes) -> dict[str, Any]:
    """Musical metadata of MIDI bytes, or a structured ``invalid_midi`` error."""
    from engines.analysis.metadata import compute_metadata

    try:
        return compute_metadata(data).model_dump(mode="json")
    except EngineError as err:
        raise HubError(ErrorCode.invalid_midi, err.message, details=err.details) from err


def artifact_url(artifact: Artifact) -> str:
    return f"/cas/{artifact.hash}"


def artifact_ref(artifact: Artifact) -> ArtifactRef:
    return ArtifactRef(
        id=artifact.id,
        hash=artifact.hash,
        url=artifact_url(artifact),
        mime=artifact.mime,
        size=artifact.size,
        kind=artifact.kind,
        filename=artifact.filename,
        variation_index=artifact.variation_index,
        metadata=artifact.metadata,
    )


def file_ready(artifact: Artifact, export_path: Path | None = None) -> FileReady:
    return FileReady(
        artifact=artifact.id,
        hash=artifact.hash,
        url=artifact_url(artifact),
        mime=artifact.mime,
        size=artifact.size,
        filename=artifact.filename,
        kind=artifact.kind,
        session=artifact.session_id,
        section=artifact.section_id,
        job=artifact.job_id,
        export_path=str(export_path) if export_path else None,
        metadata=artifact.metadata,
    )


_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def safe_name(name: str, *, default: str = "file") -> str:
    """A file name that cannot leave its folder (no separators, no dot-dot)."""
    base = _UNSAFE.sub("-", name.replace("\\", "/").split("/")[-1]).strip(".-")
    return base[:120] or default


@dataclass(frozen=True)
class Provenance:
    """Where an artifact comes from: its lineage and the name people will see."""

    filename: str | None = None
    session_id: str | None = None
    section_id: str | None = None
    job_id: str | None = None
    variation_index: int | None = None
    parent_id: str | None = None
    creator: str | None = None


async def store_artifact(
    hub: Hub,
    data: bytes,
    *,
    mime: str,
    kind: str,
    origin: Provenance = Provenance(),
    metadata: dict[str, Any] | None = None,
    announce: bool = True,
) -> Artifact:
    """Put bytes in the CAS, record the artifact, and announce it with ``file.ready``."""
    limit = hub.config.limits.max_upload_bytes
    if len(data) > limit:
        raise HubError(
            ErrorCode.payload_too_large,
            f"{len(data)} bytes is over the {limit}-byte limit",
            details={"size": len(data), "limit": limit},
        )
    meta = dict(metadata or {})
    if mime in MIDI_MIMES:
        mime = MIDI_MIME
        meta.update(await asyncio.to_thread(midi_metadata, data))
    try:
        stored = await asyncio.to_thread(hub.cas.put, data, mime=mime)
    except CasError as err:
        code = ErrorCode.__members__.get(err.code, ErrorCode.internal_error)
        raise HubError(code, err.message, details=dict(err.details)) from err
    return await record_artifact(
        hub, digest=stored.digest, size=stored.size, mime=mime, kind=kind, origin=origin,
        metadata=meta, announce=announce,
    )


async def record_artifact(
    hub: Hub,
    *,
    digest: str,
    size: int,
    mime: str,
    kind: str,
    origin: Provenance = Provenance(),
    metadata: dict[str, Any] | None = None,
    announce: bool = True,
) -> Artifact:
    """Record bytes already in the CAS as an artifact (on the writer thread)."""
    fields = asdict(origin)
    fields["filename"] = safe_name(origin.filename) if origin.filename else None
    artifact = await hub.core.in_writer(
        lambda: hub.artifacts.add(
            hash=digest, mime=mime, size=size, kind=kind,  # type: ignore[arg-type]
            metadata=metadata or {}, **fields,
        )
    )
    if announce:
        await hub.core.record([file_ready(artifact)])
    return artifact


def load_artifact_bytes(hub: Hub, artifact_id: str) -> bytes:
    try:
        artifact = hub.artifacts.get(artifact_id)
    except HubError as err:
        raise HubError(ErrorCode.unknown_artifact, f"no artifact {artifact_id!r}") from err
    return hub.cas.get(artifact.hash)


async def export_file(hub: Hub, session_id: str, name: str, data: bytes) -> Path:
    """Write a file for DAWs that watch a folder: atomic, never overwriting another take."""
    folder = hub.data / "exports" / safe_name(session_id)
    stem, dot, ext = safe_name(name).rpartition(".")
    if not dot:
        stem, ext = ext, "mid"

    def write() -> Path:
        import os
        import tempfile

        folder.mkdir(parents=True, exist_ok=True)
        n = 0
        while True:
            candidate = folder / (f"{stem}.{ext}" if n == 0 else f"{stem}-{n}.{ext}")
            if not candidate.exists():
                break
            if candidate.read_bytes() == data:
                return candidate  # the same take exported twice keeps one file
            n += 1
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.link(tmp, candidate)  # fails instead of overwriting if someone raced us
        os.unlink(tmp)
        return candidate

    return await asyncio.to_thread(write)


async def render_session_artifact(
    hub: Hub, session_id: str, sections: list[str] | None, *, creator: str | None
) -> dict[str, Any]:
    """Render the arrangement into one type-1 file, plus one file per section with a chosen take.

    Each becomes a ``render`` artifact, an export file a DAW can pick up, and a
    ``file.ready`` notice. Per-section files start at bar 1 at the section's tempo.
    """
    session = hub.session(session_id)

    def load(aid: str) -> bytes:
        return load_artifact_bytes(hub, aid)

    title = safe_name(session.title, default="session")
    wanted = sections if sections is not None else [s.id for s in session.sections]
    renders: list[tuple[str, str | None, bytes]] = []
    whole = await asyncio.to_thread(render_session, session, load, sections=sections)
    renders.append((f"{title}-render.mid", None, whole.midi))
    for sec in session.sections:
        if sec.id in wanted and sec.chosen_take is not None:
            part = await asyncio.to_thread(render_section, session, sec.id, load)
            renders.append((f"{title}-{safe_name(sec.name, default='section')}.mid", sec.id, part.midi))
    refs: list[dict[str, Any]] = []
    paths: list[str] = []
    for name, section_id, data in renders:
        artifact = await store_artifact(
            hub, data, mime=MIDI_MIME, kind="render",
            origin=Provenance(filename=name, session_id=session_id, section_id=section_id, creator=creator),
            announce=False,
        )
        path = await export_file(hub, session_id, name, data)
        await hub.core.record([file_ready(artifact, path)])
        refs.append(artifact_ref(artifact).model_dump(mode="json") | {"section": section_id})
        paths.append(str(path))
    return {
        "artifact": refs[0],
        "export_path": paths[0],
        "sections": refs[1:],
        "summary": whole.summary(),
    }


async def analyze_artifact(hub: Hub, artifact_id: str, analyses: list[str]) -> dict[str, Any]:
    from engines.analysis import analyze

    data = await asyncio.to_thread(load_artifact_bytes, hub, artifact_id)
    try:
        report = await asyncio.to_thread(analyze, data, analyses)
    except EngineError as err:
        raise HubError(ErrorCode.invalid_midi if err.code == "invalid_midi" else ErrorCode.validation_failed, err.message, details=err.details) from err
    return report.model_dump(mode="json")
