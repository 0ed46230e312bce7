"""Jobs: the hub's queue (priorities, per-engine concurrency, cancellation) over workers.

Engines hold no queue: a worker only ever holds jobs this manager started. Job
lifecycle and note chunks are durable events; progress is latest-value.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import heapq
import itertools
import logging
import time
from collections import deque
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import jsonschema

from engines.protocol import (
    Cancelled,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Failed,
    Finished,
    MusicalContext,
    Notes,
    Output,
    Progress,
)
from engines.registry import DEFAULT_SPECS, EngineSpec, amt_spec
from engines.worker import WorkerHandle
from hub.artifact_deletion import delete_records
from hub.errors import ErrorCode, HubError
from hub.events import (
    ArtifactRef,
    Envelope,
    JobCancelled,
    JobCompleted,
    JobFailed,
    JobNotes,
    JobQueued,
    JobStarted,
    NoteChunkData,
    TakeAdded,
)
from hub.ids import JOB, TAKE, new_id
from hub.jobstore import JobRecord
from hub.model import Take
from hub.protocol import EngineDescription, EngineTask, JobProgress, JobSpec, encode

if TYPE_CHECKING:
    from hub.runtime import Hub

log = logging.getLogger("tutti.jobs")

# Note chunks of one job that may be queued for the log but not yet durable; past this
# the job's event handling waits for the oldest (bounded memory if the disk stalls).
_NOTES_WINDOW = 1024


@dataclass
class _Job:
    id: str
    spec: JobSpec
    seq: int
    request: EngineRequest
    notes_seq: int = 0
    outputs: list[ArtifactRef] = field(default_factory=list)  # final results
    # the newest partial result of each variation that has no final one yet
    partials: dict[int | None, ArtifactRef] = field(default_factory=dict)
    started: float = 0.0
    # job.notes records queued with the core but not yet confirmed durable, oldest first
    unconfirmed: deque[asyncio.Future[list[Envelope]]] = field(default_factory=deque)


@dataclass(order=True)
class _QueueItem:
    sort_key: tuple[int, int]
    job: _Job = field(compare=False)


class JobManager:
    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        # The AMT engine loads the weights the user chose (--amt-model / config), else the bundled ones.
        defaults = [amt_spec(hub.config.amt_model) if s.name == "amt" else s for s in DEFAULT_SPECS]
        defaults = [s for s in defaults if s.name not in hub.config.disabled_engines]
        specs = defaults + [EngineSpec.parse(s) for s in hub.config.engines]
        self.specs: dict[str, EngineSpec] = {s.name: s for s in specs}
        self.workers: dict[str, WorkerHandle] = {}
        self._queues: dict[str, list[_QueueItem]] = {name: [] for name in self.specs}
        self._running: dict[str, _Job] = {}
        self._counter = itertools.count()
        self._events: asyncio.Queue[EngineEvent] = asyncio.Queue()
        self._pump_task: asyncio.Task[None] | None = None
        self._confirm_task: asyncio.Task[None] | None = None
        self._confirms: asyncio.Queue[tuple[_Job, asyncio.Future[list[Envelope]]]] = asyncio.Queue()
        self._boot_tasks: list[asyncio.Task[Any]] = []
        self._submitting: dict[str, asyncio.Future[list[dict[str, Any]]]] = {}

    # --- lifecycle --------------------------------------------------------------------

    async def start(self) -> None:
        interrupted, requeue = await self.hub.core.in_writer(self.hub.jobstore.interrupt_running, time.time())
        if interrupted:
            await self.hub.core.record(
                [
                    JobFailed(job=r.id, session=r.session, code="interrupted",
                              message="the hub stopped while this job was running")
                    for r in interrupted
                ]
            )
        for name, spec in self.specs.items():
            handle = WorkerHandle(spec, self.hub.cas.root, on_event=self._events.put_nowait,
                                  on_exit=self._on_worker_exit)
            self.workers[name] = handle
            self._boot_tasks.append(asyncio.create_task(self._boot(handle)))
        self._pump_task = asyncio.create_task(self._consume(), name="tutti-job-events")
        self._confirm_task = asyncio.create_task(self._confirm(), name="tutti-job-notes-confirm")
        for record in requeue:
            self._enqueue(self._job_from_record(record))
        self._pump()
        # The first MIDI output's metadata would otherwise pay this import (~0.5 s) mid-job.
        self._spawn(asyncio.to_thread(_warm_imports))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        """Run a background step, keeping a reference so it is not garbage-collected."""
        task = asyncio.ensure_future(coro)
        self._boot_tasks.append(task)
        task.add_done_callback(lambda t: self._boot_tasks.remove(t) if t in self._boot_tasks else None)

    async def _boot(self, handle: WorkerHandle) -> None:
        try:
            info = await handle.start()
        except Exception as exc:
            log.warning("engine %s failed to start: %s", handle.spec.name, exc)
        else:
            if info.available:
                where = " ".join(filter(None, (info.model, info.device and f"on {info.device}")))
                log.info("engine %s ready%s", info.name, f": {where}" if where else "")
            else:
                # the hub runs on without it; /models and welcome give the same reason
                log.warning("engine %s is unavailable: %s", info.name, info.reason)
        self._pump()

    def _on_worker_exit(self, handle: WorkerHandle, code: int | None) -> None:
        if self.hub.core is None:
            return
        log.warning("engine worker %s exited (%s); restarting", handle.spec.name, code)
        self._spawn(self._restart(handle))

    async def _restart(self, handle: WorkerHandle) -> None:
        try:
            await handle.restart()
        except Exception as exc:
            log.warning("engine %s could not restart: %s", handle.spec.name, exc)
        self._pump()

    async def stop(self) -> None:
        for w in self.workers.values():
            w.on_exit = None  # no restarts during shutdown
        for t in self._boot_tasks:
            t.cancel()
        await asyncio.gather(*(w.stop() for w in self.workers.values()), return_exceptions=True)
        # Workers answered their running jobs with Failed(interrupted); record them.
        deadline = time.monotonic() + 2.0
        while self._running and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._pump_task is not None:
            self._pump_task.cancel()
        if self._confirm_task is not None:
            self._confirm_task.cancel()

    # --- description -------------------------------------------------------------------

    def _info(self, name: str) -> EngineInfo | None:
        handle = self.workers.get(name)
        if handle is None:
            return None
        try:
            return handle.info
        except Exception:
            return None

    def describe(self) -> list[EngineDescription]:
        out = []
        for name in self.specs:
            info = self._info(name)
            if info is None:
                out.append(EngineDescription(name=name, version="", available=False,
                                             reason="starting", tasks=[]))
                continue
            out.append(
                EngineDescription(
                    name=info.name or name,
                    version=info.version,
                    available=info.available and self.workers[name].alive,
                    reason=info.reason if self.workers[name].alive else "worker not running",
                    model=info.model,
                    device=info.device,
                    tasks=[EngineTask(name=t.name, description=t.description,
                                      params_schema=t.params_schema, constraints=list(t.constraints))
                           for t in info.tasks],
                )
            )
        return out

    # --- submission --------------------------------------------------------------------

    def _validate(self, spec: JobSpec) -> None:
        if spec.engine not in self.specs:
            raise HubError(ErrorCode.unknown_engine, f"no engine {spec.engine!r}",
                           suggestions=[f"engines: {', '.join(sorted(self.specs))}"])
        info = self._info(spec.engine)
        if info is None or not info.available:
            reason = info.reason if info is not None else "the engine is still starting"
            raise HubError(ErrorCode.engine_unavailable, f"engine {spec.engine!r} is unavailable: {reason}",
                           details={"reason": reason})
        task = next((t for t in info.tasks if t.name == spec.task), None)
        if task is None:
            raise HubError(ErrorCode.unknown_task, f"engine {spec.engine!r} has no task {spec.task!r}",
                           suggestions=[f"tasks: {', '.join(t.name for t in info.tasks)}"])
        try:
            jsonschema.validate(spec.params, task.params_schema)
        except jsonschema.ValidationError as exc:
            raise HubError(ErrorCode.validation_failed, f"params: {exc.message}",
                           details={"path": [str(p) for p in exc.absolute_path]}) from exc
        if spec.session is not None:
            session = self.hub.session(spec.session)
            if spec.section is not None and session.section(spec.section) is None:
                raise HubError(ErrorCode.unknown_section, f"no section {spec.section!r} in {spec.session}")

    def _inputs(self, params: dict[str, Any]) -> dict[str, str]:
        """Artifact ids in params become CAS digests the worker can read."""
        inputs: dict[str, str] = {}
        for key, value in params.items():
            if key.endswith("artifact") and isinstance(value, str):
                inputs[key] = self._digest(value)
            elif key.endswith("artifacts") and isinstance(value, list):
                for i, v in enumerate(value):
                    inputs[f"{key}.{i}"] = self._digest(str(v))
        return inputs

    def _digest(self, artifact_id: str) -> str:
        try:
            return self.hub.artifacts.get(artifact_id).hash
        except HubError as err:
            raise HubError(ErrorCode.unknown_artifact, f"no artifact {artifact_id!r}") from err

    def _context(self, spec: JobSpec) -> MusicalContext:
        if spec.session is None:
            return MusicalContext()
        s = self.hub.session(spec.session)
        sec = s.section(spec.section) if spec.section else None
        return MusicalContext(
            tempo=(sec.tempo if sec and sec.tempo else s.tempo),
            meter_numerator=s.meter.numerator,
            meter_denominator=s.meter.denominator,
            key=(sec.key if sec and sec.key else s.key),
            bars=sec.bars if sec else None,
        )

    def _make_job(self, spec: JobSpec, job_id: str | None = None) -> _Job:
        job_id = job_id or new_id(JOB)
        seed = spec.params.get("seed")
        request = EngineRequest(
            job_id=job_id,
            task=spec.task,
            params=dict(spec.params),
            num_variations=spec.num_variations,
            seed=seed if isinstance(seed, int) else None,
            inputs=self._inputs(spec.params),
            context=self._context(spec),
        )
        return _Job(id=job_id, spec=spec, seq=next(self._counter), request=request)

    async def submit(self, spec: JobSpec, *, client: str, op_id: str | None) -> dict[str, Any]:
        return (await self.submit_batch([spec], client=client, op_id=op_id))[0]

    async def submit_batch(self, specs: list[JobSpec], *, client: str, op_id: str | None) -> list[dict[str, Any]]:
        """Validate all first, so a batch is accepted whole or refused whole.

        A repeated ``op_id`` (a client retrying after a dropped connection) gets the
        jobs of the first submission, never a second set.
        """
        if op_id is not None:
            previous = self.hub.core.log.find_op(op_id, "")
            if previous is not None:
                return list(previous.result.get("jobs", []))
            running = self._submitting.get(op_id)
            if running is not None:
                return list(await asyncio.shield(running))
            fut: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
            self._submitting[op_id] = fut
            try:
                result = await self._submit_new(specs, client=client, op_id=op_id)
            except BaseException as exc:
                fut.set_exception(exc)
                fut.exception()  # retrieved here so a lone submitter leaves no warning
                raise
            finally:
                self._submitting.pop(op_id, None)
            fut.set_result(result)
            return result
        return await self._submit_new(specs, client=client, op_id=None)

    async def _submit_new(
        self, specs: list[JobSpec], *, client: str, op_id: str | None
    ) -> list[dict[str, Any]]:
        for spec in specs:
            self._validate(spec)
        jobs = [self._make_job(JobSpec.model_validate(s.model_dump(include=set(JobSpec.model_fields))))
                for s in specs]
        now = time.time()
        records = [
            JobRecord(id=j.id, engine=j.spec.engine, task=j.spec.task, params=j.spec.params,
                      num_variations=j.spec.num_variations, priority=j.spec.priority,
                      session=j.spec.session, section=j.spec.section, client_job_id=j.spec.client_job_id,
                      state="queued", created_at=now, submitted_by=client)
            for j in jobs
        ]
        answer = [{"job": j.id, "state": "queued", "client_job_id": j.spec.client_job_id} for j in jobs]
        await self.hub.core.record(
            [
                JobQueued(job=j.id, engine=j.spec.engine, task=j.spec.task, session=j.spec.session,
                          section=j.spec.section, client_job_id=j.spec.client_job_id,
                          priority=j.spec.priority, num_variations=j.spec.num_variations,
                          params=j.spec.params)
                for j in jobs
            ],
            op_id=op_id,
            op_result=None if op_id is None else {"jobs": answer},
            also=lambda: [self.hub.jobstore.create(r) for r in records],
        )
        for j in jobs:
            self._enqueue(j)
        self._pump()
        return answer

    def _job_from_record(self, r: JobRecord) -> _Job:
        spec = JobSpec(engine=r.engine, task=r.task, params=r.params, num_variations=r.num_variations,
                       priority=r.priority, session=r.session, section=r.section,
                       client_job_id=r.client_job_id)
        return self._make_job(spec, job_id=r.id)

    def _enqueue(self, job: _Job) -> None:
        heapq.heappush(self._queues.setdefault(job.spec.engine, []),
                       _QueueItem((-job.spec.priority, job.seq), job))

    def _pump(self) -> None:
        for name, queue in self._queues.items():
            handle = self.workers.get(name)
            if handle is None or not handle.alive or self._info(name) is None:
                continue
            limit = self.hub.config.engine_concurrency.get(name, self.specs[name].concurrency)
            while queue and len(handle.jobs) < limit:
                job = heapq.heappop(queue).job
                self._running[job.id] = job
                job.started = time.monotonic()
                handle.start_job(job.request)
                self._mark_started(job)

    def _mark_started(self, job: _Job) -> None:
        """Queue the record update and ``job.started`` now, before any event of the job.

        Both are queued synchronously (the writer thread and the core run them in
        queue order), so the job's notes and its ending always follow ``job.started``.
        """
        started = self.hub.core.record_nowait(
            [JobStarted(job=job.id, session=job.spec.session, worker=job.spec.engine)],
            also=functools.partial(self.hub.jobstore.mark_started, job.id, now=time.time()),
        )
        started.add_done_callback(functools.partial(_log_failure, f"recording job.started {job.id}"))

    # --- cancellation and queries --------------------------------------------------------

    async def cancel(self, job_id: str) -> dict[str, Any]:
        for queue in self._queues.values():
            for i, item in enumerate(queue):
                if item.job.id == job_id:
                    queue.pop(i)
                    heapq.heapify(queue)
                    await self._finish(item.job, "cancelled", JobCancelled(job=job_id, session=item.job.spec.session))
                    return {"job": job_id, "state": "cancelled"}
        job = self._running.get(job_id)
        if job is not None:
            self.workers[job.spec.engine].cancel(job_id)
            return {"job": job_id, "state": "cancelling"}
        record = self.hub.jobstore.get(job_id, time.time())
        raise HubError(ErrorCode.job_finished, f"job {job_id} already {record.state}",
                       details={"state": record.state})

    def get(self, job_id: str) -> dict[str, Any]:
        record = self.hub.jobstore.get(job_id, time.time())
        return record.model_dump(mode="json")

    def list(self, *, state: str | None, session: str | None) -> list[dict[str, Any]]:
        return [r.model_dump(mode="json") for r in self.hub.jobstore.list(state=state, session=session)]  # type: ignore[arg-type]

    def counts(self) -> dict[str, int]:
        queued = sum(len(q) for q in self._queues.values())
        return {"queued": queued, "running": len(self._running)}

    def queue_depths(self) -> dict[str, int]:
        return {name: len(q) for name, q in self._queues.items()}

    # --- engine events -------------------------------------------------------------------

    async def _consume(self) -> None:
        while True:
            event = await self._events.get()
            try:
                await self._handle(event)
            except Exception:
                log.exception("handling engine event %r failed", type(event).__name__)

    async def _confirm(self) -> None:
        """Await queued ``job.notes`` records in order, so streaming never waits on an fsync.

        ``_handle`` queues each chunk with the core and moves on; the core commits them in
        queue order (group commits when the disk is slower than the engine). A job's
        ending waits for its chunks (:meth:`_notes_durable`), so it follows them.
        """
        while True:
            job, fut = await self._confirms.get()
            try:
                await asyncio.shield(fut)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("recording job.notes of %s failed", job.id)
            if job.unconfirmed and job.unconfirmed[0] is fut:
                job.unconfirmed.popleft()
            else:
                with contextlib.suppress(ValueError):
                    job.unconfirmed.remove(fut)

    async def _notes_durable(self, job: _Job) -> None:
        """Wait until every note chunk queued for ``job`` is durable (or failed)."""
        if job.unconfirmed:
            await asyncio.gather(*list(job.unconfirmed), return_exceptions=True)

    async def _handle(self, event: EngineEvent) -> None:
        job = self._running.get(event.job_id)
        if job is None:
            return
        session = job.spec.session
        if isinstance(event, Progress):
            elapsed = time.monotonic() - job.started
            eta = elapsed * (100 - event.percent) / event.percent if event.percent > 0 else None
            msg = JobProgress(job=job.id, session=session, tokens=event.tokens, total=event.total,
                              percent=max(0.0, min(100.0, event.percent)), eta_seconds=eta)
            frame = encode(msg).decode()
            self.hub.fanout.publish_latest("jobs", f"progress:{job.id}", frame)
            if session is not None:
                self.hub.fanout.publish_latest(f"session:{session}", f"progress:{job.id}", frame)
        elif isinstance(event, Notes):
            bpm = job.request.context.tempo
            ns = event.notes
            chunk = NoteChunkData(
                variation=[n.variation for n in ns],
                onset=[round(n.onset, 4) for n in ns],
                duration=[round(n.duration, 4) for n in ns],
                onset_beats=[round(n.onset * bpm / 60, 4) for n in ns],
                duration_beats=[round(n.duration * bpm / 60, 4) for n in ns],
                pitch=[n.pitch for n in ns],
                velocity=[n.velocity for n in ns],
                instrument=[n.instrument for n in ns],
            )
            seq = job.notes_seq
            job.notes_seq += 1
            if len(job.unconfirmed) >= _NOTES_WINDOW:
                await asyncio.wait([job.unconfirmed[0]])
            fut = self.hub.core.record_nowait([JobNotes(job=job.id, session=session, seq=seq, notes=chunk)])
            job.unconfirmed.append(fut)
            self._confirms.put_nowait((job, fut))
        elif isinstance(event, Output):
            await self._output(job, event)
        elif isinstance(event, Finished):
            await self._finish(job, "completed", JobCompleted(job=job.id, session=session,
                               section=job.spec.section, artifacts=job.outputs, result=event.result))
        elif isinstance(event, Failed):
            await self._finish(job, "failed", JobFailed(job=job.id, session=session, code=event.code,
                                                        message=event.message), code=event.code, message=event.message)
        elif isinstance(event, Cancelled):
            await self._finish(job, "cancelled", JobCancelled(job=job.id, session=session,
                                                              partial_artifacts=_kept(job, "cancelled")))

    async def _output(self, job: _Job, out: Output) -> None:
        from hub.media import (
            MIDI_MIMES,
            Provenance,
            artifact_ref,
            file_ready,
            midi_metadata,
            record_artifact,
        )

        meta = dict(out.metadata)
        if out.mime in MIDI_MIMES:
            data = await asyncio.to_thread(self.hub.cas.get, out.digest)
            try:
                meta.update(await asyncio.to_thread(midi_metadata, data))
            except HubError as err:
                meta["metadata_error"] = err.message
        artifact = await record_artifact(
            self.hub, digest=out.digest, size=out.size, mime=out.mime, kind=out.kind,
            origin=Provenance(
                filename=out.filename or f"{job.spec.task}-{job.id[-6:]}-v{out.variation_index or 0}.mid",
                session_id=job.spec.session, section_id=job.spec.section, job_id=job.id,
                variation_index=out.variation_index, creator=f"engine:{job.spec.engine}",
            ),
            metadata=meta | ({"partial": True} if out.partial else {}), announce=False,
        )
        ref = artifact_ref(artifact)
        # one partial file per variation stays: a newer partial or the final replaces it
        if out.partial:
            superseded = job.partials.get(out.variation_index)
            job.partials[out.variation_index] = ref
        else:
            superseded = job.partials.pop(out.variation_index, None)
            job.outputs.append(ref)
        await self.hub.core.record([file_ready(artifact)])
        if superseded is not None:
            await delete_records(self.hub, [superseded.id])

    async def _finish(self, job: _Job, state: str, event: Any, *, code: str | None = None,
                      message: str | None = None) -> None:
        self._running.pop(job.id, None)
        await self._notes_durable(job)  # the ending follows every chunk, in the log too
        finished_at = time.time()
        events: list[Any] = [event]
        kept = _kept(job, state)
        if job.spec.session and job.spec.section and state in ("completed", "cancelled"):
            session = self.hub.core.state.sessions.get(job.spec.session)
            sec = session.section(job.spec.section) if session else None
            if sec is not None and not sec.locked:
                for ref in kept:
                    if ref.mime in ("audio/midi",):
                        take = Take(id=new_id(TAKE), artifact_id=ref.id, status="pending", job_id=job.id,
                                    variation_index=ref.variation_index,
                                    label=f"{job.spec.task} v{(ref.variation_index or 0) + 1}")
                        events.append(TakeAdded(session=job.spec.session, section=job.spec.section, take=take))
        # the record's final state and its job.* event commit together (no crash window)
        await self.hub.core.record(
            events,
            also=lambda: self.hub.jobstore.mark_finished(job.id, state, code=code, message=message,  # type: ignore[arg-type]
                                                         artifacts=kept, now=finished_at),
        )
        if state == "completed" and job.partials:  # a variation whose final never came
            await delete_records(self.hub, [ref.id for ref in job.partials.values()])
        self._pump()


def _kept(job: _Job, state: str) -> list[ArtifactRef]:
    """What a finished job leaves: its final results; a job that did not complete also
    keeps the newest partial result of each variation without a final one."""
    if state == "completed":
        return list(job.outputs)
    return [*job.outputs, *job.partials.values()]


def _warm_imports() -> None:
    import engines.analysis.metadata  # noqa: F401


def _log_failure(what: str, fut: asyncio.Future[Any]) -> None:
    if fut.cancelled():
        return
    exc = fut.exception()
    if exc is not None:
        log.error("%s failed: %s", what, exc, exc_info=exc)
