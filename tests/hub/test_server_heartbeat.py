"""Heartbeats: a silent peer is dropped with 4002 within the documented bound
(heartbeat_timeout + heartbeat_interval); a peer that answers pings stays."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from serverkit import HubProcess, WsClient

HEARTBEAT_CONFIG = """
[tutti.limits]
heartbeat_interval = 0.5
heartbeat_timeout = 1.5
"""


async def test_silent_client_is_dropped_with_4002(make_hub: Callable[..., HubProcess]) -> None:
    proc = make_hub(HEARTBEAT_CONFIG)
    live = await WsClient.open(proc.ws_url, name="answers pings")
    silent = await WsClient.open(proc.ws_url, name="never answers")
    silent.answer_pings = False
    interval, timeout = silent.welcome["heartbeat_interval"], silent.welcome["heartbeat_timeout"]
    assert (interval, timeout) == (0.5, 1.5)
    started = time.monotonic()
    try:
        pings = 0
        while True:
            frame = await silent.expect(lambda f: True, timeout=timeout + interval + 5)
            if frame["type"] == "ping":
                pings += 1
                continue
            if frame["type"] == "goodbye":
                assert frame["close_code"] == 4002
                continue
            assert frame["type"] == "_closed", frame
            assert frame["code"] == 4002, frame
            break
        dropped_after = time.monotonic() - started
        print(f"\nsilent client dropped after {dropped_after:.2f}s "
              f"(bound: timeout {timeout}s + interval {interval}s), {pings} pings unanswered")
        assert pings >= 1
        assert dropped_after <= timeout + interval + 3.0  # generous slack for a loaded CI box
        # the client that answered is still connected and served
        await asyncio.sleep(interval * 2)
        await live.ping()
        assert not live.closed.done()
    finally:
        await silent.close()
        await live.close()
