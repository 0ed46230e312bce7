"""A deliberately slow streaming engine for tests (never shipped).

Each step sleeps ``interval`` seconds, then emits one numbered Notes chunk (chunk
``i`` has onsets ``i * chunk_seconds + ...`` so ordering and gaps are checkable)
and a Progress event. At the end it writes the notes as MIDI to the CAS; on
cancel (and every ``partial_every`` chunks, if asked) it writes what it has as a partial
Output. ``crash`` kills the process
mid-run (``os._exit``), ``fail`` raises an EngineError mid-run, ``error`` raises a
plain exception (a bug in the engine).
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence

import mido
from pydantic import Field

from cas.store import CasStore
from engines.base import Engine, JobRun
from engines.errors import EngineError
from engines.params import TaskParams, TaskSpec, TaskTable
from engines.protocol import (
    Cancelled,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Finished,
    Note,
    Notes,
    Output,
    Progress,
)

CHUNK_SECONDS = 0.5  # musical time covered by one chunk


class StreamParams(TaskParams):
    chunks: int = Field(24, ge=1, le=10_000, description="number of Notes chunks")
    interval: float = Field(0.1, ge=0.0, le=5.0, description="seconds of 'work' per chunk")
    notes_per_chunk: int = Field(4, ge=1, le=64)
    crash: bool = Field(False, description="os._exit(1) half way through")
    fail: bool = Field(False, description="raise EngineError(code='test_failure') half way")
    error: bool = Field(False, description="raise ZeroDivisionError half way")
    huge: bool = Field(False, description="emit a 2 MB event (bytes that belong in the CAS)")
    partial_every: int = Field(0, ge=0, le=10_000,
                               description="write the MIDI so far as a partial file every N chunks (0: never)")


TASKS = TaskTable([TaskSpec("stream", "Emit numbered note chunks slowly", StreamParams)])


def chunk_notes(index: int, per_chunk: int) -> tuple[Note, ...]:
    """Chunk ``index``: notes evenly spread over its half second, pitch encodes the index."""
    step = CHUNK_SECONDS / per_chunk
    return tuple(
        Note(
            variation=0,
            onset=round(index * CHUNK_SECONDS + k * step, 6),
            duration=round(step, 6),
            pitch=48 + (index % 24),
            velocity=64 + k % 32,
            instrument=0,
        )
        for k in range(per_chunk)
    )


def notes_to_midi(notes: Sequence[Note]) -> bytes:
    """A one-track MIDI file at 120 bpm (1 beat = 0.5 s)."""
    import io

    tpb = 480
    events: list[tuple[int, int, mido.Message]] = []
    for n in notes:
        start = round(n.onset * 2 * tpb)
        end = max(round((n.onset + n.duration) * 2 * tpb), start + 1)
        events.append((start, 1, mido.Message("note_on", note=n.pitch, velocity=n.velocity)))
        events.append((end, 0, mido.Message("note_off", note=n.pitch, velocity=0)))
    track = mido.MidiTrack()
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1])):
        track.append(msg.copy(time=tick - now))
        now = tick
    midi = mido.MidiFile(type=1, ticks_per_beat=tpb)
    midi.tracks.append(track)
    out = io.BytesIO()
    midi.save(file=out)
    return out.getvalue()


class SlowRun(JobRun):
    def __init__(self, request: EngineRequest, params: StreamParams, cas: CasStore) -> None:
        super().__init__(request.job_id)
        self.params = params
        self.cas = cas
        self.index = 0
        self.notes: list[Note] = []
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def _output(self, *, partial: bool) -> Output:
        stored = self.cas.put(notes_to_midi(self.notes), mime="audio/midi")
        return Output(
            self.job_id,
            stored.digest,
            "audio/midi",
            stored.size,
            "midi",
            variation_index=0,
            filename="slow.mid",
            metadata={"notes": len(self.notes), "chunks": self.index},
            partial=partial,
        )

    def step(self) -> list[EngineEvent]:
        p = self.params
        if self.index == p.chunks // 2:
            if p.crash:
                os._exit(1)
            if p.fail:
                raise EngineError("asked to fail", code="test_failure", details={"at": self.index})
            if p.error:
                _ = 1 / 0
        time.sleep(p.interval)
        if p.huge:
            blob = Output(
                self.job_id, "0" * 64, "audio/midi", 1, "midi", metadata={"b": "x" * 2**21}
            )
            return [blob]
        chunk = chunk_notes(self.index, p.notes_per_chunk)
        self.notes.extend(chunk)
        self.index += 1
        events: list[EngineEvent] = [
            Notes(self.job_id, chunk),
            Progress(self.job_id, self.index, p.chunks, round(100.0 * self.index / p.chunks, 2)),
        ]
        if self.index == p.chunks:
            self._done = True
            events += [self._output(partial=False), Finished(self.job_id, {"chunks": self.index})]
        elif p.partial_every and self.index % p.partial_every == 0:
            events.append(self._output(partial=True))
        return events

    def cancel(self) -> list[EngineEvent]:
        self._done = True
        events: list[EngineEvent] = [self._output(partial=True)] if self.notes else []
        return [*events, Cancelled(self.job_id)]


class SlowEngine(Engine):
    """``unavailable``: a reason to refuse in ``setup`` (tests availability reporting);
    ``setup_seconds``: how long ``setup`` takes."""

    def __init__(self, unavailable: str | None = None, setup_seconds: float = 0.0) -> None:
        self.unavailable = unavailable
        self.setup_seconds = setup_seconds  # a slow weight load, for start timeouts

    def info(self) -> EngineInfo:
        return EngineInfo(name="slow", version="0.1", tasks=TASKS.infos(), device="cpu")

    def setup(self) -> None:
        time.sleep(self.setup_seconds)
        if self.unavailable:
            raise EngineError(self.unavailable, code="engine_unavailable")

    def start(self, request: EngineRequest, cas: CasStore) -> JobRun:
        params = TASKS.validate(request.task, request.params)
        assert isinstance(params, StreamParams)
        return SlowRun(request, params, cas)


class BatchingSlowEngine(SlowEngine):
    """Steps all its runs in one call, as a batched model would; reports the largest batch."""

    def __init__(self) -> None:
        super().__init__()
        self.max_batch = 0

    def step_many(self, runs: Sequence[JobRun]) -> Mapping[str, list[EngineEvent]]:
        self.max_batch = max(self.max_batch, len(runs))
        out: dict[str, list[EngineEvent]] = {}
        for run in runs:
            assert isinstance(run, SlowRun)
            run.params = run.params.model_copy(update={"interval": 0.0})
            events = run.step()
            out[run.job_id] = [
                Finished(e.job_id, {**e.result, "max_batch": self.max_batch})
                if isinstance(e, Finished)
                else e
                for e in events
            ]
        time.sleep(0.05)  # the one "forward pass" for the whole batch
        return out
