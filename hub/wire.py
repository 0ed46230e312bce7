"""Parsing client frames into messages, and errors into frames. Pure: bytes in, data out."""

from __future__ import annotations

from typing import Any

import orjson
from pydantic import ValidationError

from hub.errors import ErrorCode, HubError
from hub.protocol import CLIENT_ADAPTER, CLIENT_TYPES, ClientMessage, Error


def parse_client_frame(data: str | bytes, *, max_bytes: int) -> ClientMessage:
    """Decode one client frame or raise a HubError saying exactly what is wrong."""
    size = len(data.encode() if isinstance(data, str) else data)
    if size > max_bytes:
        raise HubError(
            ErrorCode.payload_too_large,
            f"frame of {size} bytes is over the {max_bytes}-byte limit",
            details={"size": size, "limit": max_bytes},
        )
    try:
        raw = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise HubError(ErrorCode.invalid_json, f"frame is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise HubError(
            ErrorCode.invalid_message,
            f"a frame must be a JSON object, got {type(raw).__name__}",
            suggestions=['send {"type": "...", ...}'],
        )
    kind = raw.get("type")
    op_id = raw.get("op_id") if isinstance(raw.get("op_id"), str) else None
    if not isinstance(kind, str):
        raise _with_op(HubError(ErrorCode.invalid_message, "the frame has no string `type` field"), op_id)
    if kind not in CLIENT_TYPES:
        raise _with_op(
            HubError(
                ErrorCode.unknown_type,
                f"unknown message type {kind!r}",
                details={"type": kind},
                suggestions=[f"known types: {', '.join(sorted(CLIENT_TYPES))}"],
            ),
            op_id,
        )
    try:
        return CLIENT_ADAPTER.validate_python(raw)
    except ValidationError as exc:
        raise _with_op(
            HubError(
                ErrorCode.validation_failed,
                f"{kind}: {_summarize(exc)}",
                details={"errors": _errors(exc)},
            ),
            op_id,
        ) from exc


def _with_op(err: HubError, op_id: str | None) -> HubError:
    err.op_id = op_id
    return err


def _errors(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"loc": [str(p) for p in e["loc"]], "msg": e["msg"], "type": e["type"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _summarize(exc: ValidationError) -> str:
    first = exc.errors(include_url=False, include_context=False, include_input=False)[0]
    loc = ".".join(str(p) for p in first["loc"]) or "message"
    more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
    return f"{loc}: {first['msg']}{more}"


def error_message(err: HubError, op_id: str | None = None) -> Error:
    return Error(
        code=err.code.value,
        message=err.message,
        details=err.details,
        suggestions=err.suggestions,
        op_id=op_id if op_id is not None else err.op_id,
    )
