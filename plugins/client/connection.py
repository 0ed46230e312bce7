"""The asyncio adapter: ClientCore over a ``websockets`` connection, plus HTTP via httpx.

One background task owns the socket: it connects, sends hello (with the resume point
once one is known), feeds every frame to the core and reconnects with backoff and
jitter when the socket drops. Deliveries go to listener queues; commands resolve
futures when their ack or error arrives. All protocol decisions live in the core.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterable
from pathlib import Path
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidURI

from hub.events import FileReady
from hub.model import Meter
from hub.protocol import (
    Ack,
    AddSection,
    AddTake,
    ClientKind,
    CloseCode,
    Command,
    CreateSession,
    Error,
    EventMessage,
    JobProgress,
    ResumePoint,
    SubmitJob,
    Subscribe,
    TakeTransport,
    TransportUpdate,
)
from plugins.client.backoff import Backoff
from plugins.client.core import ClientCore
from plugins.client.files import download_verified, http_base, upload_bytes
from plugins.client.hosttimeline import HostTimeline
from plugins.client.outputs import CommandLost, Connected, Delivery, Disconnected, Replied

log = logging.getLogger("tutti.client")

# Close codes after which retrying cannot help (a new token or origin is needed).
FATAL_CLOSE = frozenset({CloseCode.NOT_AUTHORIZED, CloseCode.POLICY})
_JOB_END = frozenset({"job.completed", "job.failed", "job.cancelled"})


class CommandFailed(Exception):
    """The hub answered a command with an error."""

    def __init__(self, error: Error) -> None:
        super().__init__(f"{error.code}: {error.message}")
        self.error = error


class ConnectionLostError(Exception):
    """A non-idempotent command was in flight when the socket dropped; its outcome is unknown."""


class ClientClosed(Exception):
    """The client was closed, or the hub refused it for good (see ``TuttiClient.failure``)."""


class TuttiClient:
    def __init__(
        self,
        url: str,
        *,
        name: str,
        kind: ClientKind = "daw-plugin",
        token: str | None = None,
        topics: Iterable[str] = (),
        resume: ResumePoint | None = None,
        clock: Callable[[], float] = time.monotonic,
        backoff: Backoff | None = None,
        clock_samples: int = 12,
        clock_spacing: float = 0.02,
        clock_interval: float = 30.0,
        http_url: str | None = None,
        open_timeout: float = 10.0,
    ) -> None:
        self.url = url
        self.clock = clock
        self.core = ClientCore(name=name, kind=kind, token=token, topics=topics, resume=resume)
        self.backoff = backoff or Backoff()
        self.clock_samples = clock_samples
        self.clock_spacing = clock_spacing
        self.clock_interval = clock_interval
        self.open_timeout = open_timeout
        headers = {"authorization": f"Bearer {token}"} if token else {}
        self.http = httpx.AsyncClient(base_url=http_url or http_base(url), headers=headers, timeout=30.0)
        self.connected = asyncio.Event()
        self.connections = 0
        self.failure: str | None = None
        self.host: dict[str, HostTimeline] = {}
        self._ws: ClientConnection | None = None
        self._runner: asyncio.Task[None] | None = None
        self._closing = False
        self._futures: dict[str, asyncio.Future[Ack | Error]] = {}
        self._listeners: list[asyncio.Queue[Delivery | None]] = []
        self._resend: list[bytes] = []
        self._last_rx = 0.0
        self._clock_event = asyncio.Event()
        self.inbox: asyncio.Queue[Delivery | None] = self.listen()

    # --- lifecycle -------------------------------------------------------------------------

    async def __aenter__(self) -> TuttiClient:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self, *, wait: bool = True, timeout: float = 30.0) -> None:
        """Begin connecting; with ``wait``, return once the first handshake is done."""
        if self._runner is None:
            self._runner = asyncio.create_task(self._run(), name=f"tutti-client-{self.core.name}")
        if wait:
            await self.wait_connected(timeout)

    async def wait_connected(self, timeout: float | None = None) -> None:
        waiter = asyncio.ensure_future(self.connected.wait())
        runner = self._runner
        assert runner is not None, "call start() first"
        done, _ = await asyncio.wait({waiter, runner}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
        if waiter not in done:
            waiter.cancel()
            if runner in done:
                raise ClientClosed(self.failure or "client closed")
            raise TimeoutError(f"not connected to {self.url} within {timeout}s")

    async def close(self) -> None:
        self._closing = True
        ws = self._ws
        if ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(ws.close(), 2.0)
        if self._runner is not None:
            self._runner.cancel()
            with contextlib.suppress(BaseException):
                await self._runner
        await self.http.aclose()
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(ClientClosed("client closed"))
        for q in self._listeners:
            q.put_nowait(None)

    def abort_connection(self) -> None:
        """Drop the TCP connection without a closing handshake (tests, dead-link handling)."""
        ws = self._ws
        if ws is not None:
            ws.transport.abort()

    # --- deliveries ------------------------------------------------------------------------

    def listen(self) -> asyncio.Queue[Delivery | None]:
        """A new queue receiving every delivery from now on (None once the client closes)."""
        q: asyncio.Queue[Delivery | None] = asyncio.Queue()
        self._listeners.append(q)
        return q

    def unlisten(self, q: asyncio.Queue[Delivery | None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(q)

    async def deliveries(self) -> AsyncIterator[Delivery]:
        """The main delivery stream (events once each, in order; notices; latest values)."""
        while True:
            item = await self.inbox.get()
            if item is None:
                return
            yield item

    def _emit(self, item: Delivery) -> None:
        if isinstance(item, Replied):
            fut = self._futures.pop(item.command.op_id, None)
            if fut is not None and not fut.done():
                fut.set_result(item.reply)
                return
        elif isinstance(item, CommandLost):
            fut = self._futures.pop(item.command.op_id, None)
            if fut is not None and not fut.done():
                fut.set_exception(ConnectionLostError(f"{getattr(item.command, 'type', 'command')} {item.command.op_id}"))
                return
        for q in self._listeners:
            q.put_nowait(item)

    # --- the connection loop ----------------------------------------------------------------

    async def _run(self) -> None:
        while not self._closing:
            try:
                ws = await connect(self.url, open_timeout=self.open_timeout, ping_interval=None,
                                   max_size=None, close_timeout=2.0)
            except (OSError, InvalidHandshake, TimeoutError) as exc:
                log.debug("connect to %s failed: %s", self.url, exc)
                await asyncio.sleep(self.backoff.next_delay())
                continue
            except InvalidURI as exc:
                self.failure = str(exc)
                self._emit(Disconnected(None, self.failure, will_retry=False))
                return
            code, reason = await self._serve(ws)
            fatal = code in FATAL_CLOSE
            if fatal:
                self.failure = f"closed by the hub: {code} {reason}"
            self._emit(Disconnected(code, reason, will_retry=not (fatal or self._closing)))
            if fatal:
                return
            if not self._closing:
                await asyncio.sleep(self.backoff.next_delay())

    async def _serve(self, ws: ClientConnection) -> tuple[int | None, str]:
        self._ws = ws
        self.connections += 1
        side: list[asyncio.Task[None]] = []
        try:
            await ws.send(self.core.hello())
            self._last_rx = self.clock()
            async for raw in ws:
                now = self.clock()
                self._last_rx = now
                deliveries = self.core.receive(raw, now)
                for frame in self.core.take_outgoing():
                    await ws.send(frame.decode())
                for item in deliveries:
                    if isinstance(item, Connected):
                        await self._on_connected(ws, side)
                    self._emit(item)
                if self.core.clock.ready:
                    self._clock_event.set()
        except ConnectionClosed:
            pass
        except OSError as exc:
            log.debug("socket error: %s", exc)
        finally:
            self._ws = None
            self.connected.clear()
            for task in side:
                task.cancel()
            resend, lost = self.core.connection_lost()
            self._resend = resend + self._resend
            for item in lost:
                self._emit(item)
        return ws.close_code, ws.close_reason or ""

    async def _on_connected(self, ws: ClientConnection, side: list[asyncio.Task[None]]) -> None:
        self.backoff.reset()
        # Idempotent commands that were in flight go first, with their original op_ids.
        resend, self._resend = self._resend, []
        for frame in resend:
            await ws.send(frame.decode())
        side.append(asyncio.create_task(self._heartbeat(ws)))
        side.append(asyncio.create_task(self._clock_sync(ws)))
        self.connected.set()

    async def _heartbeat(self, ws: ClientConnection) -> None:
        welcome = self.core.welcome
        assert welcome is not None
        interval, timeout = welcome.heartbeat_interval, welcome.heartbeat_timeout
        while True:
            await asyncio.sleep(min(interval, timeout / 3))
            if self.clock() - self._last_rx > timeout:
                log.info("no frame from the hub for %.1fs: dropping the connection", timeout)
                ws.transport.abort()
                return
            await ws.send(self.core.ping(self.clock()).decode())

    async def _clock_sync(self, ws: ClientConnection) -> None:
        """A burst of clock pings now and every ``clock_interval`` (the offset drifts)."""
        while True:
            for _ in range(self.clock_samples):
                await ws.send(self.core.clock_ping(self.clock()).decode())
                await asyncio.sleep(self.clock_spacing)
            await asyncio.sleep(self.clock_interval)

    # --- commands ---------------------------------------------------------------------------

    def op(self) -> str:
        return self.core.new_op_id()

    async def send_command(self, cmd: Command) -> None:
        """Send without waiting for the answer (it arrives as a ``Replied`` delivery)."""
        while True:
            await self.connected.wait()
            ws = self._ws
            if ws is None or not self.core.connected:
                await asyncio.sleep(0)
                continue
            # Registering and sending with no await in between: a drop either happens
            # before (we wait again) or after (connection_lost sees the command).
            frame = self.core.command(cmd, self.clock())
            with contextlib.suppress(ConnectionClosed):
                await ws.send(frame.decode())
            return

    async def request(self, cmd: Command, timeout: float | None = 60.0) -> Ack:
        """Send a command and return its ack; raise CommandFailed on an error answer."""
        fut: asyncio.Future[Ack | Error] = asyncio.get_running_loop().create_future()
        self._futures[cmd.op_id] = fut
        try:
            await asyncio.wait_for(self.send_command(cmd), timeout)
            reply = await asyncio.wait_for(fut, timeout)
        finally:
            self._futures.pop(cmd.op_id, None)
        if isinstance(reply, Error):
            raise CommandFailed(reply)
        return reply

    async def subscribe(self, *topics: str, resume: bool = False) -> Ack:
        point = self.core.cursor.resume_point() if resume else None
        return await self.request(Subscribe(op_id=self.op(), topics=list(topics), resume=point))

    async def create_session(self, title: str = "Untitled", tempo: float = 120.0) -> str:
        ack = await self.request(CreateSession(op_id=self.op(), title=title, tempo=tempo))
        return str(ack.result["session"])

    async def add_section(self, session: str, name: str, bars: int = 8) -> str:
        ack = await self.request(AddSection(op_id=self.op(), session=session, name=name, bars=bars))
        return str(ack.result["section"])

    # --- transport ----------------------------------------------------------------------------

    async def take_transport(self, session: str, *, force: bool = False) -> Ack:
        return await self.request(TakeTransport(op_id=self.op(), session=session, force=force))

    async def send_transport(self, session: str, tl: HostTimeline, *, meter: Meter | None = None,
                             at_next_bar: bool = False) -> Ack:
        """Report the host's timeline as it stands now, stamped on the hub's clock."""
        now = self.clock()
        self.host[session] = tl
        offset = self.core.clock_offset
        cmd = TransportUpdate(op_id=self.op(), session=session, playing=tl.playing, bpm=tl.bpm,
                              beat=tl.beat_at(now), meter=meter, host_time=now,
                              hub_time=None if offset is None else now + offset,
                              at_next_bar=at_next_bar)
        return await self.request(cmd)

    def _host(self, session: str) -> HostTimeline:
        return self.host.get(session) or HostTimeline(time_origin=self.clock())

    async def play(self, session: str, *, beat: float | None = None, bpm: float | None = None) -> Ack:
        tl = self._host(session)
        if bpm is not None:
            tl = tl.tempo(self.clock(), bpm)
        return await self.send_transport(session, tl.play(self.clock(), beat))

    async def stop(self, session: str) -> Ack:
        return await self.send_transport(session, self._host(session).stop(self.clock()))

    async def set_tempo(self, session: str, bpm: float, *, at_next_bar: bool = False) -> Ack:
        return await self.send_transport(session, self._host(session).tempo(self.clock(), bpm),
                                         at_next_bar=at_next_bar)

    async def locate(self, session: str, beat: float) -> Ack:
        return await self.send_transport(session, self._host(session).locate(self.clock(), beat))

    def beat_at(self, session: str, local_time: float | None = None) -> float | None:
        """The hub's transport beat for ``session`` at a local instant (default: now)."""
        return self.core.beat_at(session, self.clock() if local_time is None else local_time)

    # --- clock ----------------------------------------------------------------------------------

    @property
    def clock_offset(self) -> float | None:
        """hub_time - local_time (see plugins/client/clocksync.py)."""
        return self.core.clock_offset

    async def measure_clock(self, samples: int = 16, spacing: float = 0.01, timeout: float = 10.0,
                            target_uncertainty: float | None = None) -> float:
        """Take a fresh burst of samples on top of the periodic ones; return the estimate.

        With ``target_uncertainty`` (seconds) it keeps pinging, ``spacing`` apart, until the
        estimate's error bound is that small or ``timeout`` has passed: on a busy host most
        round trips are slow and a few fast ones make the estimate tight."""
        await self.wait_connected(timeout)
        ws = self._ws
        assert ws is not None
        deadline = self.clock() + timeout
        before = len(self.core.clock.samples)
        for _ in range(samples):
            await ws.send(self.core.clock_ping(self.clock()).decode())
            await asyncio.sleep(spacing)
        while len(self.core.clock.samples) < min(before + samples, self.core.clock.samples.maxlen or 0):
            if self.clock() > deadline:
                break
            self._clock_event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._clock_event.wait(), 0.05)
        while target_uncertainty is not None and self.clock() < deadline:
            bound = self.core.clock.uncertainty
            if bound is not None and bound <= target_uncertainty:
                break
            await ws.send(self.core.clock_ping(self.clock()).decode())
            await asyncio.sleep(spacing)
        offset = self.core.clock_offset
        if offset is None:
            raise TimeoutError("no clock.pong arrived")
        return offset

    # --- jobs ---------------------------------------------------------------------------------

    async def submit_job(self, engine: str, task: str, params: dict[str, Any] | None = None, *,
                         session: str | None = None, section: str | None = None,
                         num_variations: int = 1, priority: int = 0) -> str:
        ack = await self.request(SubmitJob(op_id=self.op(), engine=engine, task=task, params=params or {},
                                           session=session, section=section,
                                           num_variations=num_variations, priority=priority))
        return str(ack.result["job"])

    async def run_job(self, engine: str, task: str, params: dict[str, Any] | None = None, *,
                      session: str | None = None, section: str | None = None,
                      num_variations: int = 1) -> AsyncIterator[EventMessage | JobProgress]:
        """Submit a job and yield its progress and events until it ends (needs the ``jobs``
        topic, or the job's session topic, to be subscribed)."""
        q = self.listen()  # before submitting, so no early event is missed
        try:
            job = await self.submit_job(engine, task, params, session=session, section=section,
                                        num_variations=num_variations)
            async for item in _job_stream(q, job):
                yield item
        finally:
            self.unlisten(q)

    async def follow_job(self, job: str) -> AsyncIterator[EventMessage | JobProgress]:
        """Yield a submitted job's progress and events from now until it ends."""
        q = self.listen()
        try:
            async for item in _job_stream(q, job):
                yield item
        finally:
            self.unlisten(q)

    # --- files --------------------------------------------------------------------------------

    async def download(self, ready: FileReady, folder: Path, *, name: str | None = None,
                       replace: bool = False) -> Path:
        """Fetch an announced file into ``folder`` atomically, verified against its hash."""
        filename = name or ready.filename or f"{ready.artifact}.mid"
        return await download_verified(self.http, ready.url, folder / filename, sha256=ready.hash,
                                       size=ready.size, replace=replace)

    async def upload_take(self, path: Path, *, session: str, section: str,
                          label: str | None = None) -> tuple[str, str]:
        """Store a MIDI file in the CAS and add it as a take; returns (artifact id, take id)."""
        data = path.read_bytes()
        stored = await upload_bytes(self.http, data, session=session, section=section, filename=path.name)
        artifact = str(stored["artifact"])
        ack = await self.request(AddTake(op_id=self.op(), session=session, section=section,
                                         artifact=artifact, label=label or path.stem))
        return artifact, str(ack.result["take"])


async def _job_stream(q: asyncio.Queue[Delivery | None], job: str) -> AsyncIterator[EventMessage | JobProgress]:
    while True:
        item = await q.get()
        if item is None:
            return
        if isinstance(item, JobProgress) and item.job == job:
            yield item
        elif isinstance(item, EventMessage) and getattr(item.event, "job", None) == job:
            yield item
            if item.event.type in _JOB_END:
                return
