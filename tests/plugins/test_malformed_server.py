"""A hub that sends garbage: the client reports each bad frame and keeps working."""

from __future__ import annotations

import asyncio

import orjson
from websockets.asyncio.server import ServerConnection, serve

from hub.events import SessionRenamed
from hub.protocol import EventMessage, Welcome, encode
from plugins.client import Backoff, ProtocolError, TuttiClient

BAD_FRAMES = [
    "this is not json",
    "[1, 2, 3]",
    '{"type": "no.such.message"}',
    '{"type": "event", "epoch": "e", "offset": "seven"}',
    '{"type": "welcome", "server_version": 3}',
    '{"type": "ack", "op_id": "never-sent"}',
]


async def fake_hub(ws: ServerConnection) -> None:
    await ws.recv()  # hello
    await ws.send(encode(Welcome(server_version="fake", client_id="cli_x", engines=[], sessions=[],
                                 server_time=1.0, epoch="e", offset=0, heartbeat_interval=10,
                                 heartbeat_timeout=30, max_frame_bytes=1 << 20)).decode())
    for frame in BAD_FRAMES:
        await ws.send(frame)
    good = EventMessage(epoch="e", offset=1, ts=0.0, topic="session:s", cause="do",
                        event=SessionRenamed(session="s", title="ok", old_title="x"))
    await ws.send(encode(good).decode())
    # the connection still answers: a ping from the client gets a pong
    async for raw in ws:
        msg = orjson.loads(raw)
        if msg["type"] == "ping":
            await ws.send(orjson.dumps({"type": "pong", "t": msg["t"]}).decode())


async def test_malformed_server_frames_become_reported_errors() -> None:
    async with serve(fake_hub, "127.0.0.1", 0) as server:
        port = server.sockets[0].getsockname()[1]
        async with TuttiClient(f"ws://127.0.0.1:{port}/ws", name="t", backoff=Backoff(base=0.05)) as c:
            errors: list[ProtocolError] = []
            while True:
                item = await asyncio.wait_for(c.inbox.get(), 10)
                if isinstance(item, ProtocolError):
                    errors.append(item)
                elif isinstance(item, EventMessage):
                    break
            assert len(errors) == len(BAD_FRAMES)
            assert "ack for unknown op_id" in errors[-1].reason
            assert errors[0].frame == BAD_FRAMES[0]
            assert item.offset == 1 and c.connections == 1 and c.connected.is_set()
            assert c.core.malformed == len(BAD_FRAMES) - 1  # the stray ack parses; it is refused later
