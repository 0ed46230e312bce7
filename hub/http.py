"""HTTP routes: the same hub, for clients that speak REST (and SSE for events).

Errors use the wire error shape as the body; HubError is translated in one
exception handler (see hub/app.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import orjson
from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from cas.digest import is_valid_digest
from cas.errors import CasError
from hub import __version__
from hub.errors import ErrorCode, HubError
from hub.ids import new_id
from hub.media import MIDI_MIMES, Provenance, artifact_ref, store_artifact
from hub.protocol import (
    CLIENT_ADAPTER,
    CancelJob,
    CreateSession,
    JobSpec,
    ResumePoint,
    SessionCommand,
    SubmitJob,
)
from hub.runtime import Hub
from hub.state import summaries


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _hub(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


async def _json_body(request: Request) -> dict[str, Any]:
    hub = _hub(request)
    body = await request.body()
    if len(body) > hub.config.limits.max_frame_bytes:
        raise HubError(ErrorCode.payload_too_large, "request body too large",
                       details={"limit": hub.config.limits.max_frame_bytes})
    try:
        data = orjson.loads(body or b"{}")
    except orjson.JSONDecodeError as exc:
        raise HubError(ErrorCode.invalid_json, f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise HubError(ErrorCode.invalid_message, "body must be a JSON object")
    return data


def _validate(model: type[BaseModel], data: dict[str, Any]) -> Any:
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise HubError(
            ErrorCode.validation_failed,
            f"{exc.error_count()} invalid field(s)",
            details={"errors": exc.errors(include_url=False, include_context=False, include_input=False)},
        ) from exc


def _check_token(request: Request) -> None:
    hub = _hub(request)
    if hub.config.token is None:
        return
    auth = request.headers.get("authorization", "")
    token = auth.removeprefix("Bearer ").strip() if auth.startswith("Bearer ") else None
    if not hub.token_ok(token or request.query_params.get("token")):
        raise HubError(ErrorCode.not_authorized, "missing or wrong token",
                       suggestions=["send Authorization: Bearer <token>"])


# --- health, models, metrics -----------------------------------------------------------


async def health(request: Request) -> Response:
    hub = _hub(request)
    return JSONResponse(
        {
            "status": "ok",
            "version": __version__,
            "uptime_seconds": round(hub.clock(), 3),
            "connections": len(hub.connections),
            "log_head": hub.fanout.published_offset,
            "epoch": hub.core.log.epoch,
            "sessions": len(hub.core.state.sessions),
        }
    )


async def models(request: Request) -> Response:
    hub = _hub(request)
    return JSONResponse({"engines": [e.model_dump(mode="json") for e in hub.jobs.describe()]})


async def metrics(request: Request) -> Response:
    from hub.metrics import render_metrics

    return Response(render_metrics(_hub(request)), media_type="text/plain; version=0.0.4")


# --- sessions --------------------------------------------------------------------------------


async def list_sessions(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    return JSONResponse({"sessions": [s.model_dump(mode="json") for s in summaries(hub.core.state)]})


async def create_session(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    data = await _json_body(request)
    data.setdefault("op_id", request.headers.get("idempotency-key") or new_id("op_"))
    cmd = _validate(CreateSession, data)
    ack = await hub.core.execute(cmd, op_id=cmd.op_id, client="http")
    session = hub.session(ack.result["session"])
    return JSONResponse(session.model_dump(mode="json"), status_code=201)


async def get_session(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    return JSONResponse(hub.session(request.path_params["session"]).model_dump(mode="json"))


async def session_command(request: Request) -> Response:
    """POST /sessions/{id}/commands: any session command as JSON (same shape as on the socket)."""
    _check_token(request)
    hub = _hub(request)
    data = await _json_body(request)
    data.setdefault("op_id", request.headers.get("idempotency-key") or new_id("op_"))
    data.setdefault("session", request.path_params["session"])
    try:
        cmd = CLIENT_ADAPTER.validate_python(data)
    except ValidationError as exc:
        raise HubError(ErrorCode.validation_failed, f"{exc.error_count()} invalid field(s)",
                       details={"errors": exc.errors(include_url=False, include_context=False, include_input=False)}) from exc
    if not isinstance(cmd, SessionCommand.__args__):
        raise HubError(ErrorCode.unknown_type, f"{data.get('type')!r} is not a session command")
    ack = await hub.handle_command("http", cmd)
    return JSONResponse(ack.model_dump(mode="json"))


async def render(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    data = await _json_body(request)
    result = await hub.render(request.path_params["session"], data.get("sections"), creator="http")
    return JSONResponse(result, status_code=201)


# --- jobs ------------------------------------------------------------------------------------


async def submit_job(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    data = await _json_body(request)
    data["type"] = "job.submit"
    data.setdefault("op_id", request.headers.get("idempotency-key") or new_id("op_"))
    cmd = _validate(SubmitJob, data)
    job = await hub.jobs.submit(cmd, client="http", op_id=cmd.op_id)
    return JSONResponse(job, status_code=202)


async def submit_batch(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    data = await _json_body(request)
    specs = [_validate(JobSpec, j) for j in data.get("jobs", [])]
    if not specs:
        raise HubError(ErrorCode.validation_failed, "jobs must be a non-empty list")
    jobs = await hub.jobs.submit_batch(specs, client="http", op_id=None)
    return JSONResponse({"jobs": jobs}, status_code=202)


async def get_job(request: Request) -> Response:
    _check_token(request)
    return JSONResponse(_hub(request).jobs.get(request.path_params["job"]))


async def cancel_job(request: Request) -> Response:
    _check_token(request)
    cmd = CancelJob(op_id=new_id("op_"), job=request.path_params["job"])
    return JSONResponse(await _hub(request).jobs.cancel(cmd.job))


async def list_jobs(request: Request) -> Response:
    _check_token(request)
    q = request.query_params
    records = _hub(request).jobs.list(state=q.get("state"), session=q.get("session"))
    return JSONResponse({"jobs": records})


# --- artifacts and CAS -------------------------------------------------------------------------


async def list_artifacts(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    q = request.query_params
    try:
        limit = int(q.get("limit", "100"))
    except ValueError as exc:
        raise HubError(ErrorCode.validation_failed, "limit must be an integer") from exc
    items = hub.artifacts.list(
        session_id=q.get("session"),
        section_id=q.get("section"),
        job_id=q.get("job"),
        kind=q.get("kind"),
        tag=q.get("tag"),
        limit=max(1, min(limit, 1000)),
        after=q.get("after"),
    )
    return JSONResponse({"artifacts": [artifact_ref(a).model_dump(mode="json") | {
        "session": a.session_id, "section": a.section_id, "job": a.job_id, "parent": a.parent_id,
        "tags": a.tags, "creator": a.creator, "created_at": a.created_at} for a in items]})


async def get_artifact(request: Request) -> Response:
    _check_token(request)
    a = _hub(request).artifacts.get(request.path_params["artifact"])
    return JSONResponse(a.model_dump(mode="json") | {"url": f"/cas/{a.hash}"})


async def get_cas(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    digest = request.path_params["digest"]
    if not is_valid_digest(digest):
        raise HubError(ErrorCode.invalid_digest, "a content hash is 64 lowercase hex characters",
                       details={"digest": digest[:80]})
    etag = f'"{digest}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"etag": etag})
    try:
        data = await asyncio.to_thread(hub.cas.get, digest)
        stat = hub.cas.stat(digest)
    except CasError as err:
        code = ErrorCode.not_found if err.code == "not_found" else ErrorCode.corrupt_object
        raise HubError(code, err.message) from err
    return Response(
        data,
        media_type=stat.mime,
        headers={"etag": etag, "cache-control": "public, max-age=31536000, immutable"},
    )


async def post_cas(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    limit = hub.config.limits.max_upload_bytes
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise HubError(ErrorCode.payload_too_large, f"upload over the {limit}-byte limit",
                       details={"limit": limit})
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise HubError(ErrorCode.payload_too_large, f"upload over the {limit}-byte limit",
                           details={"limit": limit})
        chunks.append(chunk)
    data = b"".join(chunks)
    mime = (request.headers.get("content-type") or "application/octet-stream").split(";")[0].strip()
    q = request.query_params
    kind = "midi" if mime in MIDI_MIMES else "upload"
    if q.get("session") is not None:
        hub.session(q["session"])
    artifact = await store_artifact(
        hub,
        data,
        mime=mime,
        kind=kind,
        origin=Provenance(
            filename=q.get("filename"),
            session_id=q.get("session"),
            section_id=q.get("section"),
            creator=q.get("creator", "http"),
        ),
    )
    return JSONResponse(
        {"hash": artifact.hash, "size": artifact.size, "mime": artifact.mime, "artifact": artifact.id,
         "url": f"/cas/{artifact.hash}", "metadata": artifact.metadata},
        status_code=201,
    )


async def analyze(request: Request) -> Response:
    _check_token(request)
    hub = _hub(request)
    data = await _json_body(request)
    artifact = data.get("artifact")
    if not isinstance(artifact, str):
        raise HubError(ErrorCode.validation_failed, "artifact (an artifact id) is required")
    analyses = data.get("analyses", [])
    if not isinstance(analyses, list):
        raise HubError(ErrorCode.validation_failed, "analyses must be a list")
    return JSONResponse(await hub.analyze(artifact, [str(a) for a in analyses]))


# --- Server-Sent Events --------------------------------------------------------------------------


async def events_sse(request: Request) -> Response:
    """GET /events?topics=a,b with Last-Event-ID = "<epoch>:<offset>" to resume."""
    _check_token(request)
    hub = _hub(request)
    topics = [t for t in request.query_params.get("topics", "sessions,jobs,files").split(",") if t]
    for t in topics:
        hub._check_topic(t)
    last = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    resume = None
    if last:
        epoch, _, off = last.rpartition(":")
        if not off.isdigit():
            raise HubError(ErrorCode.validation_failed, "Last-Event-ID must be <epoch>:<offset>")
        resume = ResumePoint(epoch=epoch, offset=int(off))

    from hub.connection import Connection

    conn = Connection(hub, peer="sse")
    client_id = hub.connect(conn, None)

    async def stream() -> AsyncIterator[bytes]:
        try:
            await hub.subscribe(client_id, topics, resume)
            yield b": tutti event stream\n\n"
            while True:
                try:
                    frames = await asyncio.wait_for(conn.outbox.take(), timeout=15.0)
                except TimeoutError:
                    yield b": keep-alive\n\n"
                    continue
                for frame in frames:
                    data = orjson.loads(frame)
                    kind = data.get("type", "message")
                    head = b""
                    if kind == "event":
                        head = f"id: {data['epoch']}:{data['offset']}\n".encode()
                    yield head + f"event: {kind}\n".encode() + b"data: " + frame.encode() + b"\n\n"
                if conn.outbox.closed or conn.outbox.overflowed:
                    return
        finally:
            hub.disconnect(client_id)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache", "x-accel-buffering": "no"})

