"""The WebSocket adapter: Starlette socket <-> Connection. All I/O, no protocol decisions."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from urllib.parse import urlsplit

from starlette.websockets import WebSocket, WebSocketDisconnect

from hub.connection import Connection
from hub.errors import ErrorCode, HubError
from hub.protocol import CloseCode, Goodbye, Ping, encode
from hub.runtime import Hub
from hub.wire import error_message
from hub.wsframes import DirectSocket

log = logging.getLogger("tutti.ws")


def origin_allowed(hub: Hub, ws: WebSocket) -> bool:
    """Browsers send Origin; only pages served by this hub (or configured origins) may connect."""
    origin = ws.headers.get("origin")
    if origin is None:
        return True  # not a browser: DAW plugins, CLI tools
    if origin in hub.config.allowed_origins:
        return True
    host = ws.headers.get("host", "")
    parts = urlsplit(origin)
    return parts.netloc == host


async def websocket_endpoint(ws: WebSocket) -> None:
    hub: Hub = ws.app.state.hub
    if not origin_allowed(hub, ws):
        await ws.accept()
        err = HubError(ErrorCode.forbidden_origin, f"origin {ws.headers.get('origin')} is not allowed")
        await ws.send_text(encode(error_message(err)).decode())
        await ws.close(CloseCode.POLICY, "origin not allowed")
        return
    await ws.accept()
    await serve_connection(hub, ws, Connection(hub, peer=str(ws.client)))


async def serve_connection(hub: Hub, ws: WebSocket, conn: Connection) -> None:
    """Run an accepted socket: the reader feeds ``conn``, a writer drains its outbox.

    Under the hub's own uvicorn protocol the outbox is attached to a
    :class:`~hub.wsframes.DirectSocket`, so frames are written pre-framed by the fan-out's
    flusher and the writer task only handles the end of the connection.
    """
    direct = DirectSocket.of(ws)
    # Bound on writing the goodbye and close frames: a peer that stopped reading gets
    # its transport aborted instead of holding the writer (and its reader) forever.
    linger = hub.config.limits.heartbeat_timeout
    writers: list[asyncio.Task[None]] = []
    if direct is not None:
        direct.outbox = conn.outbox
        conn.outbox.attach(direct, hub.fanout.flusher)
        # The flusher writes the frames; a task is needed only to end the connection.
        conn.outbox.on_end(lambda: writers.append(asyncio.create_task(_write_loop(ws, conn, linger))))
    else:
        writers.append(asyncio.create_task(_write_loop(ws, conn, linger)))
    beat = Heartbeat(hub, conn)
    try:
        while conn.close_code is None:
            message = await ws.receive()
            if message["type"] == "websocket.disconnect":
                break
            data = message.get("text")
            if data is None:
                data = message.get("bytes") or b""
            await conn.receive(data)
    except WebSocketDisconnect:
        pass
    except Exception:
        log.exception("websocket reader failed")
    finally:
        beat.cancel()
        if conn.client_id is not None:
            hub.disconnect(conn.client_id)
        if conn.close_code is None:
            conn.close(CloseCode.NORMAL, "")
        for writer in writers:
            with contextlib.suppress(BaseException):
                await asyncio.wait_for(asyncio.shield(writer), timeout=2.0)
            if not writer.done() and direct is not None:
                direct.abort()
            writer.cancel()


async def _write_loop(ws: WebSocket, conn: Connection, linger: float) -> None:
    """Send the outbox frame by frame (fallback), or only its end (direct mode).

    In direct mode this starts once the outbox has ended; what is still queued then (an
    error sent just before a close) goes out ahead of goodbye and close.
    """
    outbox = conn.outbox
    direct = DirectSocket.of(ws)
    try:
        while True:
            frames = await outbox.take()
            if outbox.overflowed or outbox.closed:
                await asyncio.wait_for(_finish(ws, conn, frames), linger)
                return
            for frame in frames:
                await ws.send_text(frame)
    except TimeoutError:
        log.warning("peer %s did not take its close frame within %.0fs; aborting", conn.peer, linger)
        if direct is not None:
            direct.abort()
    except (WebSocketDisconnect, RuntimeError, OSError):
        return
    finally:
        # Nothing more will be written: wake anything waiting for room (a paced replay).
        outbox.close()


async def _finish(ws: WebSocket, conn: Connection, frames: list[str]) -> None:
    """Send the last frames, a goodbye when the close is not a normal one, then close."""
    outbox = conn.outbox
    if outbox.overflowed:
        conn.close_code = CloseCode.SLOW_CONSUMER
        bye = Goodbye(close_code=CloseCode.SLOW_CONSUMER, reason="client fell behind; resume")
        await ws.send_text(encode(bye).decode())
        await ws.close(CloseCode.SLOW_CONSUMER, "slow consumer: resume")
        return
    for frame in frames:
        await ws.send_text(frame)
    if conn.close_code not in (None, CloseCode.NORMAL):
        bye = Goodbye(close_code=conn.close_code, reason=conn.close_reason)
        with contextlib.suppress(Exception):
            await ws.send_text(encode(bye).decode())
    with contextlib.suppress(Exception):
        await ws.close(conn.close_code or CloseCode.NORMAL, conn.close_reason)


class Heartbeat:
    """Ping every interval; a peer silent for longer than the timeout is dropped.

    A timer callback rather than a task: one less coroutine per idle connection.
    """

    __slots__ = ("_conn", "_handle", "_hub")

    def __init__(self, hub: Hub, conn: Connection) -> None:
        self._hub = hub
        self._conn = conn
        self._handle = asyncio.get_running_loop().call_later(hub.config.limits.heartbeat_interval, self._tick)

    def _tick(self) -> None:
        conn, limits = self._conn, self._hub.config.limits
        if time.monotonic() - conn.last_seen > limits.heartbeat_timeout:
            conn.close(CloseCode.HEARTBEAT_TIMEOUT, "no frame within heartbeat timeout")
            return
        conn.send(encode(Ping(t=self._hub.clock())))
        self._handle = asyncio.get_running_loop().call_later(limits.heartbeat_interval, self._tick)

    def cancel(self) -> None:
        self._handle.cancel()
