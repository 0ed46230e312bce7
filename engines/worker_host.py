"""The engine worker process's own side: build the engine, then serve the hub's messages.

:func:`worker_main` (the ``Process`` target) builds the engine from its spec, runs
``setup`` and ``warmup``, reports :class:`EngineInfo`, then alternates between reading
hub messages without blocking and stepping running jobs. Messages are read before every
step, so a cancel lands at the next step boundary. Any exception inside an engine becomes
a ``Failed`` event for that job; the worker itself lives on. The hub's handle on this
process is ``engines.worker.WorkerHandle``.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import signal
import traceback
from collections.abc import Mapping
from dataclasses import replace
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

from cas.store import CasStore
from engines import protocol
from engines.base import BatchStepper, Engine, JobRun, is_terminal
from engines.errors import EngineError
from engines.protocol import EngineEvent, EngineInfo, Failed
from engines.registry import EngineSpec

log = logging.getLogger("tutti.engines.worker")

# Outputs carry CAS digests, never bytes; an event this large is an engine bug.
MAX_EVENT_BYTES = 1 << 20
_ERROR_TRACE_CHARS = 4000


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
        if isinstance(message, protocol.StartJob):
            self.start_job(message.request)
        elif isinstance(message, protocol.CancelJob):
            self.cancel_job(message.job_id)
        elif isinstance(message, protocol.Shutdown):
            self.stopping = True
        else:
            log.warning("worker %s: ignoring unknown message %r", self.spec.name, message)

    def start_job(self, request: protocol.EngineRequest) -> None:
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
            e for e in events if isinstance(e, protocol.Output) and e.job_id == job_id
        ]
        for event in [*kept, protocol.Cancelled(job_id)]:
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
