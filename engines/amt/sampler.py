"""The AMT sampling control loop (the reference ``generate`` / ``generate_ar``), batched.

The loop owns everything the reference does around the model: prompt padding, turning
input events after the start into anticipated controls, interleaving them ``delta`` ticks
early, the context window with its time relativisation, the masks, the stop rule and the
output assembly (AMT-FORMAT.md §2). The network is a pluggable ``ModelStep``. Rows advance
in lockstep, one token per step, each with its own ``torch.Generator`` seeded from its
request, and nothing a row computes depends on the other rows, so a row's result is the
same alone or in a batch.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import torch

from engines.amt import ops
from engines.amt import vocab as V
from engines.amt.draw import RowDraw, draw_rows
from engines.amt.errors import SamplerError, SamplingCancelled
from engines.amt.masks import Constraints, Mask, Ranges, note_instruments, open_ranges
from engines.amt.steps import ModelStep, NarrowingStep

HISTORY_TOKENS = V.CONTEXT_SIZE - 7  # 1017: flag + 1017 + 2 partial tokens fit in 1024

EventCallback = Callable[[int, tuple[int, int, int]], None]


@dataclass(frozen=True)
class GenerationRequest:
    """One row. Times in seconds; ``inputs`` are events, ``controls`` control triples."""

    start_time: float
    end_time: float
    inputs: Sequence[int] = ()
    controls: Sequence[int] = ()
    mode: Literal["anticipate", "ar"] = "anticipate"
    seed: int = 0


@dataclass(frozen=True)
class SamplingParams:
    """Shared by all rows of a batch.

    window: "reference" slides the window by one triple as soon as the history passes
      1017 tokens (exactly the reference's inputs); "chunked" keeps the window start fixed
      and, when it overflows, jumps so that only the last ``keep_tokens`` remain, which lets
      a KV-cached step rebuild its cache once per ~170 events instead of every event.
    finish_stopping_triple: sample duration and note of the triple whose onset ends the
      generation, as the reference does (only needed to replay its model-call count).
    """

    top_p: float = 1.0
    temperature: float = 1.0
    constraints: Constraints | None = None
    delta: int = V.DELTA_TICKS
    window: Literal["reference", "chunked"] = "reference"
    keep_tokens: int = 510
    finish_stopping_triple: bool = False


def variations(request: GenerationRequest, n: int) -> list[GenerationRequest]:
    """``n`` copies of a request; variation k uses seed + k."""
    return [replace(request, seed=request.seed + k) for k in range(n)]


@dataclass
class _Row:
    index: int
    request: GenerationRequest
    flag: int
    tokens: list[int]
    start: int
    end: int
    current_time: int
    pending: list[int]  # anticipate: controls still to place; ar: future events to backfill
    extra: list[int]  # added to the output: future events (anticipate) / all of them (ar)
    generator: torch.Generator
    instruments: set[int] = field(default_factory=set)
    win_start: int = 0
    base: list[int] = field(default_factory=list)  # flag + relativised history
    based: tuple[int, int] = (0, 0)  # tokens[start:end] that ``base`` holds
    offset: int = 0
    partial: list[int] = field(default_factory=list)
    done: bool = False
    on_event: EventCallback | None = None

    def append(self, triple: Sequence[int]) -> None:
        self.tokens.extend(triple)
        if triple[2] < V.SPECIAL_OFFSET:
            self.instruments.add(ops.instrument_of(triple[2]))

    def next_pending_time(self) -> float:
        if not self.pending:
            return math.inf
        base = V.ATIME_OFFSET if self.request.mode == "anticipate" else V.TIME_OFFSET
        return self.pending[0] - base


def _init_row(index: int, req: GenerationRequest) -> _Row:
    if req.end_time <= req.start_time:
        raise SamplerError("end_time must be after start_time")
    start = ops.seconds_to_ticks(req.start_time)
    end = ops.seconds_to_ticks(req.end_time)
    generator = torch.Generator().manual_seed(req.seed)
    if req.mode == "anticipate":
        inputs = list(req.inputs)
        prompt = ops.pad(ops.clip(inputs, 0, start, clip_duration=False), start)
        future = ops.clip(inputs, start + 1, ops.max_time(inputs), clip_duration=False)
        # the reference drops controls before DELTA, read as ticks (5), not seconds
        controls = list(req.controls)
        controls = ops.clip(controls, V.DELTA, ops.max_time(controls), clip_duration=False)
        flag = V.ANTICIPATE if controls or future else V.AUTOREGRESS
        merged = ops.sort(controls + [V.CONTROL_OFFSET + tok for tok in future])
        tokens, leftover = ops.anticipate(prompt, merged)
        row = _Row(
            index, req, flag, [], start, end, ops.max_time(prompt), leftover, future, generator
        )
    else:
        # the AR variant treats controls as ordinary events and backfills them in time
        events = ops.sort(list(req.inputs) + [tok - V.CONTROL_OFFSET for tok in req.controls])
        prompt = ops.pad(ops.clip(events, 0, start, clip_duration=False), start)
        later = ops.clip(events, start + 1, ops.max_time(events), clip_duration=False)
        tokens = prompt
        row = _Row(
            index,
            req,
            V.AUTOREGRESS,
            [],
            start,
            end,
            ops.max_time(prompt),
            list(later),
            list(later),
            generator,
        )
    for triple in ops.triples(tokens):
        row.append(triple)
    return row


def _begin_triple(row: _Row, params: SamplingParams) -> None:
    """Place due controls, then fix this triple's window and its time offset."""
    if row.request.mode == "anticipate":
        while row.current_time >= row.next_pending_time() - params.delta:
            row.append(row.pending[:3])
            del row.pending[:3]
    n = len(row.tokens)
    if params.window == "reference":
        row.win_start = max(n - HISTORY_TOKENS, 0)
    elif n - row.win_start > HISTORY_TOKENS:
        row.win_start = n - min(params.keep_tokens, HISTORY_TOKENS)
    if not _extend_base(row, n):
        history = row.tokens[row.win_start :]
        row.offset = ops.min_time(history)
        rel = list(history)
        rel[0::3] = [tok - row.offset for tok in history[0::3]]
        row.base = [row.flag, *rel]
        row.based = (row.win_start, n)
    row.partial = []


def _extend_base(row: _Row, n: int) -> bool:
    """Append the triples added since the last window to it, when that is all that changed.

    Exactly what a rebuild gives: same window start, a non-empty earlier history, and no
    new onset before the offset (so ``min_time`` and with it every relativised time stay).
    """
    start, covered = row.based
    if start != row.win_start or not start < covered <= n:
        return False
    new = row.tokens[covered:n]
    for time, _dur, note in ops.triples(new):
        if note == V.SEPARATOR or ops.event_time(time, note) < row.offset:
            return False
    new[0::3] = [tok - row.offset for tok in new[0::3]]
    row.base.extend(new)
    row.based = (start, n)
    return True


def _finish_triple(row: _Row, on_event: EventCallback | None) -> None:
    time, dur, note = row.partial
    row.partial = []
    time += row.offset
    if time >= row.end:
        row.done = True
        return
    if row.request.mode == "ar":
        while time >= row.next_pending_time():
            row.append(row.pending[:3])
            del row.pending[:3]
    row.append((time, dur, note))
    row.current_time = time
    if on_event is not None:
        on_event(row.index, (time, dur, note))


def _output(row: _Row) -> list[int]:
    if row.request.mode == "anticipate":
        events, _controls = ops.split(row.tokens)
        return ops.sort(ops.unpad(events) + row.extra)
    # the reference appends the next not-yet-due future event once more before merging
    # in all of them, so that event appears twice in its output; kept for exactness
    return ops.sort(ops.unpad(row.tokens + row.pending[:3]) + row.extra)


class Decoder:
    """Rows decoded together, one token per row per :meth:`step`, joining and leaving freely.

    Each row has its own request, params (constraints, top_p, temperature, window) and
    generator; a step makes one ``step(windows, rows)`` call for all rows asked for, so a
    batching ``ModelStep`` runs one forward pass for all of them. Row ids are unique for
    the decoder's lifetime (a stateful step keys its caches by them).

    Each row's masks are turned into the id ranges it can sample (``masks.open_ranges``)
    before the step: a ``NarrowingStep`` computes logits for those ids only, and sampling
    reads only those ids (the same draws as masking the whole vector).
    """

    def __init__(self, step: ModelStep) -> None:
        self.model_step = step
        # a narrowing step computes logits only for the ids each row may sample
        self._narrowed = step.narrowed if isinstance(step, NarrowingStep) else None
        self._rows: dict[int, tuple[_Row, SamplingParams]] = {}
        self._masks: dict[int, Mask | None] = {}
        self._allowed: dict[int, tuple[int, ...] | None] = {}  # instruments the mask leaves
        self._note_ranges: dict[int, tuple[int, Ranges]] = {}  # (instruments seen, ranges)
        self._next_id = 0
        self.tokens = 0  # sampled tokens over all rows, for progress and benchmarks

    def add(
        self,
        request: GenerationRequest,
        params: SamplingParams | None = None,
        *,
        on_event: EventCallback | None = None,
        row_id: int | None = None,
    ) -> int:
        """Start a row; returns its id (events reach ``on_event`` as they complete)."""
        params = params or SamplingParams()
        _check_params(params)
        rid = self._next_id if row_id is None else row_id
        if rid in self._rows:
            raise SamplerError(f"row {rid} already exists")
        self._next_id = max(self._next_id, rid + 1)
        row = _init_row(rid, request)
        row.on_event = on_event
        self._rows[rid] = (row, params)
        self._masks[rid] = params.constraints.note_mask() if params.constraints else None
        self._allowed[rid] = note_instruments(self._masks[rid])
        return rid

    def done(self, row_id: int) -> bool:
        return self._rows[row_id][0].done

    def active(self) -> list[int]:
        return [rid for rid, (row, _) in self._rows.items() if not row.done]

    def output(self, row_id: int) -> list[int]:
        """The row's events so far (all of them once done), sorted by onset."""
        return _output(self._rows[row_id][0])

    def progress(self, row_id: int) -> float:
        """Share of the row's time span covered, 0..1."""
        row = self._rows[row_id][0]
        if row.done:
            return 1.0
        span = max(row.end - row.start, 1)
        return min(max(row.current_time - row.start, 0) / span, 1.0)

    def remove(self, row_id: int) -> None:
        """Drop a row (finished, or its job was cancelled) and release its step state."""
        if self._rows.pop(row_id, None) is not None:
            self._masks.pop(row_id, None)
            self._allowed.pop(row_id, None)
            self._note_ranges.pop(row_id, None)
            self.model_step.release(row_id)

    def step(self, rows: Sequence[int] | None = None) -> None:
        """Sample one token for each active row (of ``rows``, default all)."""
        ids = self.active() if rows is None else [r for r in rows if not self.done(r)]
        if not ids:
            return
        active = [self._rows[r] for r in ids]
        for row, params in active:
            if not row.partial:
                _begin_triple(row, params)
        windows = [row.base + row.partial for row, _ in active]
        slots = [(len(window) - 1) % 3 for window in windows]
        opens = [
            self._open_ranges(row, params, slot)
            for (row, params), slot in zip(active, slots, strict=True)
        ]
        if self._narrowed is not None:
            logits = self._narrowed(windows, ids, opens)
        else:
            logits = self.model_step(windows, ids)
        if logits.shape != (len(active), V.VOCAB_SIZE):
            raise SamplerError(f"model step returned logits of shape {tuple(logits.shape)}")
        # float32 on the CPU is a zero-copy view; torch's own small-op path is slow here
        rows_logits = logits.detach().cpu().float().numpy()
        # exactly the reference masks (masks.mask_logits), over the open ids only
        draws = [
            RowDraw(
                ranges,
                row.generator,
                self._masks[row.index] if slot == 2 else None,
                params.top_p,
                params.temperature,
            )
            for (row, params), slot, ranges in zip(active, slots, opens, strict=True)
        ]
        tokens = draw_rows(rows_logits, draws)
        self.tokens += len(active)
        for (row, params), slot, token in zip(active, slots, tokens, strict=True):
            row.partial.append(token)
            stop_now = (
                slot == 0 and not params.finish_stopping_triple and token + row.offset >= row.end
            )
            if stop_now:
                row.done = True
            elif len(row.partial) == 3:
                _finish_triple(row, row.on_event)
            if row.done:
                self.model_step.release(row.index)

    def _open_ranges(self, row: _Row, params: SamplingParams, slot: int) -> Ranges:
        if slot == 2:
            seen = len(row.instruments)  # only grows, so it identifies the set
            known = self._note_ranges.get(row.index)
            if known is not None and known[0] == seen:
                return known[1]
        ranges = open_ranges(
            slot,
            current_time=max(row.start, row.current_time) - row.offset,
            instruments=row.instruments,
            constraints=params.constraints,
            allowed_instruments=self._allowed[row.index],
        )
        if slot == 2:
            self._note_ranges[row.index] = (len(row.instruments), ranges)
        return ranges


def _check_params(params: SamplingParams) -> None:
    if not 0.0 < params.top_p <= 1.0:
        raise SamplerError("top_p must be in (0, 1]")
    if params.temperature <= 0:
        raise SamplerError("temperature must be > 0")


def generate_batch(
    step: ModelStep,
    requests: Sequence[GenerationRequest],
    params: SamplingParams | None = None,
    *,
    on_event: EventCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[list[int]]:
    """Decode every request as one batch; returns each row's events (sorted by onset)."""
    params = params or SamplingParams()
    _check_params(params)
    decoder = Decoder(step)
    ids = [decoder.add(req, params, on_event=on_event) for req in requests]
    try:
        while decoder.active():
            if cancel is not None and cancel():
                raise SamplingCancelled()
            decoder.step()
        return [decoder.output(rid) for rid in ids]
    finally:
        for rid in ids:
            decoder.remove(rid)


def generate(
    step: ModelStep,
    request: GenerationRequest,
    params: SamplingParams | None = None,
    *,
    on_event: EventCallback | None = None,
    cancel: Callable[[], bool] | None = None,
) -> list[int]:
    """One row: the reference ``generate`` (mode "anticipate") or ``generate_ar`` ("ar")."""
    return generate_batch(step, [request], params, on_event=on_event, cancel=cancel)[0]
