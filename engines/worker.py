"""The hub's asyncio handle on an engine worker process.

:class:`WorkerHandle` spawns the child (``engines.worker_host.worker_main``) with the
``spawn`` start method (CUDA cannot survive ``fork``), reads its pipe with
``loop.add_reader`` so the event loop never blocks on inference, and watches the process
sentinel: when the process dies, every job it held fails with ``worker_crashed``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import multiprocessing
import time
from collections.abc import AsyncIterator, Callable
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path

from engines.base import is_terminal
from engines.errors import EngineError
from engines.protocol import (
    CancelJob,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Failed,
    Shutdown,
    StartJob,
)
from engines.registry import EngineSpec
from engines.worker_host import worker_main

log = logging.getLogger("tutti.engines.worker")

_LINGER_S = 5.0  # how long a worker that closed its pipe may take to exit


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
        if not isinstance(message, EngineEvent):
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
