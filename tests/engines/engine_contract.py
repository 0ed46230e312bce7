"""The job contract every engine meets, run through a real worker process.

Use: subclass :class:`EngineContract` in a ``test_*.py`` module and provide a
``case`` fixture returning a :class:`ContractCase` (the engine's spec plus three
request factories). Every test here then runs against that engine.
"""

from __future__ import annotations

import io
import json
import pickle
import time
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import mido
import pytest
from jsonschema import Draft202012Validator

from cas.store import CasStore
from engines.base import is_terminal
from engines.protocol import (
    Cancelled,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Failed,
    Finished,
    Notes,
    Output,
    Progress,
)
from engines.registry import EngineSpec
from engines.worker import WorkerHandle
from engines.worker_host import MAX_EVENT_BYTES

RequestFactory = Callable[[CasStore, str], EngineRequest]


@dataclass(frozen=True)
class ContractCase:
    spec: EngineSpec
    valid: RequestFactory  # a job that finishes with at least one Output
    long: RequestFactory  # a job of many steps, to cancel
    invalid: RequestFactory  # a job whose params fail validation
    # Slow engines are cancelled after their first streamed event; engines whose whole job
    # is faster than a pipe round trip are cancelled right after start.
    cancel_after_first_event: bool = True
    job_timeout: float = 60.0
    start_timeout: float = 120.0
    max_notes_after_cancel: int = 2  # Notes events that may still arrive once cancel is sent


# --- helpers shared with the other engine tests -------------------------------------------


async def collect(
    handle: WorkerHandle, job_ids: Iterable[str], timeout: float = 60.0
) -> dict[str, list[EngineEvent]]:
    """Read the handle's events until every job in ``job_ids`` has its terminal event."""
    pending = set(job_ids)
    out: dict[str, list[EngineEvent]] = {job: [] for job in pending}
    deadline = time.monotonic() + timeout
    while pending:
        event = await handle.next_event(timeout=max(deadline - time.monotonic(), 0.001))
        out.setdefault(event.job_id, []).append(event)
        if is_terminal(event):
            pending.discard(event.job_id)
    return out


async def run_job(
    handle: WorkerHandle, request: EngineRequest, timeout: float = 60.0
) -> list[EngineEvent]:
    handle.start_job(request)
    return (await collect(handle, [request.job_id], timeout))[request.job_id]


def check_grammar(events: list[EngineEvent], job_id: str) -> EngineEvent:
    """Progress/Notes/Output events, then exactly one terminal, last. Returns the terminal."""
    assert events, "no events"
    assert all(e.job_id == job_id for e in events)
    terminals = [e for e in events if is_terminal(e)]
    assert len(terminals) == 1, f"want exactly one terminal event, got {terminals}"
    assert is_terminal(events[-1])
    for event in events[:-1]:
        assert isinstance(event, Progress | Notes | Output), event
    percents = [e.percent for e in events if isinstance(e, Progress)]
    assert all(0.0 <= p <= 100.0 for p in percents)
    assert percents == sorted(percents), "progress went backwards"
    for event in events:
        assert len(pickle.dumps(event)) < MAX_EVENT_BYTES
        if isinstance(event, Notes):
            assert event.notes, "empty Notes chunk"
            for note in event.notes:
                assert 0 <= note.pitch <= 127 and 1 <= note.velocity <= 127
                assert note.onset >= 0 and note.duration >= 0
                assert 0 <= note.instrument <= 128
    return events[-1]


def check_output(cas: CasStore, output: Output) -> None:
    data = cas.get(output.digest)
    assert len(data) == output.size
    if output.kind == "midi":
        assert output.mime == "audio/midi"
        midi = mido.MidiFile(file=io.BytesIO(data))
        assert midi.tracks


# --- the suite ----------------------------------------------------------------------------------


class EngineContract:
    """Subclasses provide a ``case`` fixture returning a :class:`ContractCase`."""

    @pytest.fixture
    def cas(self, tmp_path: Path) -> CasStore:
        return CasStore(tmp_path / "cas")

    @pytest.fixture
    async def worker(self, case: ContractCase, cas: CasStore) -> AsyncIterator[WorkerHandle]:
        handle = WorkerHandle(case.spec, cas.root, start_timeout=case.start_timeout)
        await handle.start()
        try:
            yield handle
        finally:
            await handle.stop()

    async def test_info_shape_and_schemas(self, case: ContractCase, worker: WorkerHandle) -> None:
        info = worker.info
        assert isinstance(info, EngineInfo)
        assert info.available, info.reason
        assert info.name and info.version
        names = [t.name for t in info.tasks]
        assert names and len(names) == len(set(names))
        for task in info.tasks:
            assert task.description
            schema = task.params_schema
            Draft202012Validator.check_schema(schema)
            assert schema["type"] == "object"
            assert isinstance(schema.get("properties", {}), dict)
            json.dumps(schema)  # publishable as is
        # info() is cheap and the same in the hub's process (before setup) as in the worker.
        local = case.spec.build().info()
        assert [t.name for t in local.tasks] == names

    async def test_job_events_follow_the_grammar(
        self, case: ContractCase, worker: WorkerHandle, cas: CasStore
    ) -> None:
        request = case.valid(cas, "job-valid")
        events = await run_job(worker, request, case.job_timeout)
        terminal = check_grammar(events, request.job_id)
        assert isinstance(terminal, Finished), terminal
        outputs = [e for e in events if isinstance(e, Output)]
        results = [o for o in outputs if not o.partial]
        assert results, "a finished job reports its results as Outputs before Finished"
        # partial files (what exists so far, written by a long run) come before the results
        assert outputs[-len(results):] == results
        for output in outputs:
            check_output(cas, output)
        # The job's params validate against the schema the engine publishes.
        schema = next(t.params_schema for t in worker.info.tasks if t.name == request.task)
        Draft202012Validator(schema).validate(request.params)
        assert worker.jobs == frozenset()

    async def test_cancel_mid_run_stops_promptly(
        self, case: ContractCase, worker: WorkerHandle, cas: CasStore
    ) -> None:
        request = case.long(cas, "job-long")
        worker.start_job(request)
        before: list[EngineEvent] = []
        if case.cancel_after_first_event:
            before.append(await worker.next_event(timeout=case.job_timeout))
            assert not is_terminal(before[0]), "the long job ended at once; make it longer"
        sent = time.monotonic()
        assert worker.cancel(request.job_id)
        after = (await collect(worker, [request.job_id], case.job_timeout))[request.job_id]
        latency = time.monotonic() - sent
        print(f"\n{case.spec.name}: cancel -> Cancelled in {latency * 1000:.1f} ms")
        terminal = check_grammar(before + after, request.job_id)
        assert isinstance(terminal, Cancelled), terminal
        notes_after = sum(isinstance(e, Notes) for e in after)
        assert notes_after <= case.max_notes_after_cancel, f"{notes_after} chunks after cancel"
        for output in (e for e in after if isinstance(e, Output)):
            assert output.partial
            check_output(cas, output)
        # The worker is still healthy and takes the next job.
        events = await run_job(worker, case.valid(cas, "job-after-cancel"), case.job_timeout)
        assert isinstance(events[-1], Finished)

    async def test_invalid_params_fail_with_validation_failed(
        self, case: ContractCase, worker: WorkerHandle, cas: CasStore
    ) -> None:
        request = case.invalid(cas, "job-invalid")
        events = await run_job(worker, request, case.job_timeout)
        assert len(events) == 1, events
        failed = events[0]
        assert isinstance(failed, Failed)
        assert failed.code == "validation_failed"
        errors = failed.details["errors"]
        assert errors and all({"loc", "msg", "type"} <= set(e) for e in errors)
        json.dumps(failed.details)

    async def test_unknown_task_fails_with_validation_failed(
        self, case: ContractCase, worker: WorkerHandle, cas: CasStore
    ) -> None:
        valid = case.valid(cas, "x")
        request = EngineRequest("job-unknown", "no-such-task", valid.params, inputs=valid.inputs)
        events = await run_job(worker, request, case.job_timeout)
        assert [type(e) for e in events] == [Failed]
        assert isinstance(events[0], Failed) and events[0].code == "validation_failed"

    async def test_two_jobs_on_one_worker_both_finish(
        self, case: ContractCase, worker: WorkerHandle, cas: CasStore
    ) -> None:
        a, b = case.valid(cas, "job-a"), case.valid(cas, "job-b")
        worker.start_job(a)
        worker.start_job(b)
        results = await collect(worker, ["job-a", "job-b"], case.job_timeout)
        for job_id, events in results.items():
            assert isinstance(check_grammar(events, job_id), Finished)

    def test_in_process_cancel_is_bounded(self, case: ContractCase, cas: CasStore) -> None:
        """At the JobRun level: after a few steps, ``cancel()`` ends the job in that call."""
        engine = case.spec.build()
        engine.setup()
        run = engine.start(case.long(cas, "job-inproc"), cas)
        events: list[EngineEvent] = []
        for _ in range(2):
            events += run.step()
            assert not run.done
        tail = run.cancel()
        assert run.done
        assert isinstance(tail[-1], Cancelled)
        assert all(isinstance(e, Output) and e.partial for e in tail[:-1])
        check_grammar(events + tail, "job-inproc")
        run.close()
