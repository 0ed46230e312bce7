"""The MIDI transform engine: CPU-cheap edits of existing artifacts.

Each job reads its input MIDI from the CAS, applies one transform, streams the
result's notes (so piano rolls fill in as with a model), writes the result to
the CAS and reports it as an Output. It shares the worker and the job contract
with the model engines.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from cas.errors import CasError
from cas.store import CasStore
from engines.base import CancelFlag, GeneratorEngine
from engines.errors import EngineError
from engines.params import VALIDATION_FAILED, TaskParams
from engines.protocol import (
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Finished,
    Notes,
    Output,
    Progress,
)
from engines.transform import ops
from engines.transform.midi import Score, TempoMap, read_midi, to_notes, write_midi
from engines.transform.tasks import (
    MULTI_INPUT,
    SINGLE_INPUT,
    TASKS,
    ExtractParams,
    HumanizeParams,
    MergeParams,
    QuantizeParams,
    SplitParams,
    TempoParams,
    TransposeParams,
    VelocityParams,
)

VERSION = "1.0.0"
MIDI_MIME = "audio/midi"


def _invalid(message: str, loc: str) -> EngineError:
    return EngineError(
        message,
        code=VALIDATION_FAILED,
        details={"errors": [{"loc": [loc], "msg": message, "type": "value_error"}]},
    )


def _input_order(name: str) -> tuple[int, str]:
    """``artifacts.10`` after ``artifacts.9``: the hub numbers list inputs by position."""
    _, _, index = name.rpartition(".")
    return (int(index), name) if index.isdigit() else (1 << 30, name)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")[:40] or "part"


class TransformEngine(GeneratorEngine):
    def __init__(self, notes_per_chunk: int = 128) -> None:
        if notes_per_chunk < 1:
            raise ValueError("notes_per_chunk must be >= 1")
        self.notes_per_chunk = notes_per_chunk

    def info(self) -> EngineInfo:
        return EngineInfo(name="transform", version=VERSION, tasks=TASKS.infos(), device="cpu")

    def prepare(self, request: EngineRequest) -> None:
        params = TASKS.validate(request.task, request.params)
        self._input_names(request, params)  # missing inputs are rejected before the first step

    def run(
        self, request: EngineRequest, cancel: CancelFlag, cas: CasStore
    ) -> Iterator[EngineEvent]:
        job = request.job_id
        params = TASKS.validate(request.task, request.params)
        yield Progress(job, 0, None, 0.0)
        sources = [
            (name, self._load(cas, request.inputs[name]))
            for name in self._input_names(request, params)
        ]
        results = self._apply(request, params, sources)
        total = sum(score.note_count for _, score in results)
        sent = 0
        for index, (_, score) in enumerate(results):
            notes = to_notes(score, variation=index)
            for at in range(0, len(notes), self.notes_per_chunk):
                chunk = tuple(notes[at : at + self.notes_per_chunk])
                sent += len(chunk)
                yield Notes(job, chunk)
                yield Progress(job, sent, total, round(95.0 * sent / max(total, 1), 2))
        many = len(results) > 1
        for index, (label, score) in enumerate(results):
            stored = cas.put(write_midi(score), mime=MIDI_MIME)
            name = (
                f"{request.task}-{index + 1:02d}-{_slug(label)}.mid"
                if many
                else f"{request.task}.mid"
            )
            yield Output(
                job,
                stored.digest,
                MIDI_MIME,
                stored.size,
                "midi",
                variation_index=index if many else None,
                filename=name,
                metadata=self._metadata(request.task, label, score, many),
            )
        yield Progress(job, total, total, 100.0)
        yield Finished(job, result={"task": request.task, "outputs": len(results), "notes": total})

    # -- pieces -------------------------------------------------------------------------------

    @staticmethod
    def _input_names(request: EngineRequest, params: TaskParams) -> list[str]:
        inputs = request.inputs
        if isinstance(params, MergeParams):
            names = sorted(inputs, key=_input_order)
            if len(names) < 2:
                raise _invalid("merge needs at least two input artifacts", MULTI_INPUT)
            return names
        if SINGLE_INPUT in inputs:
            return [SINGLE_INPUT]
        if len(inputs) == 1:
            return list(inputs)
        raise _invalid(f"task {request.task!r} needs one input artifact", SINGLE_INPUT)

    @staticmethod
    def _load(cas: CasStore, digest: str) -> Score:
        try:
            data = cas.get(digest)
        except CasError as exc:
            code = "input_not_found" if exc.code in ("not_found", "invalid_digest") else exc.code
            raise EngineError(
                f"input {digest[:16]} cannot be read: {exc.message}",
                code=code,
                details={"digest": digest},
            ) from None
        return read_midi(data)

    @staticmethod
    def _apply(
        request: EngineRequest, params: TaskParams, sources: list[tuple[str, Score]]
    ) -> list[tuple[str, Score]]:
        label, score = sources[0]
        if isinstance(params, TransposeParams):
            key_text = params.key or request.context.key
            if params.steps and not key_text:
                raise _invalid("diatonic steps need a key (params.key or the section's key)", "key")
            key = ops.parse_key(key_text) if params.steps and key_text else None
            return [(label, ops.transpose(score, params.semitones, steps=params.steps, key=key))]
        if isinstance(params, QuantizeParams):
            return [
                (
                    label,
                    ops.quantize(
                        score,
                        params.grid_beats(),
                        strength=params.strength,
                        swing=params.swing,
                        ends=params.quantize_ends,
                    ),
                )
            ]
        if isinstance(params, TempoParams):
            return [(label, ops.change_tempo(score, bpm=params.bpm, scale=params.scale))]
        if isinstance(params, VelocityParams):  # HumanizeParams is one too
            shape = ops.Shape(
                params.accent,
                params.contour,
                params.phrase_bars,
                params.spread,
                params.center,
                params.min_velocity,
                params.max_velocity,
            )
            jitter = None
            if isinstance(params, HumanizeParams):
                seed = params.seed if params.seed is not None else (request.seed or 0)
                jitter = ops.Jitter(params.timing_ms, params.velocity_jitter, seed)
            return [(label, ops.shape_velocity(score, shape, jitter))]
        if isinstance(params, MergeParams):
            offsets = dict(zip((name for name, _ in sources), params.offsets, strict=False))
            return [("merged", ops.merge(sources, offsets))]
        if isinstance(params, SplitParams):
            parts = ops.split(score, params.by)
            if not parts:
                raise EngineError("the input has no notes to split", code="no_match")
            return parts
        if isinstance(params, ExtractParams):
            return [
                (
                    label,
                    ops.extract(
                        score,
                        program=params.program,
                        drums=params.drums,
                        track=params.track,
                        name=params.name,
                    ),
                )
            ]
        raise AssertionError(f"unhandled task {request.task}")  # TASKS and this method agree

    @staticmethod
    def _metadata(task: str, label: str, score: Score, many: bool) -> dict[str, object]:
        tmap = TempoMap(score.tempos, score.ticks_per_beat)
        meta: dict[str, object] = {
            "task": task,
            "notes": score.note_count,
            "tracks": len(score.parts),
            "bpm": ops.first_bpm(score),
            "beats": round(score.end_tick / score.ticks_per_beat, 4),
            "duration_s": round(tmap.seconds(score.end_tick), 4),
        }
        if many:
            first = score.parts[0]
            meta.update(part=label, program=first.program, drums=first.is_drum)
        return meta
