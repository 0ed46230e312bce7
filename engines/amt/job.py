"""One AMT job: its setup (plan, constraints, rendering) and its run over the shared decoder.

A run's life: ``new`` (first step: Progress 0, rows join the decoder) -> ``decoding``
(one token per variation per engine step; finished rows start their next stage) ->
outputs, Progress 100 and Finished in the step where the last row ends. Generated
events are streamed as Notes chunks every ``notes_every`` events (the first at once, so
a piano roll starts filling immediately). A long run also writes each variation's MIDI so
far as a partial Output every ``partial_every`` seconds, so a DAW can play what exists
while the rest is generated. ``embed`` jobs never decode.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cas.store import CasStore
from engines.amt import ops, plans
from engines.amt.embedding import embed
from engines.amt.masks import Constraints
from engines.amt.plans import Plan, Stage
from engines.amt.sampler import Decoder, SamplingParams
from engines.amt.session_midi import (
    Rendering,
    bar_seconds,
    events_to_notes,
    infill_midi,
    write_session_midi,
)
from engines.amt.tasks import (
    LONG_SECONDS,
    AccompanyParams,
    BridgeParams,
    CommonParams,
    ContinueParams,
    EmbedParams,
    GenerateParams,
    InfillParams,
    LengthParams,
    LoopParams,
)
from engines.base import JobRun
from engines.errors import EngineError
from engines.params import VALIDATION_FAILED, TaskParams
from engines.protocol import (
    Cancelled,
    EngineEvent,
    EngineRequest,
    Finished,
    Notes,
    Output,
    Progress,
)
from engines.transform import ops as tops

MIDI_MIME = "audio/midi"
MAX_VARIATIONS = 8
PROGRESS_EVERY = 48  # tokens between Progress events when no Notes chunk went out
PARTIAL_EVERY = 10.0  # wall seconds between partial MIDI files of a running job
EventsReader = Callable[[str], list[int]]
BytesReader = Callable[[str], bytes]


@dataclass(frozen=True)
class JobSetup:
    task: str
    plan: Plan | None  # None: embed
    sampling: SamplingParams
    variations: int
    seed: int
    rendering: Rendering
    embed: EmbedParams | None = None
    embed_events: list[int] = field(default_factory=list)
    infill_source: bytes | None = None  # the original file an infill edits
    infill_range: tuple[float, float] = (0.0, 0.0)


def _constraints(params: CommonParams, key_text: str | None) -> Constraints:
    scale = None
    if params.key_lock:
        key_text = params.key or key_text
        if not key_text:
            raise plans.invalid("key_lock needs a key (params.key or the section's key)", "key")
        key = tops.parse_key(key_text)
        scale = {(key.tonic + step) % 12 for step in key.scale}
    full = (params.pitch_low, params.pitch_high) == (0, 127)
    silence = params.max_silence_seconds
    return Constraints(
        instruments=params.instruments,
        drums=params.drums,
        pitch_range=None if full else (params.pitch_low, params.pitch_high),
        scale=scale,
        # RESTs are how the model marks time through a silence: with them blocked, each
        # new onset lies at most the limit after the last note's
        block_rest=silence is not None,
        max_time_step=None if silence is None else plans.ticks(silence) + 1,
    )


def build_setup(
    request: EngineRequest, params: TaskParams, events: EventsReader, raw: BytesReader
) -> JobSetup:
    """Validate the request as a whole (variations, inputs, lengths) and plan it."""
    if not 1 <= request.num_variations <= MAX_VARIATIONS:
        raise EngineError(
            f"num_variations must be 1..{MAX_VARIATIONS}",
            code=VALIDATION_FAILED,
            details={
                "errors": [{"loc": ["num_variations"], "msg": "out of range", "type": "range"}]
            },
        )
    if isinstance(params, EmbedParams):
        return JobSetup(
            request.task, None, SamplingParams(), 1, 0, Rendering(), params, events("artifact")
        )
    assert isinstance(params, CommonParams)
    context = request.context
    plan = _plan(params, context, events)
    seed = params.seed if params.seed is not None else (request.seed or 0)
    sampling = SamplingParams(
        top_p=params.top_p,
        temperature=params.temperature,
        constraints=_constraints(params, context.key),
        window="chunked",
    )
    rendering = Rendering(
        quantize_beats=params.grid_beats(),
        velocity=params.velocity,
        accent=params.accent,
        end_seconds=plan.length if isinstance(params, LoopParams) else None,
    )
    if isinstance(params, InfillParams):
        return JobSetup(
            request.task,
            plan,
            sampling,
            request.num_variations,
            seed,
            rendering,
            infill_source=raw("artifact"),
            infill_range=(params.start_seconds, params.end_seconds),
        )
    return JobSetup(request.task, plan, sampling, request.num_variations, seed, rendering)


def _plan(params: CommonParams, context: Any, events: EventsReader) -> Plan:
    def length(
        p: LengthParams, default: float = plans.DEFAULT_SECONDS, limit: float = plans.ONE_CONTEXT_S
    ) -> float:
        return plans.length_seconds(p.length_seconds, p.length_bars, context, default, limit=limit)

    if isinstance(params, GenerateParams):
        return plans.generate_plan(length(params, limit=LONG_SECONDS))
    if isinstance(params, ContinueParams):
        prompt = events("prompt_artifact")
        if not prompt:
            raise plans.invalid("the prompt has no notes", "prompt_artifact")
        return plans.continue_plan(prompt, params.prime_seconds, length(params, limit=LONG_SECONDS))
    if isinstance(params, BridgeParams):
        a, b = events("a_artifact"), events("b_artifact")
        gap = length(params, default=2 * bar_seconds(context))
        return plans.bridge_plan(a, b, gap, params.prime_seconds, params.lookahead_seconds, context)
    if isinstance(params, InfillParams):
        return plans.infill_plan(
            events("artifact"),
            params.start_seconds,
            params.end_seconds,
            params.prime_seconds,
            params.lookahead_seconds,
        )
    if isinstance(params, AccompanyParams):
        melody = events("melody_artifact")
        if params.melody_instruments is not None:
            wanted = set(params.melody_instruments)
            melody = ops.delete(melody, lambda t: ops.instrument_of(t[2]) not in wanted)
        given = params.length_seconds is not None or params.length_bars is not None
        return plans.accompany_plan(melody, length(params) if given else None)
    if isinstance(params, LoopParams):
        return plans.LoopPlan(params.bars, context)
    raise AssertionError(f"unplanned params {type(params).__name__}")


@dataclass
class _Variation:
    index: int
    seed: int
    stage: Stage | None = None
    stage_index: int = 0
    row: int | None = None
    results: list[list[int]] = field(default_factory=list)
    current: list[int] = field(default_factory=list)  # this stage's events, request ticks
    pending: list[int] = field(default_factory=list)  # output ticks, not streamed yet
    streamed: list[int] = field(default_factory=list)
    finished: bool = False
    in_partial: int = 0  # events in the last partial file written


class AmtRun(JobRun):
    def __init__(
        self,
        request: EngineRequest,
        setup: JobSetup,
        decoder: Decoder,
        cas: CasStore,
        model: Any,
        notes_every: int,
        label: str | None,
        partial_every: float = PARTIAL_EVERY,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__(request.job_id)
        self.request = request
        self.setup = setup
        self.decoder = decoder
        self.cas = cas
        self.model = model
        self.notes_every = notes_every
        self.label = label
        self.partial_every = partial_every
        self._clock = clock
        self._last_partial = clock()
        self.phase = "new"
        self.tokens = 0
        self._percent = 0.0
        self._last_progress_tokens = 0
        self._sent_notes = False
        self.variations = [_Variation(k, setup.seed + k) for k in range(setup.variations)]

    # -- state ------------------------------------------------------------------------------

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def decoding(self) -> bool:
        return self.phase == "decoding"

    def rows(self) -> list[int]:
        return [v.row for v in self.variations if v.row is not None]

    # -- stepping ---------------------------------------------------------------------------

    def step(self) -> list[EngineEvent]:
        """Alone: the same as the engine's batched step with this job as the only one."""
        if self.done:
            return []
        if not self.decoding:
            return self.own_step()
        self.decoder.step(self.rows())
        return self.after_decode()

    def own_step(self) -> list[EngineEvent]:
        if self.phase == "new":
            if self.setup.plan is None:
                self.phase = "embed"
            else:
                for variation in self.variations:
                    self._start_stage(variation)
                self.phase = "decoding"
                self._last_partial = self._clock()
            return [Progress(self.job_id, 0, None, 0.0)]
        if self.phase == "embed":
            return self._embed()
        return []

    def after_decode(self) -> list[EngineEvent]:
        self.tokens += len(self.rows())
        ended = False
        for variation in self.variations:
            if variation.row is not None and self.decoder.done(variation.row):
                self._end_stage(variation)
                ended = True
        events: list[EngineEvent] = []
        waiting = sum(len(v.pending) for v in self.variations) // 3
        first = waiting and not self._sent_notes
        if waiting >= self.notes_every or first or (ended and waiting):
            events.append(self._notes())
        if events or self.tokens - self._last_progress_tokens >= PROGRESS_EVERY:
            events.append(self._progress())
        if all(v.finished for v in self.variations):
            events += self._finish()
        elif self._clock() - self._last_partial >= self.partial_every:
            events += self._partials()
        return events

    def cancel(self) -> list[EngineEvent]:
        if self.done:
            return []
        self.close()
        outputs = [
            self._output(v, v.streamed + v.pending, partial=True)
            for v in self.variations
            if v.streamed or v.pending
        ]
        self.phase = "done"
        return [*outputs, Cancelled(self.job_id)]

    def close(self) -> None:
        for variation in self.variations:
            if variation.row is not None:
                self.decoder.remove(variation.row)
                variation.row = None
        if self.phase != "done":
            self.phase = "done"

    # -- stages -----------------------------------------------------------------------------

    def _start_stage(self, variation: _Variation) -> None:
        assert self.setup.plan is not None
        stage = self.setup.plan.stage(variation.stage_index, variation.results, variation.seed)
        variation.stage = stage
        variation.current = []

        def on_event(_row: int, event: tuple[int, int, int]) -> None:
            variation.current.extend(event)
            if stage.keep_before is None or event[0] < stage.keep_before:
                variation.pending.extend(ops.translate(list(event), stage.shift))

        variation.row = self.decoder.add(stage.request, self.setup.sampling, on_event=on_event)

    def _end_stage(self, variation: _Variation) -> None:
        assert variation.row is not None and self.setup.plan is not None
        self.decoder.remove(variation.row)
        variation.row = None
        variation.results.append(variation.current)
        variation.stage_index += 1
        if variation.stage_index < self.setup.plan.stages:
            self._start_stage(variation)
        else:
            variation.finished = True

    # -- events -----------------------------------------------------------------------------

    def _notes(self) -> Notes:
        notes = []
        for v in self.variations:
            notes += events_to_notes(v.pending, v.index, self.setup.rendering.velocity)
            v.streamed += v.pending
            v.pending = []
        self._sent_notes = True
        return Notes(self.job_id, tuple(notes))

    def _partials(self) -> list[EngineEvent]:
        """Each variation's MIDI so far, where it has grown since its last partial file."""
        self._last_partial = self._clock()
        outputs: list[EngineEvent] = []
        for v in self.variations:
            so_far = v.streamed + v.pending
            if not v.finished and len(so_far) > v.in_partial:
                v.in_partial = len(so_far)
                outputs.append(self._output(v, so_far, partial=True))
        return outputs

    def _progress(self) -> Progress:
        stages = self.setup.plan.stages if self.setup.plan is not None else 1
        shares = []
        for v in self.variations:
            current = self.decoder.progress(v.row) if v.row is not None else 0.0
            shares.append(1.0 if v.finished else (v.stage_index + current) / stages)
        self._percent = max(self._percent, round(99.0 * sum(shares) / len(shares), 2))
        self._last_progress_tokens = self.tokens
        return Progress(self.job_id, self.tokens, None, self._percent)

    def _output(self, variation: _Variation, events: list[int], *, partial: bool) -> Output:
        setup = self.setup
        if setup.infill_source is not None:
            start, end = setup.infill_range
            data = infill_midi(setup.infill_source, events, start, end, setup.rendering.velocity)
        else:
            data = write_session_midi(events, self.request.context, setup.rendering)
        stored = self.cas.put(data, mime=MIDI_MIME)
        many = setup.variations > 1
        name = f"{setup.task}-{variation.index + 1:02d}.mid" if many else f"{setup.task}.mid"
        metadata = {
            "task": setup.task,
            "notes": len(events) // 3,
            "seed": variation.seed,
            "model": self.label,
            "seconds": round(setup.plan.length, 3) if setup.plan is not None else None,
            "tempo": self.request.context.tempo,
        }
        return Output(
            self.job_id,
            stored.digest,
            MIDI_MIME,
            stored.size,
            "midi",
            variation_index=variation.index if many else None,
            filename=name,
            metadata=metadata,
            partial=partial,
        )

    def _finish(self) -> list[EngineEvent]:
        assert self.setup.plan is not None
        events: list[EngineEvent] = []
        counts = []
        for v in self.variations:
            final = self.setup.plan.assemble(v.results)
            counts.append(len(final) // 3)
            events.append(self._output(v, final, partial=False))
        self.phase = "done"
        events.append(Progress(self.job_id, self.tokens, self.tokens, 100.0))
        result = {
            "task": self.setup.task,
            "outputs": len(counts),
            "notes": counts,
            "tokens": self.tokens,
            "seeds": [v.seed for v in self.variations],
            "model": self.label,
        }
        events.append(Finished(self.job_id, result=result))
        return events

    def _embed(self) -> list[EngineEvent]:
        params = self.setup.embed
        assert params is not None
        try:
            vector = embed(self.model, self.setup.embed_events, params.layer, params.pool)
        except ValueError as exc:
            raise plans.invalid(str(exc), "layer") from None
        data, mime = (
            (vector.to_json(), "application/json")
            if params.format == "json"
            else (vector.to_npy(), "application/x-npy")
        )
        stored = self.cas.put(data, mime=mime)
        self.phase = "done"
        output = Output(
            self.job_id,
            stored.digest,
            mime,
            stored.size,
            "embedding",
            filename=f"embedding.{params.format}",
            metadata=vector.summary(),
        )
        result = {"task": "embed", **vector.summary(), "vector": vector.vector}
        return [
            output,
            Progress(self.job_id, vector.tokens, vector.tokens, 100.0),
            Finished(self.job_id, result=result),
        ]
