"""`tutti serve` binds its own listening socket; a configured send buffer reaches every
connection it accepts (the kernel copies SO_SNDBUF from the listener)."""

from __future__ import annotations

import socket

import pytest

from hub.cli import _listen
from hub.config import LimitsConfig


def _accepted_send_buffer(send_buffer: int | None) -> int:
    listener = _listen("127.0.0.1", 0, send_buffer)
    try:
        listener.listen()
        with socket.create_connection(listener.getsockname()[:2]):
            conn, _ = listener.accept()
            with conn:
                value: int = conn.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
                return value
    finally:
        listener.close()


def test_configured_send_buffer_is_inherited_by_accepted_sockets() -> None:
    autotuned = _accepted_send_buffer(None)
    fixed = _accepted_send_buffer(12288)
    # Linux reports twice the requested size (its bookkeeping overhead); others report it as set.
    assert fixed in (12288, 24576)
    assert fixed != autotuned


def test_send_buffer_limits_are_checked() -> None:
    assert LimitsConfig().socket_send_buffer is None
    with pytest.raises(ValueError, match="greater than or equal to 4096"):
        LimitsConfig(socket_send_buffer=1024)
