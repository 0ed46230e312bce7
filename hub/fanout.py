"""Fan-out: route encoded frames to per-client outboxes.

Each frame is encoded once and the same ``str`` object is queued for every
recipient. Lossless frames keep their order in a bounded queue; latest-value
frames (progress, transport, presence) are conflated per key, so a slow client
gets the newest value, never a backlog. A client whose lossless queue overflows
is marked so its connection closes with ``CloseCode.SLOW_CONSUMER`` and it
resumes from its last offset: nobody else waits for it.

Delivery to the socket has two modes. With a :class:`Sink` attached (the hub's own
uvicorn protocol, see hub/wsframes.py) a new frame only marks the outbox dirty; one
:class:`Flusher` callback then writes every dirty outbox's frames, pre-framed, with one
``transport.write`` each, skipping clients whose transport is paused (they keep only
their newest latest-values until ``resume_writing``). Without a sink, the connection's
writer task awaits :meth:`Outbox.take` and sends frame by frame.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

from hub.events import Envelope
from hub.protocol import EventMessage, encode


class Sink(Protocol):
    """A socket the flusher may write to synchronously (hub.wsframes.DirectSocket)."""

    @property
    def writable(self) -> bool: ...

    def write_frames(self, frames: list[str]) -> None: ...


class Flusher:
    """Writes dirty outboxes to their sinks from loop callbacks, ``batch`` outboxes per callback.

    One publish to N clients costs N dict updates and one scheduled callback instead of N
    task wake-ups. Outboxes are served first-dirtied first; the batch limit lets the loop
    read sockets between slices of a large fan-out, and a client that is still queued when
    a newer value arrives just sends the newer one.
    """

    def __init__(self, batch: int = 256) -> None:
        self.batch = batch
        self._dirty: deque[Outbox] = deque()
        self._scheduled = False
        self.flushes = 0

    def schedule(self, box: Outbox) -> None:
        self._dirty.append(box)
        if not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)

    def _run(self) -> None:
        self._scheduled = False
        dirty = self._dirty
        for _ in range(min(len(dirty), self.batch)):
            dirty.popleft().drain()
        self.flushes += 1
        if dirty:
            self._scheduled = True
            asyncio.get_running_loop().call_soon(self._run)


# Latest-value keys remembered per topic (job progress adds one per job; old ones go first).
MAX_LATEST_KEYS = 64


class LatestValue:
    """The newest frame of one latest-value key on one topic, shared by its subscribers.

    An outbox holds a reference to it, not a copy, and reads ``frame`` when it writes, so
    it always sends the newest value. ``idle`` lists the subscribers holding no reference
    (they sent the last value they were given): a publish only has to touch those, so
    publishing to N clients that are still behind costs O(1), not O(N).
    """

    __slots__ = ("frame", "idle", "subscribers")

    def __init__(self, subscribers: Iterable[Outbox]) -> None:
        self.frame = ""
        self.subscribers: set[Outbox] = set(subscribers)
        self.idle: list[Outbox] = list(self.subscribers)


def _values(latest: dict[str, str | LatestValue], owner: Outbox) -> list[str]:
    """The frames of pending latest values; shared ones re-arm ``owner`` for the next value."""
    frames: list[str] = []
    for value in latest.values():
        if isinstance(value, str):
            frames.append(value)
        else:
            frames.append(value.frame)
            if owner in value.subscribers:
                value.idle.append(owner)
    latest.clear()
    return frames


class Outbox:
    """One client's pending frames. Not thread-safe: lives on the event loop."""

    __slots__ = (
        "_dirty", "_flusher", "_latest", "_lossless", "_on_end", "_on_overflow", "_sink", "_space",
        "_wake", "closed", "enqueued_at", "limit", "overflowed",
    )

    def __init__(self, limit: int, on_overflow: Callable[[], None] | None = None) -> None:
        self.limit = limit
        self._on_overflow = on_overflow  # counts slow consumers (the hub's metrics)
        self._lossless: deque[str] = deque()
        self._latest: dict[str, str | LatestValue] = {}
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._sink: Sink | None = None
        self._flusher: Flusher | None = None
        self._dirty = False
        self._on_end: Callable[[], None] | None = None
        self.overflowed = False
        self.closed = False
        self.enqueued_at = 0.0

    def attach(self, sink: Sink, flusher: Flusher) -> None:
        """Deliver through ``sink`` from now on; the writer task then only waits for the end."""
        self._sink = sink
        self._flusher = flusher
        if self._lossless or self._latest:
            self._notify()

    @property
    def direct(self) -> bool:
        return self._sink is not None

    def on_end(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` once, when the outbox closes or overflows (now if it already has).

        Lets a directly written connection start its closing task only when needed,
        instead of keeping one task per idle connection waiting for that moment.
        """
        self._on_end = callback
        if self.closed or self.overflowed:
            self._ended()

    def _ended(self) -> None:
        callback, self._on_end = self._on_end, None
        if callback is not None:
            callback()

    def _notify(self) -> None:
        flusher = self._flusher
        if flusher is None:
            self._wake.set()
        elif not self._dirty:
            self._dirty = True
            flusher.schedule(self)

    def push(self, frame: str) -> None:
        if self.overflowed or self.closed:
            return
        if len(self._lossless) >= self.limit:
            # Drop the backlog: the client will resume from its last offset instead.
            self.overflowed = True
            self._lossless.clear()
            self._latest.clear()
            self._wake.set()  # the writer task sends goodbye and closes
            if self._on_overflow is not None:
                self._on_overflow()
            self._ended()
        else:
            self._lossless.append(frame)
            self._notify()

    def put_latest(self, key: str, frame: str | LatestValue) -> None:
        if self.overflowed or self.closed:
            return
        latest = self._latest
        if key in latest:
            old = latest.pop(key)  # re-insert so delivery order follows recency
            if isinstance(old, LatestValue) and old is not frame and self in old.subscribers:
                # The same key on another topic (job progress goes to "jobs" and its
                # session): stay armed for that one too.
                old.idle.append(self)
        latest[key] = frame
        if self._flusher is None:
            self._wake.set()
        elif not self._dirty:
            self._dirty = True
            self._flusher.schedule(self)

    def drain(self) -> None:
        """Write everything pending to the sink now, if it can take it (flusher callback).

        Skipped once the outbox is closed or overflowed: the writer task owns the end of
        the stream (remaining frames, goodbye, close), and a paused transport is retried
        from :meth:`resumed`.
        """
        self._dirty = False
        sink = self._sink
        if sink is None or self.closed or self.overflowed or not sink.writable:
            return
        if not (self._lossless or self._latest):
            return
        if self._lossless:
            frames = list(self._lossless)
            self._lossless.clear()
            frames.extend(_values(self._latest, self))
        else:
            frames = _values(self._latest, self)
        sink.write_frames(frames)
        self._space.set()

    def resumed(self) -> None:
        """The sink's transport drained below its low-water mark: send what waited."""
        if self._lossless or self._latest:
            self._notify()

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
        frames.extend(_values(self._latest, self))
        self._space.set()
        return frames

    def close(self) -> None:
        self.closed = True
        self._wake.set()
        self._space.set()
        self._ended()


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
        self.slow_consumers = 0  # clients whose queue overflowed (closed with 4008)
        self.last_fanout_seconds = 0.0
        self.flusher = Flusher()
        # topic -> key -> shared latest value, least recently published first
        self._values: dict[str, dict[str, LatestValue]] = {}

    # --- membership ---------------------------------------------------------------

    def new_outbox(self, limit: int) -> Outbox:
        """A client's outbox, its overflow counted in ``slow_consumers``."""
        return Outbox(limit, on_overflow=self._count_slow_consumer)

    def _count_slow_consumer(self) -> None:
        self.slow_consumers += 1

    def add(self, client_id: str, outbox: Outbox) -> Subscriber:
        sub = Subscriber(client_id, outbox)
        self._subs[client_id] = sub
        return sub

    def remove(self, client_id: str) -> None:
        sub = self._subs.pop(client_id, None)
        if sub is None:
            return
        for topic in sub.topics:
            self._leave(topic, client_id, sub.outbox)
        sub.outbox.close()

    def subscribe(self, client_id: str, topics: Iterable[str]) -> None:
        sub = self._subs[client_id]
        for topic in topics:
            if topic in sub.topics:
                continue
            sub.topics.add(topic)
            self._by_topic.setdefault(topic, set()).add(client_id)
            for value in self._values.get(topic, {}).values():
                value.subscribers.add(sub.outbox)
                value.idle.append(sub.outbox)

    def unsubscribe(self, client_id: str, topics: Iterable[str]) -> None:
        sub = self._subs[client_id]
        for topic in topics:
            if topic in sub.topics:
                sub.topics.discard(topic)
                self._leave(topic, client_id, sub.outbox)

    def _leave(self, topic: str, client_id: str, box: Outbox) -> None:
        members = self._by_topic.get(topic)
        if members is not None:
            members.discard(client_id)
            if not members:
                del self._by_topic[topic]
                self._values.pop(topic, None)
        for value in self._values.get(topic, {}).values():
            value.subscribers.discard(box)  # idle lists are filtered when next published

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
        """Deliver a latest-value frame to a topic's subscribers; returns recipients.

        Subscribers that still hold an unsent reference to this key just see the new
        frame when they are written; only idle ones are touched.
        """
        members = self._by_topic.get(topic)
        if not members:
            return 0
        values = self._values.setdefault(topic, {})
        value = values.pop(key, None)
        if value is None:
            value = LatestValue(self._subs[cid].outbox for cid in members)
            if len(values) >= MAX_LATEST_KEYS:
                del values[next(iter(values))]  # a job long finished; holders keep their ref
        values[key] = value  # most recently published last
        value.frame = frame
        idle, value.idle = value.idle, []
        subscribers = value.subscribers
        for box in idle:
            if box in subscribers:
                box.put_latest(key, value)
        self.frames_out += len(members)
        return len(members)

    def send_to(self, client_id: str, frame: str) -> None:
        sub = self._subs.get(client_id)
        if sub is not None:
            sub.outbox.push(frame)
