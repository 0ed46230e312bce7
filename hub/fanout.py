"""Fan-out: route encoded frames to per-client outboxes.

Each frame is encoded once and the same ``str`` object is queued for every
recipient. Lossless frames keep their order in a bounded queue; latest-value
frames (progress, transport, presence) are conflated per key, so a slow client
gets the newest value, never a backlog. A client whose lossless queue overflows
is marked so its connection closes with ``CloseCode.SLOW_CONSUMER`` and it
resumes from its last offset: nobody else waits for it.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from hub.events import Envelope
from hub.protocol import EventMessage, encode


class Outbox:
    """One client's pending frames. Not thread-safe: lives on the event loop."""

    __slots__ = ("_latest", "_lossless", "_space", "_wake", "closed", "enqueued_at", "limit", "overflowed")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._lossless: deque[str] = deque()
        self._latest: dict[str, str] = {}
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self.overflowed = False
        self.closed = False
        self.enqueued_at = 0.0

    def push(self, frame: str) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._lossless) >= self.limit:
            # Drop the backlog: the client will resume from its last offset instead.
            self.overflowed = True
            self._lossless.clear()
            self._latest.clear()
        else:
            self._lossless.append(frame)
        self._wake.set()

    def put_latest(self, key: str, frame: str) -> None:
        if self.overflowed or self.closed:
            return
        self._latest.pop(key, None)  # re-insert so delivery order follows recency
        self._latest[key] = frame
        self._wake.set()

    def pending(self) -> int:
        return len(self._lossless) + len(self._latest)

    def has_room(self, window: int) -> bool:
        """Whether fewer than ``window`` lossless frames (at most half the limit) are waiting."""
        return len(self._lossless) < min(window, self.limit // 2)

    async def room(self, window: int) -> None:
        """Wait until fewer than ``window`` lossless frames wait (or the outbox is closed).

        A replay paces itself with this: it encodes frames only about as fast as the
        socket takes them, so resuming far back neither overflows the queue nor wastes
        work on a client that drops again; live events wait in the fan-out's hold buffer.
        """
        while not self.has_room(window) and not (self.closed or self.overflowed):
            self._space.clear()
            await self._space.wait()

    async def take(self) -> list[str]:
        """Wait for frames; return every lossless frame in order, then the latest values."""
        while not (self._lossless or self._latest or self.overflowed or self.closed):
            self._wake.clear()
            await self._wake.wait()
        frames = list(self._lossless)
        self._lossless.clear()
        frames.extend(self._latest.values())
        self._latest.clear()
        self._space.set()
        return frames

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._space.set()


@dataclass
class Subscriber:
    client_id: str
    outbox: Outbox
    topics: set[str] = field(default_factory=set)
    # While a replay is being read, live frames wait here so none overtakes the replay.
    holding: list[tuple[int, str]] | None = None


def delivery_topics(env: Envelope) -> tuple[str, ...]:
    """Topics an event reaches: its own, plus its session for job events tied to one."""
    session = getattr(env.event, "session", None)
    if env.topic in ("jobs", "files") and isinstance(session, str):
        return (env.topic, f"session:{session}")
    return (env.topic,)


class Fanout:
    def __init__(self) -> None:
        self._subs: dict[str, Subscriber] = {}
        self._by_topic: dict[str, set[str]] = {}
        self.published_offset = 0
        self.frames_out = 0
        self.last_fanout_seconds = 0.0

    # --- membership ---------------------------------------------------------------

    def add(self, client_id: str, outbox: Outbox) -> Subscriber:
        sub = Subscriber(client_id, outbox)
        self._subs[client_id] = sub
        return sub

    def remove(self, client_id: str) -> None:
        sub = self._subs.pop(client_id, None)
        if sub is None:
            return
        for topic in sub.topics:
            members = self._by_topic.get(topic)
            if members is not None:
                members.discard(client_id)
                if not members:
                    del self._by_topic[topic]
        sub.outbox.close()

    def subscribe(self, client_id: str, topics: Iterable[str]) -> None:
        sub = self._subs[client_id]
        for topic in topics:
            sub.topics.add(topic)
            self._by_topic.setdefault(topic, set()).add(client_id)

    def unsubscribe(self, client_id: str, topics: Iterable[str]) -> None:
        sub = self._subs[client_id]
        for topic in topics:
            sub.topics.discard(topic)
            members = self._by_topic.get(topic)
            if members is not None:
                members.discard(client_id)

    def hold(self, client_id: str) -> int:
        """Start buffering a client's live events; returns the offset a replay must reach."""
        self._subs[client_id].holding = []
        return self.published_offset

    def release(self, client_id: str, replayed_to: int) -> None:
        """Deliver the held live events that the replay did not already cover."""
        sub = self._subs.get(client_id)
        if sub is None or sub.holding is None:
            return
        held, sub.holding = sub.holding, None
        for offset, frame in held:
            if offset > replayed_to:
                sub.outbox.push(frame)

    def subscriber(self, client_id: str) -> Subscriber | None:
        return self._subs.get(client_id)

    def subscribers_of(self, topic: str) -> list[Subscriber]:
        return [self._subs[c] for c in self._by_topic.get(topic, ())]

    def __len__(self) -> int:
        return len(self._subs)

    def queue_depths(self) -> list[int]:
        return [s.outbox.pending() for s in self._subs.values()]

    # --- delivery -----------------------------------------------------------------

    def publish(self, envelopes: Iterable[Envelope]) -> None:
        """Deliver durable events in offset order (lossless)."""
        started = time.perf_counter()
        for env in envelopes:
            frame = encode(EventMessage.from_envelope(env)).decode()
            recipients: set[str] = set()
            for topic in delivery_topics(env):
                recipients.update(self._by_topic.get(topic, ()))
            for cid in recipients:
                sub = self._subs[cid]
                if sub.holding is not None:
                    sub.holding.append((env.offset, frame))
                else:
                    sub.outbox.push(frame)
            self.frames_out += len(recipients)
            self.published_offset = env.offset
        self.last_fanout_seconds = time.perf_counter() - started

    def publish_latest(self, topic: str, key: str, frame: str) -> int:
        """Deliver a latest-value frame to a topic's subscribers; returns recipients."""
        members = self._by_topic.get(topic, ())
        for cid in members:
            self._subs[cid].outbox.put_latest(key, frame)
        self.frames_out += len(members)
        return len(members)

    def send_to(self, client_id: str, frame: str) -> None:
        sub = self._subs.get(client_id)
        if sub is not None:
            sub.outbox.push(frame)
