"""Parsing server frames with the hub's own pydantic models. Pure: text in, message or error out."""

from __future__ import annotations

from pydantic import ValidationError

from hub.protocol import SERVER_ADAPTER, ServerMessage

# Enough of a bad frame to show in a report without flooding a log.
EXCERPT_CHARS = 200


class MalformedFrame(Exception):
    """A server frame that is not valid JSON or not a known, well-formed message."""

    def __init__(self, reason: str, frame: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.excerpt = frame[:EXCERPT_CHARS]


def parse_server_frame(data: str | bytes) -> ServerMessage:
    """One server frame as a typed message, or MalformedFrame saying what is wrong."""
    text = data if isinstance(data, str) else data.decode("utf-8", errors="replace")
    try:
        return SERVER_ADAPTER.validate_json(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        if not errors:
            raise MalformedFrame("invalid frame", text) from exc
        where = ".".join(str(p) for p in errors[0]["loc"])
        reason = errors[0]["msg"] + (f" at {where}" if where else "")
        raise MalformedFrame(reason, text) from exc
    except ValueError as exc:  # not UTF-8 or similar
        raise MalformedFrame(str(exc), text) from exc
