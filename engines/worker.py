"""The engine worker process: the child's loop and the hub's asyncio handle on it.

Child side (:func:`worker_main`): build the engine from its spec, ``setup`` and
``warmup``, report :class:`EngineInfo`, then alternate between reading hub
messages without blocking and stepping running jobs. Messages are read before
every step, so a cancel lands at the next step boundary. Any exception inside
an engine becomes a ``Failed`` event for that job; the worker itself lives on.

Hub side (:class:`WorkerHandle`): spawns the child with the ``spawn`` start
method (CUDA cannot survive ``fork``), reads its pipe with ``loop.add_reader``
so the event loop never blocks on inference, and watches the process sentinel:
when the process dies, every job it held fails with ``worker_crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import pickle
import signal
import time
import traceback
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from multiprocessing.reduction import ForkingPickler
from pathlib import Path
from typing import Any

from cas.store import CasStore
from engines.base import BatchStepper, Engine, JobRun, is_terminal
from engines.errors import EngineError
from engines.protocol import (
    CancelJob,
    Cancelled,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Failed,
    Finished,
    Notes,
    Output,
    Progress,
    Shutdown,
    StartJob,
)
from engines.registry import EngineSpec

log = logging.getLogger("tutti.engines.worker")

# Outputs carry CAS digests, never bytes; an event this large is an engine bug.
MAX_EVENT_BYTES = 1 << 20
_ERROR_TRACE_CHARS = 4000
_LINGER_S = 5.0  # how long a worker that closed its pipe may take to exit
_EVENT_TYPES = (Progress, Notes, Output, Finished, Failed, Cancelled)

# --- child side ------------------------------------------------------------------------


def worker_main(spec: EngineSpec, cas_root: str, conn: Connection) -> None:
    """Entry point of the worker process (the target of ``Process``)."""
    # Ctrl-C reaches the whole process group; the hub shuts its workers down itself.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    host = _WorkerHost(spec, cas_root, conn)
    with contextlib.suppress(EOFError, BrokenPipeError, ConnectionResetError):
        host.serve()


def _failed(job_id: str, exc: BaseException) -> Failed:
    """An exception raised by engine code, as data."""
    if isinstance(exc, EngineError):
        return Failed(job_id, exc.code, exc.message, details=_picklable(exc.details))
    trace = "".join(traceback.format_exception(exc))[-_ERROR_TRACE_CHARS:]
    return Failed(
        job_id,
        "engine_error",
        f"{type(exc).__name__}: {exc}",
        details={"exception": type(exc).__name__, "traceback": trace},
    )


def _picklable(details: Mapping[str, Any]) -> dict[str, Any]:
    try:
        pickle.dumps(details)
        return dict(details)
    except Exception:
        return {str(k): repr(v) for k, v in details.items()}


class _WorkerHost:
    def __init__(self, spec: EngineSpec, cas_root: str, conn: Connection) -> None:
        self.spec = spec
        self.cas_root = cas_root
        self.conn = conn
        self.engine: Engine | None = None
        self.batcher: BatchStepper | None = None  # the engine, when it batches its runs
        self.cas: CasStore | None = None
        self.info = EngineInfo(name=spec.name, version="unknown", tasks=(), available=False)
        self.runs: dict[str, JobRun] = {}  # insertion order = round-robin order
        self.stopping = False

    # -- boot -------------------------------------------------------------------------

    def boot(self) -> EngineInfo:
        try:
            engine = self.spec.build()
            info = engine.info()
        except Exception as exc:
            return replace(self.info, reason=_reason(exc))
        try:
            self.cas = CasStore(self.cas_root)
            engine.setup()
            engine.warmup()
        except Exception as exc:
            return replace(info, available=False, reason=_reason(exc))
        self.engine = engine
        self.batcher = engine if isinstance(engine, BatchStepper) else None
        return info

    def serve(self) -> None:
        self.info = self.boot()
        self.conn.send(self.info)
        while not self.stopping:
            # Block only when idle: with jobs running, poll and go on stepping.
            self.drain(block=not self.runs)
            if self.runs and not self.stopping:
                self.step_all()
        for run in self.runs.values():
            with contextlib.suppress(Exception):
                run.close()
        self.runs.clear()

    # -- hub messages -------------------------------------------------------------------

    def drain(self, *, block: bool) -> None:
        timeout: float | None = None if block else 0.0
        while not self.stopping and self.conn.poll(timeout):
            self.handle(self.conn.recv())
            timeout = 0.0

    def handle(self, message: object) -> None:
        if isinstance(message, StartJob):
            self.start_job(message.request)
        elif isinstance(message, CancelJob):
            self.cancel_job(message.job_id)
        elif isinstance(message, Shutdown):
            self.stopping = True
        else:
            log.warning("worker %s: ignoring unknown message %r", self.spec.name, message)

    def start_job(self, request: EngineRequest) -> None:
        job_id = request.job_id
        if job_id in self.runs:
            log.warning("worker %s: job %s is already running", self.spec.name, job_id)
            return
        if self.engine is None or self.cas is None:
            reason = self.info.reason or "engine is not available"
            self.send(Failed(job_id, "engine_unavailable", reason, {"engine": self.spec.name}))
            return
        try:
            self.runs[job_id] = self.engine.start(request, self.cas)
        except Exception as exc:
            self.send(_failed(job_id, exc))

    def cancel_job(self, job_id: str) -> None:
        run = self.runs.pop(job_id, None)
        if run is None:
            return  # finished in the meantime: its terminal event is already on its way
        try:
            events = run.cancel()
        except Exception:
            log.exception("worker %s: cancel of %s raised", self.spec.name, job_id)
            events = []
        # Whatever the engine returned, the hub gets its partial outputs then one Cancelled.
        kept: list[EngineEvent] = [
            e for e in events if isinstance(e, Output) and e.job_id == job_id
        ]
        for event in [*kept, Cancelled(job_id)]:
            self.send(event)
        with contextlib.suppress(Exception):
            run.close()

    # -- stepping -------------------------------------------------------------------------

    def step_all(self) -> None:
        if self.batcher is not None:
            self.step_batch(self.batcher)
            return
        for job_id in list(self.runs):
            self.drain(block=False)  # a cancel lands before this job's next step
            if self.stopping:
                return
            run = self.runs.get(job_id)
            if run is None:
                continue
            try:
                events = run.step()
            except Exception as exc:
                events = [_failed(job_id, exc)]
            self.emit(run, events)

    def step_batch(self, engine: BatchStepper) -> None:
        runs = list(self.runs.values())
        try:
            results: Mapping[str, list[EngineEvent]] = engine.step_many(runs)
        except Exception as exc:
            results = {run.job_id: [_failed(run.job_id, exc)] for run in runs}
        for run in runs:
            self.emit(run, list(results.get(run.job_id, [])))

    def emit(self, run: JobRun, events: list[EngineEvent]) -> None:
        """Send a run's events; after its terminal event (or if it ended without one) drop it."""
        terminal = False
        for event in events:
            if event.job_id != run.job_id:
                event = Failed(
                    run.job_id, "engine_error", "engine emitted an event for another job"
                )
            event = self.send(event)
            if is_terminal(event):
                terminal = True
                break
        if not terminal and run.done:
            terminal = True
            self.send(Failed(run.job_id, "engine_error", "engine ended the job without a result"))
        if terminal:
            self.runs.pop(run.job_id, None)
            with contextlib.suppress(Exception):
                run.close()

    def send(self, event: EngineEvent) -> EngineEvent:
        """Send one event; returns what was sent (an oversized event fails the job instead)."""
        data = bytes(ForkingPickler.dumps(event))
        if len(data) > MAX_EVENT_BYTES:
            event = Failed(
                event.job_id,
                "engine_error",
                f"engine event of {len(data)} bytes is over the {MAX_EVENT_BYTES}-byte limit "
                "(results belong in the CAS)",
            )
            data = bytes(ForkingPickler.dumps(event))
        self.conn.send_bytes(data)
        return event


def _reason(exc: BaseException) -> str:
    if isinstance(exc, EngineError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


# --- hub side ----------------------------------------------------------------------------


class WorkerError(EngineError):
    """The worker process could not be started or is not running."""


EventCallback = Callable[[EngineEvent], None]
ExitCallback = Callable[["WorkerHandle", int | None], None]


class WorkerHandle:
    """The hub's handle on one engine worker process (use from one asyncio loop).

    Engine events arrive through ``on_event`` when given, otherwise through the
    :meth:`events` async iterator. Every job passed to :meth:`start_job` ends with
    exactly one terminal event: the engine's own, or ``Failed(worker_crashed)`` if the
    process dies, or ``Failed(interrupted)`` if the hub stops the worker.
    """

    def __init__(
        self,
        spec: EngineSpec,
        cas_root: Path | str,
        *,
        start_timeout: float = 120.0,
        on_event: EventCallback | None = None,
        on_exit: ExitCallback | None = None,
    ) -> None:
        self.spec = spec
        self.cas_root = Path(cas_root)
        self.start_timeout = start_timeout
        self._on_event = on_event
        self._on_exit = on_exit
        # None marks stop(): it ends events() iterators.
        self._queue: asyncio.Queue[EngineEvent | None] = asyncio.Queue()
        self._proc: BaseProcess | None = None
        self._conn: Connection | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready: asyncio.Future[EngineInfo] | None = None
        self._info: EngineInfo | None = None
        self._jobs: set[str] = set()
        self._generation = 0
        self._stopping = False
        self._exitcode: int | None = None
        self._last_pid: int | None = None

    # -- state ------------------------------------------------------------------------------

    @property
    def info(self) -> EngineInfo:
        if self._info is None:
            raise WorkerError(
                f"worker {self.spec.name!r} has not started", code="worker_unavailable"
            )
        return self._info

    @property
    def alive(self) -> bool:
        return self._conn is not None and self._proc is not None and self._proc.is_alive()

    @property
    def pid(self) -> int | None:
        """The running process's id (the last one's after it ended)."""
        return self._proc.pid if self._proc is not None else self._last_pid

    @property
    def exitcode(self) -> int | None:
        """Exit code of the last process that ended (negative: killed by that signal)."""
        return self._exitcode

    @property
    def on_exit(self) -> ExitCallback | None:
        """Called with the exit code when the process dies unexpectedly (not after stop)."""
        return self._on_exit

    @on_exit.setter
    def on_exit(self, callback: ExitCallback | None) -> None:
        self._on_exit = callback

    @property
    def jobs(self) -> frozenset[str]:
        """Ids of the jobs this worker holds (started, no terminal event yet)."""
        return frozenset(self._jobs)

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self) -> EngineInfo:
        """Spawn the process and wait for its EngineInfo (``worker_start_failed`` otherwise)."""
        if self._conn is not None:
            raise WorkerError(
                f"worker {self.spec.name!r} is already running", code="worker_running"
            )
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._stopping = False
        self._generation += 1
        generation = self._generation
        ctx = multiprocessing.get_context("spawn")
        parent_conn, child_conn = ctx.Pipe(duplex=True)
        proc = ctx.Process(
            target=worker_main,
            args=(self.spec, str(self.cas_root), child_conn),
            name=f"tutti-worker-{self.spec.name}",
            daemon=True,
        )
        proc.start()
        child_conn.close()  # so the child's death reads as EOF here
        self._proc, self._conn = proc, parent_conn
        self._ready = loop.create_future()
        loop.add_reader(parent_conn.fileno(), self._on_readable, generation)
        loop.add_reader(proc.sentinel, self._on_sentinel, generation)
        try:
            info = await asyncio.wait_for(asyncio.shield(self._ready), self.start_timeout)
        except TimeoutError:
            self._ready.cancel()  # nobody will read it: no "exception never retrieved"
            await self._kill_now()
            raise WorkerError(
                f"worker {self.spec.name!r} did not report within {self.start_timeout:.0f} s",
                code="worker_start_failed",
            ) from None
        self._info = info
        return info

    async def restart(self) -> EngineInfo:
        """Stop the process if it still runs (its jobs fail as interrupted) and start a new one."""
        await self.stop(final=False)
        return await self.start()

    async def stop(self, timeout: float = 5.0, *, final: bool = True) -> None:
        """Ask the worker to exit; terminate, then kill, if it does not within ``timeout``.

        Jobs it still held fail with ``interrupted``. With ``final`` the :meth:`events`
        iterators end once the remaining events are read.
        """
        proc, conn = self._proc, self._conn
        if proc is not None and conn is not None:
            self._stopping = True
            with contextlib.suppress(OSError):
                conn.send(Shutdown())
            if not await _wait_dead(proc, timeout):
                with contextlib.suppress(ValueError):  # closed: the sentinel handler reaped it
                    proc.terminate()
                if not await _wait_dead(proc, 2.0):
                    with contextlib.suppress(ValueError):
                        proc.kill()
                    await _wait_dead(proc, 2.0)
            self._drain_and_close(self._generation)
        if final:
            self._queue.put_nowait(None)

    async def _kill_now(self) -> None:
        proc = self._proc
        if proc is not None:
            with contextlib.suppress(ValueError):
                proc.kill()
            await _wait_dead(proc, 2.0)
        self._drain_and_close(self._generation)

    # -- jobs ---------------------------------------------------------------------------------

    def start_job(self, request: EngineRequest) -> None:
        """Hand a job to the worker; its events follow. Raises if the worker is not running."""
        conn = self._conn
        if conn is None:
            raise WorkerError(
                f"worker {self.spec.name!r} is not running", code="worker_unavailable"
            )
        if request.job_id in self._jobs:
            raise WorkerError(f"job {request.job_id} is already running", code="job_running")
        self._jobs.add(request.job_id)
        with contextlib.suppress(OSError):
            # A broken pipe means the process is dying: its sentinel fires next and the
            # job fails as worker_crashed with the others.
            conn.send(StartJob(request))

    def cancel(self, job_id: str) -> bool:
        """Ask the worker to stop a job at its next step; False if the worker does not hold it."""
        if job_id not in self._jobs or self._conn is None:
            return False
        with contextlib.suppress(OSError):  # dying: the sentinel handles it
            self._conn.send(CancelJob(job_id))
        return True

    async def events(self) -> AsyncIterator[EngineEvent]:
        """Engine events in arrival order, until :meth:`stop`. Not used with ``on_event``."""
        while True:
            item = await self._queue.get()
            if item is None:
                return
            yield item

    async def next_event(self, timeout: float | None = None) -> EngineEvent:
        """The next engine event (``TimeoutError`` after ``timeout`` seconds)."""
        item = await asyncio.wait_for(self._queue.get(), timeout)
        if item is None:
            raise WorkerError("worker stopped", code="worker_unavailable")
        return item

    # -- reading the child ------------------------------------------------------------------------

    def _on_readable(self, generation: int) -> None:
        if generation != self._generation or self._conn is None:
            return
        try:
            # Bounded batch per wake-up so a chatty worker cannot starve the loop.
            for _ in range(256):
                if not self._conn.poll():
                    return
                self._dispatch(self._conn.recv())
        except (EOFError, OSError):
            # The child closed its end: it is exiting. The sentinel reports the death
            # (with the exit code); stop reading, and kill it if it lingers.
            if self._loop is not None and self._conn is not None:
                self._loop.remove_reader(self._conn.fileno())
                self._loop.call_later(_LINGER_S, self._kill_if_lingering, generation)

    def _kill_if_lingering(self, generation: int) -> None:
        if generation == self._generation and self._proc is not None and self._proc.is_alive():
            log.warning("worker %s closed its pipe but did not exit; killing it", self.spec.name)
            self._proc.kill()

    def _on_sentinel(self, generation: int) -> None:
        if generation == self._generation:
            self._drain_and_close(generation)

    def _dispatch(self, message: object) -> None:
        if isinstance(message, EngineInfo):
            if self._ready is not None and not self._ready.done():
                self._ready.set_result(message)
            return
        if not isinstance(message, _EVENT_TYPES):
            log.warning("worker %s sent an unknown message %r", self.spec.name, message)
            return
        event: EngineEvent = message
        if event.job_id not in self._jobs:
            return  # a job already failed on our side (e.g. after a send error)
        if is_terminal(event):
            self._jobs.discard(event.job_id)
        self._deliver(event)

    def _deliver(self, event: EngineEvent) -> None:
        if self._on_event is not None:
            self._on_event(event)
        else:
            self._queue.put_nowait(event)

    def _drain_and_close(self, generation: int) -> None:
        """The process is gone (or going): read what it sent, fail its jobs, release fds."""
        if generation != self._generation or self._conn is None:
            return
        conn, proc = self._conn, self._proc
        with contextlib.suppress(EOFError, OSError):
            while conn.poll():
                self._dispatch(conn.recv())
        loop = self._loop
        if loop is not None:
            loop.remove_reader(conn.fileno())
            if proc is not None:
                loop.remove_reader(proc.sentinel)
        conn.close()
        self._conn = None
        if proc is not None:
            # The sentinel closes a moment before the process is reapable; wait that moment.
            proc.join(0.5)
            if proc.is_alive():
                proc.kill()
                proc.join(1.0)
            self._exitcode = proc.exitcode
            self._last_pid = proc.pid
            with contextlib.suppress(ValueError):
                proc.close()  # releases the sentinel fd now rather than at garbage collection
            self._proc = None
        if self._ready is not None and not self._ready.done():
            self._ready.set_exception(
                WorkerError(
                    f"worker {self.spec.name!r} exited before reporting (exit code {self._exitcode})",
                    code="worker_start_failed",
                    details={"exitcode": self._exitcode},
                )
            )
        for job_id in sorted(self._jobs):
            self._deliver(self._job_lost(job_id))
        self._jobs.clear()
        if self._on_exit is not None and not self._stopping:
            self._on_exit(self, self._exitcode)

    def _job_lost(self, job_id: str) -> Failed:
        details = {"engine": self.spec.name, "exitcode": self._exitcode, "pid": self._last_pid}
        if self._stopping:
            return Failed(job_id, "interrupted", "the engine worker was stopped", details)
        return Failed(
            job_id,
            "worker_crashed",
            f"the {self.spec.name} engine process died (exit code {self._exitcode})",
            details,
        )


async def _wait_dead(proc: BaseProcess, timeout: float) -> bool:
    """Poll without blocking the loop; True once the process has exited."""
    deadline = time.monotonic() + timeout
    try:
        while proc.is_alive():
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.01)
    except ValueError:  # closed by the sentinel handler, which runs after the exit
        pass
    return True
