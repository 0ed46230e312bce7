"""One client connection's protocol logic, independent of the WebSocket library.

The adapter (hub/ws.py) feeds it frames and forwards what it queues in the
client's outbox. Every command gets exactly one ``ack`` or ``error``; any bad
frame gets a structured error and the connection carries on.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

from hub.errors import ErrorCode, HubError
from hub.protocol import (
    PROTOCOL_VERSION,
    Ack,
    ClientMessage,
    ClockPing,
    ClockPong,
    Command,
    Error,
    Hello,
    Ping,
    Pong,
    encode,
)
from hub.wire import error_message, parse_client_frame

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.connection")

# Session commands one connection may have in flight before its reader waits.
MAX_IN_FLIGHT = 1024


class Connection:
    def __init__(self, hub: Hub, *, peer: str = "") -> None:
        self.hub = hub
        self.peer = peer
        self.outbox = hub.fanout.new_outbox(hub.config.limits.client_queue_frames)
        self.hello: Hello | None = None
        self.client_id: str | None = None
        self.last_seen = time.monotonic()
        self.close_code: int | None = None
        self.close_reason = ""
        # Pipelined session commands, oldest first; their acks are sent as they resolve.
        self._in_flight: deque[asyncio.Future[Any]] = deque()

    # --- output helpers -----------------------------------------------------------------

    def send(self, frame: bytes) -> None:
        self.outbox.push(frame.decode())

    def send_error(self, err: HubError, op_id: str | None = None) -> None:
        self.send(encode(error_message(err, op_id)))

    def close(self, code: int, reason: str) -> None:
        self.close_code = code
        self.close_reason = reason
        self.outbox.close()

    # --- input ----------------------------------------------------------------------------

    async def receive(self, data: str | bytes) -> None:
        self.last_seen = time.monotonic()
        try:
            message = parse_client_frame(data, max_bytes=self.hub.config.limits.max_frame_bytes)
        except HubError as err:
            self.send_error(err)
            return
        op_id = message.op_id if isinstance(message, Command) else None
        try:
            await self.dispatch(message)
        except HubError as err:
            self.send_error(err, op_id)
        except Exception as exc:  # a bug answers this frame, it does not end the socket
            log.exception("unhandled error for %s", type(message).__name__)
            self.send(
                encode(
                    Error(
                        code=ErrorCode.internal_error.value,
                        message=f"internal error while handling {message.type}: {exc}",
                        op_id=op_id,
                    )
                )
            )

    async def dispatch(self, message: ClientMessage) -> None:
        if isinstance(message, Hello):
            await self._hello(message)
            return
        if self.hello is None or self.client_id is None:
            raise HubError(
                ErrorCode.hello_required,
                f"send hello before {message.type}",
                suggestions=[f'{{"type": "hello", "protocol": {PROTOCOL_VERSION}, "client": "cli", "name": "me"}}'],
            )
        if isinstance(message, Ping):
            self.send(encode(Pong(t=message.t)))
        elif isinstance(message, Pong):
            pass  # liveness is recorded for every frame in receive()
        elif isinstance(message, ClockPing):
            self.send(encode(ClockPong(t0=message.t0, server_time=self.hub.clock())))
        else:
            assert isinstance(message, Command)
            fut = self.hub.pipeline_command(self.client_id, message)
            if fut is not None:
                await self._track(fut, message)
                return
            # Anything else runs after this connection's earlier commands took effect.
            await self._barrier()
            ack = await self.hub.handle_command(self.client_id, message)
            self.send(encode(ack))

    async def _track(self, fut: asyncio.Future[Any], message: Command) -> None:
        fut.add_done_callback(lambda f: self._answer(f, message))
        self._in_flight.append(fut)
        while self._in_flight and self._in_flight[0].done():
            self._in_flight.popleft()
        if len(self._in_flight) >= MAX_IN_FLIGHT:
            await asyncio.wait([self._in_flight[0]])

    def _answer(self, fut: asyncio.Future[Any], message: Command) -> None:
        """Send a pipelined command's one ack or error (futures resolve in command order)."""
        if fut.cancelled():
            self.send_error(HubError(ErrorCode.internal_error, "the hub is shutting down"), message.op_id)
            return
        exc = fut.exception()
        if exc is None:
            self.send(encode(fut.result()))
        elif isinstance(exc, HubError):
            self.send_error(exc, message.op_id)
        else:
            kind = str(getattr(message, "type", type(message).__name__))
            log.error("unhandled error for %s", kind, exc_info=exc)
            self.send(encode(Error(code=ErrorCode.internal_error.value,
                                   message=f"internal error while handling {kind}: {exc}",
                                   op_id=message.op_id)))

    async def _barrier(self) -> None:
        pending = [f for f in self._in_flight if not f.done()]
        self._in_flight.clear()
        if pending:
            await asyncio.wait(pending)

    async def _hello(self, hello: Hello) -> None:
        if self.hello is not None:
            raise HubError(ErrorCode.invalid_message, "hello was already received on this connection")
        if hello.protocol != PROTOCOL_VERSION:
            raise HubError(
                ErrorCode.unsupported_version,
                f"this hub speaks protocol {PROTOCOL_VERSION}, the client sent {hello.protocol}",
                details={"supported": [PROTOCOL_VERSION], "requested": hello.protocol},
                suggestions=["upgrade the client or the hub so both speak the same version"],
            )
        if not self.hub.token_ok(hello.token):
            self.send_error(HubError(ErrorCode.not_authorized, "missing or wrong token"))
            from hub.protocol import CloseCode

            self.close(CloseCode.NOT_AUTHORIZED, "not authorized")
            return
        self.hello = hello
        self.client_id = self.hub.connect(self, hello)
        self.send(encode(self.hub.welcome(self.client_id)))
        if hello.topics or hello.resume is not None:
            await self.hub.subscribe(self.client_id, hello.topics, hello.resume)

    def ack(self, op_id: str, **result: object) -> None:
        self.send(encode(Ack(op_id=op_id, result=dict(result))))
