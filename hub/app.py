"""The ASGI application: routes, error translation, lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles

from hub import http, http_archive
from hub.config import HubConfig
from hub.errors import ErrorCode, HubError
from hub.openapi import openapi
from hub.protocol import encode
from hub.runtime import Hub
from hub.wire import error_message
from hub.ws import websocket_endpoint

log = logging.getLogger("tutti.app")

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

_STATUS = {
    ErrorCode.unknown_session: 404,
    ErrorCode.unknown_section: 404,
    ErrorCode.unknown_take: 404,
    ErrorCode.unknown_artifact: 404,
    ErrorCode.job_not_found: 404,
    ErrorCode.not_found: 404,
    ErrorCode.job_expired: 410,
    ErrorCode.not_authorized: 401,
    ErrorCode.forbidden_origin: 403,
    ErrorCode.payload_too_large: 413,
    ErrorCode.rate_limited: 429,
    ErrorCode.conflict: 409,
    ErrorCode.section_locked: 409,
    ErrorCode.job_finished: 409,
    ErrorCode.engine_unavailable: 503,
    ErrorCode.internal_error: 500,
    ErrorCode.corrupt_object: 500,
}


def error_response(err: HubError) -> Response:
    return Response(
        encode(error_message(err)),
        status_code=_STATUS.get(err.code, 400),
        media_type="application/json",
    )


async def _hub_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HubError)
    return error_response(exc)


async def _http_error(_request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = ErrorCode.not_found if exc.status_code == 404 else ErrorCode.invalid_message
    err = HubError(code, str(exc.detail))
    return Response(encode(error_message(err)), status_code=exc.status_code, media_type="application/json")


async def _crash(_request: Request, exc: Exception) -> Response:
    log.exception("unhandled error", exc_info=exc)
    return error_response(HubError(ErrorCode.internal_error, f"internal error: {type(exc).__name__}"))


def create_app(config: HubConfig) -> Starlette:
    hub = Hub(config)

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        await hub.start()
        try:
            yield
        finally:
            await hub.stop()

    routes = [
        Route("/health", http.health),
        Route("/models", http.models),
        Route("/metrics", http.metrics),
        Route("/openapi.json", openapi),
        Route("/sessions", http.list_sessions, methods=["GET"]),
        Route("/sessions", http.create_session, methods=["POST"]),
        Route("/sessions/import", http_archive.import_route, methods=["POST"]),
        Route("/sessions/{session}", http.get_session),
        Route("/sessions/{session}/export", http_archive.export_route),
        Route("/sessions/{session}/commands", http.session_command, methods=["POST"]),
        Route("/sessions/{session}/render", http.render, methods=["POST"]),
        Route("/jobs", http.list_jobs, methods=["GET"]),
        Route("/jobs", http.submit_job, methods=["POST"]),
        Route("/batch", http.submit_batch, methods=["POST"]),
        Route("/jobs/{job}", http.get_job),
        Route("/jobs/{job}/cancel", http.cancel_job, methods=["POST"]),
        Route("/artifacts", http.list_artifacts),
        Route("/artifacts/{artifact}", http.get_artifact, methods=["GET"]),
        Route("/artifacts/{artifact}", http_archive.delete_artifact_route, methods=["DELETE"]),
        Route("/gc", http_archive.gc_route, methods=["POST"]),
        Route("/cas", http.post_cas, methods=["POST"]),
        Route("/cas/{digest}", http.get_cas),
        Route("/analyze", http.analyze, methods=["POST"]),
        Route("/events", http.events_sse),
        WebSocketRoute("/ws", websocket_endpoint),
    ]
    if (WEB_DIR / "index.html").exists():
        routes.append(Mount("/", StaticFiles(directory=WEB_DIR, html=True), name="web"))
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={HubError: _hub_error, HTTPException: _http_error, Exception: _crash},
    )
    app.state.hub = hub
    return app
