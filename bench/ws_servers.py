#!/usr/bin/env python3
"""Minimal WebSocket relay servers used as fan-out baselines by bench/ws_fanout.py.

Copied from ../shared/bench/ws_servers.py (2026-11-21) with type hints; behaviour unchanged.

Protocol (shared with ws_fanout.py):
  ws://127.0.0.1:PORT/sub  -> subscriber; receives every message published
  ws://127.0.0.1:PORT/pub  -> publisher; each text message is relayed to all subscribers

Usage:
  python ws_servers.py websockets --port 8765 [--loop asyncio|uvloop]
  python ws_servers.py starlette  --port 8765 --ws websockets|websockets-sansio|wsproto [--loop asyncio|uvloop]
Binds 127.0.0.1 only. Prints 'READY <port>' on stdout when listening.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
from typing import Any


def _run(main: Any, loop: str) -> None:
    if loop == "uvloop":
        uvloop: Any = importlib.import_module("uvloop")  # optional; not a project dependency
        uvloop.run(main())
    else:
        asyncio.run(main())


def run_websockets(port: int, loop: str) -> None:
    from websockets.asyncio.server import ServerConnection, broadcast, serve

    subs: set[ServerConnection] = set()

    async def handler(ws: ServerConnection) -> None:
        assert ws.request is not None
        path = ws.request.path
        if path == "/sub":
            subs.add(ws)
            try:
                await ws.wait_closed()
            finally:
                subs.discard(ws)
        elif path == "/pub":
            async for msg in ws:
                broadcast(subs, msg)
        else:
            await ws.close(1008, "bad path")

    async def main() -> None:
        # compression=None: the benchmark clients do not negotiate permessage-deflate anyway
        async with serve(handler, "127.0.0.1", port, compression=None, backlog=2048) as server:
            print(f"READY {port}", flush=True)
            await server.serve_forever()

    _run(main, loop)


def build_starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute
    from starlette.websockets import WebSocket, WebSocketDisconnect

    subs: set[WebSocket] = set()

    async def sub(ws: WebSocket) -> None:
        await ws.accept()
        subs.add(ws)
        try:
            while True:
                m = await ws.receive()
                if m["type"] == "websocket.disconnect":
                    break
        finally:
            subs.discard(ws)

    async def pub(ws: WebSocket) -> None:
        await ws.accept()
        try:
            while True:
                text = await ws.receive_text()
                for s in list(subs):
                    try:
                        await s.send_text(text)
                    except Exception:
                        subs.discard(s)
        except WebSocketDisconnect:
            pass

    return Starlette(routes=[WebSocketRoute("/sub", sub), WebSocketRoute("/pub", pub)])


def run_starlette(port: int, ws_impl: str, loop: str) -> None:
    import uvicorn

    app = build_starlette_app()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, ws=ws_impl, loop=loop,
                            http="h11", log_level="warning", lifespan="off",
                            ws_per_message_deflate=False, backlog=2048)
    server = uvicorn.Server(config)

    async def main() -> None:
        task = asyncio.ensure_future(server.serve())
        while not server.started:
            await asyncio.sleep(0.02)
            if task.done():
                task.result()
        print(f"READY {port}", flush=True)
        await task

    _run(main, loop)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("kind", choices=["websockets", "starlette"])
    ap.add_argument("--port", type=int, default=8765)
    ap.add_argument("--ws", default="websockets", help="uvicorn ws implementation (starlette only)")
    ap.add_argument("--loop", default="asyncio", choices=["asyncio", "uvloop"])
    a = ap.parse_args()
    if a.kind == "websockets":
        run_websockets(a.port, a.loop)
    else:
        run_starlette(a.port, a.ws, a.loop)
