"""Generated documentation: the error-code table (docs/errors.md) comes from hub/errors.py."""

from __future__ import annotations

from hub.errors import ERROR_DESCRIPTIONS, ErrorCode
from hub.protocol import CloseCode


def errors_markdown() -> str:
    lines = [
        "# Error codes",
        "",
        "Generated from `hub/errors.py` by `tutti docs`; do not edit by hand.",
        "",
        "Every error, on the WebSocket and over HTTP, has one shape:",
        "`{\"type\": \"error\", \"code\", \"message\", \"details\", \"suggestions\", \"op_id\"}`.",
        "A command's error carries its `op_id`; the connection always stays open.",
        "",
        "| code | meaning |",
        "| --- | --- |",
    ]
    lines += [f"| `{code.value}` | {ERROR_DESCRIPTIONS[code]} |" for code in ErrorCode]
    lines += [
        "",
        "## WebSocket close codes",
        "",
        "| code | meaning | reconnect? |",
        "| --- | --- | --- |",
        f"| {CloseCode.NORMAL} | normal close | — |",
        f"| {CloseCode.GOING_AWAY} | the hub is shutting down | yes, with resume |",
        f"| {CloseCode.POLICY} | browser Origin not allowed | no |",
        f"| {CloseCode.TOO_BIG} | a frame far over the size limit (slightly over gets `payload_too_large`) | yes |",
        f"| {CloseCode.SERVICE_RESTART} | the server is restarting (sent by uvicorn on shutdown) | yes, with resume |",
        f"| {CloseCode.NOT_AUTHORIZED} | missing or wrong token | only with a new token |",
        f"| {CloseCode.HEARTBEAT_TIMEOUT} | no frame within the heartbeat timeout | yes, with resume |",
        f"| {CloseCode.SLOW_CONSUMER} | the client's queue overflowed | yes, with resume (recoverable) |",
        "",
    ]
    return "\n".join(lines)
