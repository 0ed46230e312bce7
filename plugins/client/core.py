"""The client's protocol state machine, free of I/O (the websockets sans-I/O idea).

An adapter feeds it frames with ``receive(data, now)`` and sends what ``take_outgoing``
returns; the core keeps the resume cursor, de-duplicates events, checks job.notes
numbering, tracks commands waiting for their answer, answers heartbeats, collects clock
samples and keeps the latest transport timeline per session. Times are the client's
clock in seconds (whatever the adapter uses, e.g. ``time.monotonic``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from hub.events import JobCancelled, JobCompleted, JobFailed, JobNotes, JobQueued, JobStarted
from hub.protocol import (
    Ack,
    ClientKind,
    ClockPing,
    ClockPong,
    Command,
    Error,
    EventMessage,
    Goodbye,
    Hello,
    JobProgress,
    Ping,
    Pong,
    Presence,
    Resumed,
    ResumePoint,
    SubmitJob,
    Subscribe,
    TransportState,
    Unsubscribe,
    Welcome,
    encode,
)
from plugins.client.clocksync import ClockEstimator, ClockSample
from plugins.client.cursor import Cursor
from plugins.client.frames import MalformedFrame, parse_server_frame
from plugins.client.notes import NotesTracker
from plugins.client.ops import OpIds, PendingOps
from plugins.client.outputs import (
    CommandLost,
    Connected,
    Delivery,
    NotesGap,
    ProtocolError,
    Replied,
)
from plugins.client.timeline import local_beat

_TERMINAL = (JobCompleted, JobFailed, JobCancelled)


class ClientCore:
    def __init__(
        self,
        *,
        name: str,
        kind: ClientKind = "daw-plugin",
        token: str | None = None,
        topics: Iterable[str] = (),
        resume: ResumePoint | None = None,
        op_prefix: str | None = None,
    ) -> None:
        self.name = name
        self.kind: ClientKind = kind
        self.token = token
        self.topics: list[str] = list(dict.fromkeys(topics))
        self.cursor = Cursor()
        if resume is not None:
            self.cursor.start(resume.epoch, resume.offset)
        self.ops = OpIds(op_prefix)
        self.pending = PendingOps()
        self.notes = NotesTracker()
        self.clock = ClockEstimator()
        self.welcome: Welcome | None = None
        self.transport: dict[str, TransportState] = {}
        self.malformed = 0
        self._outgoing: deque[bytes] = deque()
        self._resuming = False
        self._clock_pings: set[float] = set()

    # --- connection lifecycle ----------------------------------------------------------

    def hello(self) -> bytes:
        """The first frame of every connection: resume from the cursor once one is known."""
        self.welcome = None
        resume = self.cursor.resume_point()
        self._resuming = resume is not None
        return encode(
            Hello(client=self.kind, name=self.name, token=self.token, resume=resume, topics=self.topics)
        )

    def connection_lost(self) -> tuple[list[bytes], list[Delivery]]:
        """Frames to resend on the next connection (idempotent commands) and lost commands."""
        self.welcome = None
        self._clock_pings.clear()
        resend, lost = self.pending.connection_lost()
        return [encode(c) for c in resend], [CommandLost(c) for c in lost]

    @property
    def connected(self) -> bool:
        return self.welcome is not None

    # --- outgoing ------------------------------------------------------------------------

    def new_op_id(self) -> str:
        return self.ops.next()

    def command(self, cmd: Command, now: float) -> bytes:
        """Register a command as waiting for its answer and return its frame."""
        self.pending.add(cmd, now)
        if isinstance(cmd, Subscribe):
            # Remembered so the next hello subscribes (and resumes) them too.
            self.topics += [t for t in cmd.topics if t not in self.topics]
        elif isinstance(cmd, Unsubscribe):
            self.topics = [t for t in self.topics if t not in cmd.topics]
        return encode(cmd)

    def clock_ping(self, now: float) -> bytes:
        self._clock_pings.add(now)
        return encode(ClockPing(t0=now))

    def ping(self, now: float) -> bytes:
        return encode(Ping(t=now))

    def take_outgoing(self) -> list[bytes]:
        frames = list(self._outgoing)
        self._outgoing.clear()
        return frames

    # --- incoming ------------------------------------------------------------------------

    def receive(self, data: str | bytes, now: float) -> list[Delivery]:
        """Handle one server frame; a malformed one becomes a ProtocolError, never an exception."""
        try:
            msg = parse_server_frame(data)
        except MalformedFrame as bad:
            self.malformed += 1
            return [ProtocolError(bad.reason, bad.excerpt)]
        if not self.connected and not isinstance(msg, Welcome | Error | Goodbye | Ping):
            self.malformed += 1
            return [ProtocolError(f"{msg.type} before welcome", str(data)[:200])]
        if isinstance(msg, Welcome):
            return self._on_welcome(msg, now)
        if isinstance(msg, EventMessage):
            return self._on_event(msg)
        if isinstance(msg, Ack | Error):
            return self._on_reply(msg)
        if isinstance(msg, Resumed):
            return self._on_resumed(msg)
        if isinstance(msg, TransportState):
            return self._on_transport(msg)
        if isinstance(msg, ClockPong):
            return self._on_clock_pong(msg, now)
        if isinstance(msg, Ping):
            self._outgoing.append(encode(Pong(t=msg.t)))
            return []
        if isinstance(msg, Pong):
            return []
        if isinstance(msg, JobProgress | Presence | Goodbye):
            return [msg]
        return [ProtocolError(f"unhandled message {msg.type}", str(data)[:200])]

    def _on_welcome(self, msg: Welcome, now: float) -> list[Delivery]:
        if self.connected:
            return [ProtocolError("a second welcome on one connection", msg.type)]
        self.welcome = msg
        self.transport.clear()  # seq numbers restart with a new connection (or a new hub)
        # A restarted hub has a new clock origin; until pongs arrive, the welcome's
        # server_time gives a guess that is off by at most the one-way latency.
        self.clock.reset(rough_offset=msg.server_time - now)
        if not self._resuming:
            # A fresh subscription starts at the head the welcome reports: the hub
            # subscribes the hello's topics before it publishes anything newer.
            self.cursor.start(msg.epoch, msg.offset)
        return [Connected(msg, resumed=self._resuming)]

    def _on_resumed(self, msg: Resumed) -> list[Delivery]:
        if not msg.recovered:
            # History is gone: the snapshot is the state at msg.offset; start over from there.
            self.cursor.start(msg.epoch, msg.offset)
            self.notes.reset()
        return [msg]

    def _on_event(self, msg: EventMessage) -> list[Delivery]:
        welcome = self.welcome
        assert welcome is not None
        if msg.epoch != welcome.epoch:
            return [ProtocolError(f"event from epoch {msg.epoch}, connection is {welcome.epoch}", "")]
        if not self.cursor.accept(msg.epoch, msg.offset):
            return []
        out: list[Delivery] = []
        ev = msg.event
        if isinstance(ev, JobQueued | JobStarted):
            self.notes.begin(ev.job)
        elif isinstance(ev, JobNotes):
            check = self.notes.check(ev.job, ev.seq)
            if not check.fresh:
                return []
            if check.gap is not None:
                out.append(NotesGap(ev.job, *check.gap))
        elif isinstance(ev, _TERMINAL):
            self.notes.end(ev.job)
        out.append(msg)
        return out

    def _on_reply(self, msg: Ack | Error) -> list[Delivery]:
        if msg.op_id is None:
            return [msg]  # a connection-level error (bad frame, hello refused)
        pending = self.pending.resolve(msg.op_id)
        if pending is None:
            if isinstance(msg, Error):
                return [msg]
            return [ProtocolError(f"ack for unknown op_id {msg.op_id}", "")]
        if isinstance(msg, Ack) and isinstance(pending.command, SubmitJob):
            job = msg.result.get("job")
            if isinstance(job, str):
                self.notes.begin(job)
        return [Replied(pending.command, msg)]

    def _on_transport(self, msg: TransportState) -> list[Delivery]:
        known = self.transport.get(msg.session)
        if known is not None and msg.seq < known.seq:
            return []  # an older value overtaken by a newer one
        self.transport[msg.session] = msg
        return [msg]

    def _on_clock_pong(self, msg: ClockPong, now: float) -> list[Delivery]:
        if msg.t0 not in self._clock_pings:
            return []  # from before a reconnect (another hub clock), or not ours
        self._clock_pings.discard(msg.t0)
        self.clock.add(ClockSample(t0=msg.t0, server_time=msg.server_time, t1=now))
        return []

    # --- derived views -------------------------------------------------------------------

    @property
    def clock_offset(self) -> float | None:
        """hub_time - client_time (None until measured)."""
        return self.clock.offset

    def beat_at(self, session: str, local_time: float) -> float | None:
        state = self.transport.get(session)
        offset = self.clock.offset
        if state is None or offset is None:
            return None
        return local_beat(state, local_time, offset)

    def hub_time(self, local_time: float) -> float | None:
        offset = self.clock.offset
        return None if offset is None else local_time + offset
