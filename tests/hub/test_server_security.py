"""Token and Origin checks on a real server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable, Mapping

import httpx
import websockets
from serverkit import HubProcess


async def _first_frames(url: str, hello: Mapping[str, object], **kw: object) -> tuple[list[dict[str, object]], int | None]:
    """Frames after hello until the server closes (code) or goes quiet for 2 s (None)."""
    frames: list[dict[str, object]] = []
    async with websockets.connect(url, **kw) as ws:  # type: ignore[arg-type]
        # The hub may refuse and close before reading hello (foreign Origin).
        with contextlib.suppress(websockets.ConnectionClosed):
            await ws.send(json.dumps(hello))
        try:
            while True:
                frames.append(json.loads(await asyncio.wait_for(ws.recv(), 2.0)))
        except websockets.ConnectionClosed as closed:
            return frames, closed.rcvd.code if closed.rcvd else None
        except TimeoutError:
            return frames, None


async def test_token_is_required_when_configured(make_hub: Callable[..., HubProcess]) -> None:
    hub = make_hub('[tutti]\ntoken = "s3cret"\n')
    frames, code = await _first_frames(hub.ws_url, {"type": "hello", "client": "cli", "name": "x"})
    assert frames[0]["type"] == "error" and frames[0]["code"] == "not_authorized"
    assert code == 4001
    frames, code = await _first_frames(hub.ws_url, {"type": "hello", "client": "cli", "name": "x", "token": "s3cret"})
    assert frames[0]["type"] == "welcome" and code is None
    assert httpx.get(f"{hub.url}/sessions", timeout=10).status_code == 401
    ok = httpx.get(f"{hub.url}/sessions", headers={"authorization": "Bearer s3cret"}, timeout=10)
    assert ok.status_code == 200


async def test_foreign_browser_origin_is_refused(hub: HubProcess) -> None:
    hello = {"type": "hello", "client": "browser", "name": "page"}
    frames, code = await _first_frames(hub.ws_url, hello, origin="http://evil.example")
    assert frames[0]["code"] == "forbidden_origin" and code == 1008
    frames, code = await _first_frames(hub.ws_url, hello, origin=f"http://127.0.0.1:{hub.port}")
    assert frames[0]["type"] == "welcome" and code is None
