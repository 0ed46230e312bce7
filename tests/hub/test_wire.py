"""Frame parsing: every bad frame becomes one precise, structured error."""

from __future__ import annotations

import orjson
import pytest

from hub.errors import ErrorCode, HubError
from hub.protocol import AddSection, Hello
from hub.wire import error_message, parse_client_frame

LIMIT = 1 << 20


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"not json", ErrorCode.invalid_json),
        (b"[1, 2]", ErrorCode.invalid_message),
        (b"42", ErrorCode.invalid_message),
        (b'{"op_id": "x"}', ErrorCode.invalid_message),
        (b'{"type": 7}', ErrorCode.invalid_message),
        (b'{"type": "session.explode", "op_id": "x"}', ErrorCode.unknown_type),
        (b'{"type": "session.set_tempo", "op_id": "x", "session": "s", "bpm": -3}', ErrorCode.validation_failed),
        (b'{"type": "section.add", "op_id": "x", "session": "s", "name": "v", "bars": 0}', ErrorCode.validation_failed),
        (b'{"type": "hello", "client": "toaster", "name": "x"}', ErrorCode.validation_failed),
    ],
)
def test_bad_frames(frame: bytes, code: ErrorCode) -> None:
    with pytest.raises(HubError) as info:
        parse_client_frame(frame, max_bytes=LIMIT)
    assert info.value.code is code
    wire = orjson.loads(orjson.dumps(error_message(info.value).model_dump()))
    assert wire["type"] == "error" and wire["code"] == code.value and wire["message"]


def test_op_id_is_echoed_on_errors() -> None:
    with pytest.raises(HubError) as info:
        parse_client_frame(b'{"type": "section.add", "op_id": "op-9", "session": "s"}', max_bytes=LIMIT)
    assert error_message(info.value).op_id == "op-9"
    assert info.value.details["errors"][0]["loc"] == ["section.add", "name"]


def test_oversized_frame() -> None:
    with pytest.raises(HubError) as info:
        parse_client_frame(b" " * 2048, max_bytes=1024)
    assert info.value.code is ErrorCode.payload_too_large
    assert info.value.details == {"size": 2048, "limit": 1024}


def test_good_frames_parse_to_models() -> None:
    hello = parse_client_frame('{"type": "hello", "client": "browser", "name": "Ana"}', max_bytes=LIMIT)
    assert isinstance(hello, Hello) and hello.protocol == 1
    add = parse_client_frame(
        b'{"type": "section.add", "op_id": "1", "session": "s", "name": "chorus", "bars": 16}', max_bytes=LIMIT
    )
    assert isinstance(add, AddSection) and add.bars == 16
