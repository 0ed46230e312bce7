"""A small OpenAPI 3.1 document for the REST routes, with the wire models' schemas."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import BaseModel
from starlette.requests import Request
from starlette.responses import Response

from hub import __version__
from hub.protocol import CreateSession, Error, JobSpec

_ROUTES: list[tuple[str, str, str, type[BaseModel] | None]] = [
    ("get", "/health", "Liveness and log position", None),
    ("get", "/models", "Engines, tasks, parameter schemas and availability", None),
    ("get", "/metrics", "Prometheus metrics", None),
    ("get", "/sessions", "List sessions", None),
    ("post", "/sessions", "Create a session", CreateSession),
    ("get", "/sessions/{session}", "A session's state", None),
    ("post", "/sessions/{session}/commands", "Run any session command (WebSocket shape)", None),
    ("post", "/sessions/{session}/render", "Render chosen takes into one MIDI file", None),
    ("get", "/jobs", "List jobs", None),
    ("post", "/jobs", "Submit a job", JobSpec),
    ("post", "/batch", "Submit several jobs; results in request order", None),
    ("get", "/jobs/{job}", "A job record", None),
    ("post", "/jobs/{job}/cancel", "Cancel a job", None),
    ("get", "/artifacts", "List artifacts (filters: session, section, job, kind, tag)", None),
    ("get", "/artifacts/{artifact}", "An artifact record", None),
    ("post", "/cas", "Upload bytes (raw body, Content-Type); MIDI is validated", None),
    ("get", "/cas/{digest}", "Download bytes by sha256 (ETag)", None),
    ("post", "/analyze", "Analyse an artifact", None),
    ("get", "/events", "Server-Sent Events with Last-Event-ID resume", None),
]


def document() -> dict[str, Any]:
    paths: dict[str, Any] = {}
    for method, path, summary, body in _ROUTES:
        op: dict[str, Any] = {
            "summary": summary,
            "responses": {
                "200": {"description": "OK"},
                "4XX": {
                    "description": "Error",
                    "content": {"application/json": {"schema": Error.model_json_schema()}},
                },
            },
        }
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params:
            op["parameters"] = [
                {"name": p, "in": "path", "required": True, "schema": {"type": "string"}} for p in params
            ]
        if body is not None:
            op["requestBody"] = {"content": {"application/json": {"schema": body.model_json_schema()}}}
        paths.setdefault(path, {})[method] = op
    return {
        "openapi": "3.1.0",
        "info": {"title": "Tutti hub", "version": __version__},
        "paths": paths,
    }


async def openapi(_request: Request) -> Response:
    return Response(orjson.dumps(document()), media_type="application/json")
