"""Error codes and the one exception root of the hub.

Every failure that reaches a client is a :class:`HubError` translated at the
boundary (WebSocket adapter or HTTP route) into the single wire error shape
``{type: "error", code, message, details, suggestions, op_id}``.
The codes below are the documented list; docs/errors.md is generated from it.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    """Every error code the hub sends, with a one-line meaning (used for the docs)."""

    invalid_message = "invalid_message"
    invalid_json = "invalid_json"
    unknown_type = "unknown_type"
    validation_failed = "validation_failed"
    hello_required = "hello_required"
    unsupported_version = "unsupported_version"
    not_authorized = "not_authorized"
    forbidden_origin = "forbidden_origin"
    payload_too_large = "payload_too_large"
    rate_limited = "rate_limited"
    unknown_session = "unknown_session"
    unknown_section = "unknown_section"
    unknown_take = "unknown_take"
    unknown_artifact = "unknown_artifact"
    unknown_topic = "unknown_topic"
    section_locked = "section_locked"
    nothing_to_undo = "nothing_to_undo"
    nothing_to_redo = "nothing_to_redo"
    conflict = "conflict"
    unknown_engine = "unknown_engine"
    unknown_task = "unknown_task"
    engine_unavailable = "engine_unavailable"
    engine_error = "engine_error"
    worker_crashed = "worker_crashed"
    job_not_found = "job_not_found"
    job_expired = "job_expired"
    job_finished = "job_finished"
    interrupted = "interrupted"
    transport_not_held = "transport_not_held"
    invalid_midi = "invalid_midi"
    not_found = "not_found"
    corrupt_object = "corrupt_object"
    invalid_digest = "invalid_digest"
    path_traversal = "path_traversal"
    internal_error = "internal_error"


ERROR_DESCRIPTIONS: dict[ErrorCode, str] = {
    ErrorCode.invalid_message: "The frame is not a JSON object with a string `type`.",
    ErrorCode.invalid_json: "The frame is not valid JSON.",
    ErrorCode.unknown_type: "The `type` names no client message of this protocol version.",
    ErrorCode.validation_failed: "A field is missing, of the wrong type or out of range; `details.errors` lists them.",
    ErrorCode.hello_required: "The first frame on a connection must be `hello`.",
    ErrorCode.unsupported_version: "The client speaks a protocol version this hub does not.",
    ErrorCode.not_authorized: "The token is missing or wrong.",
    ErrorCode.forbidden_origin: "A browser page from another origin tried to connect.",
    ErrorCode.payload_too_large: "The frame or upload is over the size limit in `details.limit`.",
    ErrorCode.rate_limited: "Too many requests; retry after `details.retry_after` seconds.",
    ErrorCode.unknown_session: "No session has this id (or it was deleted).",
    ErrorCode.unknown_section: "The session has no section with this id.",
    ErrorCode.unknown_take: "The section has no take with this id.",
    ErrorCode.unknown_artifact: "No artifact has this id.",
    ErrorCode.unknown_topic: "The topic is not one of session:<id>, transport:<id>, jobs, files, sessions.",
    ErrorCode.section_locked: "The section is locked; unlock it first.",
    ErrorCode.nothing_to_undo: "The session's undo history is empty.",
    ErrorCode.nothing_to_redo: "Nothing was undone since the last change.",
    ErrorCode.conflict: "The command contradicts the current state (e.g. a duplicate id).",
    ErrorCode.unknown_engine: "No engine of this name is registered.",
    ErrorCode.unknown_task: "The engine has no task of this name.",
    ErrorCode.engine_unavailable: "The engine is registered but cannot run now; `details.reason` says why.",
    ErrorCode.engine_error: "The engine failed while running the job.",
    ErrorCode.worker_crashed: "The engine's worker process died while running the job.",
    ErrorCode.job_not_found: "No job has ever had this id.",
    ErrorCode.job_expired: "The job finished longer ago than the retention period; its record is gone.",
    ErrorCode.job_finished: "The job already finished; it cannot be cancelled.",
    ErrorCode.interrupted: "The hub stopped while the job was running.",
    ErrorCode.transport_not_held: "Another client holds transport control; take it explicitly.",
    ErrorCode.invalid_midi: "The bytes are not a valid Standard MIDI File; `details` says what is wrong.",
    ErrorCode.not_found: "No such object or route.",
    ErrorCode.corrupt_object: "A stored object failed its hash check.",
    ErrorCode.invalid_digest: "A content hash must be 64 lowercase hex characters.",
    ErrorCode.path_traversal: "A file name tried to leave its folder.",
    ErrorCode.internal_error: "A bug in the hub; the connection stays usable.",
}


class HubError(Exception):
    """Root of every error the hub raises on purpose."""

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        details: dict[str, Any] | None = None,
        suggestions: list[str] | None = None,
        op_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.op_id = op_id
        self.code = code
        self.message = message
        self.details: dict[str, Any] = dict(details or {})
        self.suggestions: list[str] = list(suggestions or [])

    def __repr__(self) -> str:
        return f"HubError({self.code.value!r}, {self.message!r})"
