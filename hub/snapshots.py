"""Serialising the whole hub state for log compaction and fast restarts."""

from __future__ import annotations

import orjson
from pydantic import TypeAdapter

from hub.state import HubState

SNAPSHOT_FORMAT = 1
_ADAPTER: TypeAdapter[HubState] = TypeAdapter(HubState)


def encode_state(state: HubState) -> bytes:
    body = _ADAPTER.dump_python(state, mode="json")
    return orjson.dumps({"format": SNAPSHOT_FORMAT, "state": body})


def decode_state(data: bytes) -> HubState:
    raw = orjson.loads(data)
    if raw.get("format") != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown snapshot format {raw.get('format')!r}")
    return _ADAPTER.validate_python(raw["state"])
