"""The AMT engine: every task as batch rows of one shared decoder.

One :class:`~engines.amt.sampler.Decoder` over one batched KV-cached step holds the rows of
every running job (one row per variation). The worker calls :meth:`AmtEngine.step_many`
with all running jobs: each job that is decoding contributes its rows and a single
forward pass advances them all by one token; jobs join and leave between steps. A job
alone (``JobRun.step``) goes through the same path with itself as the only job.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from cas.errors import CasError
from cas.store import CasStore
from engines.amt import models
from engines.amt.codec import midi_to_events
from engines.amt.errors import CodecError
from engines.amt.tasks import TASKS
from engines.base import Engine, JobRun
from engines.errors import EngineError
from engines.protocol import EngineEvent, EngineInfo, EngineRequest, Failed

# Torch-heavy modules are imported when a model is attached: the hub spawns this engine's
# worker even without weights, and "unavailable" should not cost a torch import.
if TYPE_CHECKING:
    from engines.amt.sampler import Decoder

VERSION = "1.0.0"


class AmtEngine(Engine):
    """Spec kwargs: ``model`` (hub id, folder, or None for the bundled weights), ``device``
    and ``dtype`` (default: automatic), ``threads`` (torch intra-op threads; default
    torch's choice), ``notes_every`` (events per streamed Notes chunk), ``partial_every``
    (wall seconds between partial MIDI files of a running job)."""

    def __init__(
        self,
        model: str | None = None,
        device: str | None = None,
        dtype: str | None = None,
        threads: int | None = None,
        notes_every: int = 4,
        partial_every: float | None = None,
    ) -> None:
        if notes_every < 1:
            raise ValueError("notes_every must be >= 1")
        if partial_every is not None and partial_every <= 0:
            raise ValueError("partial_every must be > 0 seconds")
        self.model_name = model
        self.device = device
        self.dtype = dtype
        self.threads = threads if threads is not None else default_threads()
        self.notes_every = notes_every
        self.partial_every = partial_every
        self.model: Any = None
        self.label: str | None = None
        self.decoder: Decoder | None = None

    # -- Engine -----------------------------------------------------------------------------

    def info(self) -> EngineInfo:
        if self.model is not None:
            return EngineInfo(
                "amt", VERSION, TASKS.infos(), model=self.label, device=self._device_text()
            )
        try:
            choice = models.resolve(self.model_name)
        except EngineError as exc:
            return EngineInfo("amt", VERSION, TASKS.infos(), available=False, reason=exc.message)
        device = models.pick_device(self.device)
        dtype = models.pick_dtype(device, self.dtype)
        return EngineInfo(
            "amt", VERSION, TASKS.infos(), model=choice.label, device=f"{device} ({dtype})"
        )

    def setup(self) -> None:
        if self.threads:
            import torch

            torch.set_num_threads(self.threads)
        loaded = models.load(self.model_name, device=self.device, dtype=self.dtype)
        self.use_model(loaded.model, loaded.choice.label, loaded.device, loaded.dtype)

    def use_model(
        self, model: Any, label: str, device: str = "cpu", dtype: str = "float32"
    ) -> None:
        """Attach an already loaded causal LM (tests, benchmarks, embedding the engine)."""
        from engines.amt.batching import BatchedCachedStep
        from engines.amt.sampler import Decoder

        self.model = model
        self.label = label
        self.device, self.dtype = device, dtype
        self.decoder = Decoder(BatchedCachedStep(model))

    def warmup(self) -> None:
        """Two tokens so the first job does not pay for lazy kernel setup."""
        from engines.amt.sampler import GenerationRequest, SamplingParams

        decoder = self._decoder()
        row = decoder.add(GenerationRequest(0.0, 1.0), SamplingParams())
        try:
            for _ in range(2):
                decoder.step([row])
        finally:
            decoder.remove(row)

    def start(self, request: EngineRequest, cas: CasStore) -> JobRun:
        from engines.amt.job import PARTIAL_EVERY, AmtRun, build_setup

        decoder = self._decoder()
        params = TASKS.validate(request.task, request.params)
        setup = build_setup(
            request,
            params,
            lambda name: midi_events(_read(cas, request, name), name),
            lambda name: _read(cas, request, name),
        )
        every = PARTIAL_EVERY if self.partial_every is None else self.partial_every
        return AmtRun(request, setup, decoder, cas, self.model, self.notes_every, self.label, every)

    # -- BatchStepper -------------------------------------------------------------------------

    def step_many(self, runs: Sequence[JobRun]) -> Mapping[str, list[EngineEvent]]:
        """One decode step for every decoding job together; other jobs do their own step."""
        from engines.amt.job import AmtRun

        decoder = self._decoder()
        events: dict[str, list[EngineEvent]] = {}
        decoding: list[AmtRun] = []
        for run in runs:
            if not isinstance(run, AmtRun) or run.done:
                continue
            if run.decoding:
                decoding.append(run)
                continue
            try:
                events[run.job_id] = run.own_step()
            except EngineError as exc:
                run.close()
                events[run.job_id] = [Failed(run.job_id, exc.code, exc.message, dict(exc.details))]
        if decoding:
            decoder.step([row for run in decoding for row in run.rows()])
            for run in decoding:
                events[run.job_id] = run.after_decode()
        return events

    # -- helpers ------------------------------------------------------------------------------

    def _decoder(self) -> Decoder:
        if self.decoder is None:
            raise EngineError("the AMT model is not loaded", code="engine_unavailable")
        return self.decoder

    def _device_text(self) -> str:
        return f"{self.device} ({self.dtype})"


def _read(cas: CasStore, request: EngineRequest, name: str) -> bytes:
    digest = request.inputs.get(name)
    if digest is None:
        raise EngineError(
            f"task {request.task!r} needs the input {name!r} (an artifact id)",
            code="validation_failed",
            details={"errors": [{"loc": [name], "msg": "missing input", "type": "missing"}]},
        )
    try:
        return cas.get(digest)
    except CasError as exc:
        raise EngineError(
            f"input {name} cannot be read: {exc.message}",
            code="input_not_found",
            details={"digest": digest},
        ) from None


def midi_events(data: bytes, name: str = "input") -> list[int]:
    try:
        return midi_to_events(data)
    except CodecError as exc:
        raise EngineError(
            f"{name} is not readable MIDI: {exc.message}", code="invalid_midi"
        ) from None


def default_threads() -> int | None:
    """``TUTTI_AMT_THREADS`` if set (shared machines run best with fewer threads)."""
    value = os.environ.get("TUTTI_AMT_THREADS")
    return int(value) if value and value.isdigit() else None
