"""Pre-framed WebSocket writes: build a server frame's bytes once, write them to every socket.

Server-to-client frames are unmasked (RFC 6455 §5.1), so one message has the same bytes
on every connection. The fan-out shares one ``str`` per message between all outboxes;
:func:`wire` turns it into frame bytes once (a small cache keyed by that string), and a
:class:`DirectSocket` writes a client's pending frames with one ``transport.write``,
from a plain callback instead of one coroutine step per client and frame.

uvicorn's ASGI ``send`` cannot do that, so :class:`TuttiWebSocketProtocol` (uvicorn's
websockets-sansio implementation plus three hooks) puts a :class:`DirectSocket` in the
connection's ASGI scope under ``extensions["tutti.direct"]``. Under any other server the
extension is absent and hub/ws.py falls back to ``send_text`` per frame.

Frames are written uncompressed even when the client negotiated permessage-deflate:
RSV1 clear marks a message as not compressed, which RFC 7692 §6 allows.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol

if TYPE_CHECKING:
    from starlette.websockets import WebSocket
    from websockets.http11 import Request

    from hub.fanout import Outbox

EXTENSION = "tutti.direct"

# Frames bigger than this are framed per write, not cached (rare: replays, big note chunks).
_CACHE_MAX_FRAME = 256 * 1024
_CACHE_MAX_BYTES = 4 * 1024 * 1024
_cache: dict[str, bytes] = {}
_cache_bytes = 0


def frame_text(payload: bytes) -> bytes:
    """One unmasked, final text frame (opcode 1) carrying ``payload``."""
    n = len(payload)
    if n < 126:
        head = bytes((0x81, n))
    elif n < 65536:
        head = bytes((0x81, 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x81, 127)) + n.to_bytes(8, "big")
    return head + payload


def wire(text: str) -> bytes:
    """The frame bytes for ``text``, built once per message however many clients get it.

    The fan-out queues the same ``str`` object for every recipient; a ``str`` caches its
    hash and compares by identity first, so a hit costs one dict lookup.
    """
    global _cache_bytes
    data = _cache.get(text)
    if data is None:
        data = frame_text(text.encode())
        if len(data) <= _CACHE_MAX_FRAME:
            if _cache_bytes + len(data) > _CACHE_MAX_BYTES:
                _cache.clear()  # cheaper than LRU bookkeeping; live messages re-enter on use
                _cache_bytes = 0
            _cache[text] = data
            _cache_bytes += len(data)
    return data


class DirectSocket:
    """Synchronous writer for one accepted connection (the :class:`hub.fanout.Sink` protocol).

    ``writable`` is false while the transport's buffer is over its high-water mark: the
    fan-out then skips this client, keeping its frames (conflated latest values, bounded
    lossless queue) until ``resume_writing`` calls :meth:`Outbox.resumed`.
    """

    __slots__ = ("_proto", "_transport", "outbox", "paused")

    def __init__(self, proto: TuttiWebSocketProtocol) -> None:
        self._proto = proto
        self._transport = proto.transport
        self.paused = False
        self.outbox: Outbox | None = None

    @classmethod
    def of(cls, ws: WebSocket) -> DirectSocket | None:
        ext = ws.scope.get("extensions") or {}
        entry = ext.get(EXTENSION)
        sock = entry.get("socket") if isinstance(entry, dict) else None
        return sock if isinstance(sock, DirectSocket) else None

    @property
    def writable(self) -> bool:
        p = self._proto
        return not (self.paused or p.close_sent or p.disconnected)

    def write_frames(self, frames: list[str]) -> None:
        if len(frames) == 1:
            self._transport.write(wire(frames[0]))
        else:
            self._transport.write(b"".join([wire(f) for f in frames]))

    def abort(self) -> None:
        """Drop the connection now, unsent data included (a peer that stopped reading)."""
        self._transport.abort()

    # --- called by the protocol -------------------------------------------------------

    def _pause(self) -> None:
        self.paused = True

    def _resume(self) -> None:
        self.paused = False
        if self.outbox is not None:
            self.outbox.resumed()


class TuttiWebSocketProtocol(WebSocketsSansIOProtocol):
    """uvicorn's websockets-sansio protocol that also exposes a :class:`DirectSocket`."""

    direct: DirectSocket | None = None

    def handle_connect(self, event: Request) -> None:
        super().handle_connect(event)
        # The ASGI task was only created, not started: the scope can still be extended.
        scope: Any = getattr(self, "scope", None)
        if scope is not None and not self.close_sent:
            self.direct = DirectSocket(self)
            scope["extensions"][EXTENSION] = {"socket": self.direct}

    def pause_writing(self) -> None:
        super().pause_writing()
        if self.direct is not None:
            self.direct._pause()

    def resume_writing(self) -> None:
        super().resume_writing()
        if self.direct is not None:
            self.direct._resume()
