"""What each task asks of the sampler: stages of requests per variation, and the result.

A plan turns validated params, the input events (10 ms ticks) and the section's grid into
one or more sampler stages per variation (a loop regenerates its tail in a second stage,
with its own beginning as anticipated controls; music longer than one context is chained,
each stage continuing the last), says where the generated events land in
the output (``shift`` ticks), and assembles the final events. Times inside a request are
kept under 95 s so every token fits the 100-s absolute time range of one context.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from engines.amt import ops
from engines.amt import vocab as V
from engines.amt.sampler import GenerationRequest
from engines.amt.session_midi import bar_seconds
from engines.errors import EngineError
from engines.params import VALIDATION_FAILED
from engines.protocol import MusicalContext

SPAN_LIMIT_S = 95.0  # prime + generated span + lookahead inside one request
ONE_CONTEXT_S = SPAN_LIMIT_S - 5  # the most music one request generates
CHAIN_PRIME_S = 10.0  # what a chained stage reads of the music before it
STAGE_SEED = 1_000_003  # a later stage's seed offset: its own random stream
DEFAULT_SECONDS = 10.0
TPS = V.TIME_RESOLUTION


def invalid(message: str, loc: str) -> EngineError:
    return EngineError(
        message,
        code=VALIDATION_FAILED,
        details={"errors": [{"loc": [loc], "msg": message, "type": "value_error"}]},
    )


def ticks(seconds: float) -> int:
    return round(seconds * TPS)


def length_seconds(
    seconds: float | None,
    bars: int | None,
    context: MusicalContext,
    default: float,
    *,
    limit: float = ONE_CONTEXT_S,
) -> float:
    """Bars at the section's tempo win over seconds; either may be at most ``limit``.

    With neither, a job aimed at a section fills it (up to ``limit``), as a musician
    generating on an 8-bar section expects; otherwise ``default``.
    """
    if bars is None and seconds is None and context.bars is not None:
        return min(context.bars * bar_seconds(context), limit)
    value = bars * bar_seconds(context) if bars is not None else seconds or default
    if value > limit:
        what = "one model context holds" if limit == ONE_CONTEXT_S else "this task allows"
        raise invalid(f"length of {value:.1f} s is over the {limit:g} s {what}", "length")
    return value


def end_time(events: Sequence[int]) -> int:
    """Tick at which the last note ends (0 for no events)."""
    return max((t + d - V.DUR_OFFSET for t, d, _ in ops.triples(events)), default=0)


def shifted(events: Sequence[int], dt: int) -> list[int]:
    return ops.translate(list(events), dt) if events else []


@dataclass(frozen=True)
class Stage:
    request: GenerationRequest
    shift: int  # output tick = request tick + shift
    keep_before: int | None = None  # request ticks; later events are redone by the next stage


class Plan:
    """One stage from ``request``; subclasses add stages or post-processing."""

    stages = 1

    def __init__(self, request: GenerationRequest, shift: int, length: float) -> None:
        self.request = request
        self.shift = shift
        self.length = length  # seconds of output material

    def stage(self, index: int, previous: list[list[int]], seed: int) -> Stage:
        return Stage(_seeded(self.request, seed), self.shift)

    def assemble(self, results: list[list[int]]) -> list[int]:
        """Output-time events from each stage's generated events (request ticks)."""
        return ops.sort(shifted(results[0], self.shift))


def _seeded(request: GenerationRequest, seed: int) -> GenerationRequest:
    return GenerationRequest(
        request.start_time,
        request.end_time,
        request.inputs,
        request.controls,
        request.mode,
        seed,
    )


def generate_plan(length: float) -> Plan:
    first = min(length, ONE_CONTEXT_S)
    return chained(Plan(GenerationRequest(0.0, first), 0, first), length)


def continue_plan(prompt: Sequence[int], prime: float, length: float) -> Plan:
    """Read the prompt's last ``prime`` seconds; the output starts at its last onset."""
    first = min(length, ONE_CONTEXT_S)
    last = ops.max_time(prompt)
    prime = min(prime, SPAN_LIMIT_S - first)
    origin = max(last - ticks(prime), 0)
    inputs = shifted(ops.clip(prompt, origin, last, clip_duration=False), -origin)
    start = (last - origin) / TPS
    plan = Plan(GenerationRequest(start, start + first, inputs), -(last - origin), first)
    return chained(plan, length)


def chained(first: Plan, length: float) -> Plan:
    """``first`` alone when it holds ``length`` seconds, else chained to that length."""
    return first if length <= first.length else ChainedPlan(first, length)


class ChainedPlan(Plan):
    """Music longer than one context: ``first``'s stage, then stages that each continue the
    output so far from its last ``CHAIN_PRIME_S`` seconds (as `continue` does), up to
    ``ONE_CONTEXT_S - CHAIN_PRIME_S`` more seconds each."""

    def __init__(self, first: Plan, length: float) -> None:
        self.first = first
        end, step = ticks(length), ticks(ONE_CONTEXT_S - CHAIN_PRIME_S)
        self.bounds = [0, ticks(first.length)]  # output ticks where each stage starts / ends
        while self.bounds[-1] < end:
            self.bounds.append(min(self.bounds[-1] + step, end))
        self.stages = len(self.bounds) - 1
        super().__init__(first.request, first.shift, length)

    def _origin(self, index: int) -> int:
        """Output tick of request tick 0 for stage ``index`` > 0 (its prime's start)."""
        return max(self.bounds[index] - ticks(CHAIN_PRIME_S), 0)

    def stage(self, index: int, previous: list[list[int]], seed: int) -> Stage:
        if index == 0:
            return self.first.stage(0, previous, seed)
        start, end, origin = self.bounds[index], self.bounds[index + 1], self._origin(index)
        so_far = self.assemble(previous)
        prompt = shifted(ops.clip(so_far, origin, start - 1, clip_duration=False), -origin)
        request = GenerationRequest(
            (start - origin) / TPS, (end - origin) / TPS, prompt, seed=seed + index * STAGE_SEED
        )
        return Stage(request, origin)

    def assemble(self, results: list[list[int]]) -> list[int]:
        events = self.first.assemble(results[:1]) if results else []
        for index, result in enumerate(results[1:], start=1):
            events += shifted(result, self._origin(index))
        return ops.sort(events)


class SpanPlan(Plan):
    """Fill [gap_start, gap_end) reading music before it and anticipating music after it."""

    def __init__(
        self,
        before: Sequence[int],
        after: Sequence[int],
        gap: tuple[int, int],
        prime: float,
        lookahead: float,
        *,
        relative: bool,
    ) -> None:
        gap_start, gap_end = gap
        span = (gap_end - gap_start) / TPS
        lookahead = min(lookahead, max(SPAN_LIMIT_S - span, 0.0))
        prime = min(prime, max(SPAN_LIMIT_S - span - lookahead, 0.0))
        origin = max(gap_start - ticks(prime), 0)
        prompt = ops.clip(before, origin, gap_start - 1, clip_duration=False)
        future = ops.clip(after, gap_end, gap_end + ticks(lookahead), clip_duration=False)
        inputs = ops.sort(shifted(prompt, -origin) + shifted(future, -origin))
        request = GenerationRequest((gap_start - origin) / TPS, (gap_end - origin) / TPS, inputs)
        self.gap = gap
        self.relative = relative
        shift = -(gap_start - origin) if relative else origin
        super().__init__(request, shift, span)

    def assemble(self, results: list[list[int]]) -> list[int]:
        events = super().assemble(results)
        end = self.gap[1] - (self.gap[0] if self.relative else 0)
        # nothing generated may ring into the music after the gap
        return ops.clip(events, 0, end, clip_duration=True)


def bridge_plan(
    a: Sequence[int],
    b: Sequence[int],
    length: float,
    prime: float,
    lookahead: float,
    context: MusicalContext,
) -> SpanPlan:
    """A ends at its last note's end rounded up to a bar line; B starts ``length`` later."""
    bar = ticks(bar_seconds(context))
    a_end = math.ceil(end_time(a) / bar) * bar if a else 0
    b_start = a_end + ticks(length)
    after = shifted(b, b_start) if b else []
    return SpanPlan(a, after, (a_end, b_start), prime, lookahead, relative=True)


def infill_plan(
    events: Sequence[int], start: float, end: float, prime: float, lookahead: float
) -> SpanPlan:
    gap = (ticks(start), ticks(end))
    return SpanPlan(events, events, gap, prime, lookahead, relative=False)


def accompany_plan(melody: Sequence[int], length: float | None) -> Plan:
    """The melody enters as input events: those after the start become anticipated controls."""
    if not melody:
        raise invalid("the melody has no notes", "melody_artifact")
    seconds = length if length is not None else min(end_time(melody) / TPS, ONE_CONTEXT_S)
    seconds = max(seconds, 0.5)
    inputs = ops.clip(melody, 0, ticks(seconds) - 1, clip_duration=False)
    return Plan(GenerationRequest(0.0, seconds, inputs), 0, seconds)


class LoopPlan(Plan):
    """Stage 1 writes N bars; stage 2 rewrites the tail with the loop's own opening as
    anticipated controls after the end, so the ending leads back into the beginning."""

    stages = 2

    def __init__(self, bars: int, context: MusicalContext) -> None:
        bar = bar_seconds(context)
        length = bars * bar
        if length > SPAN_LIMIT_S - 10:
            raise invalid(f"{bars} bars last {length:.1f} s, over the 85 s a loop can hold", "bars")
        self.end = ticks(length)
        self.tail = ticks(bar * max(1, bars // 4) if bars > 1 else bar / 2)
        self.head = min(ticks(5.0), self.end)
        super().__init__(GenerationRequest(0.0, length), 0, length)

    def stage(self, index: int, previous: list[list[int]], seed: int) -> Stage:
        cut = self.end - self.tail
        if index == 0:
            return Stage(_seeded(self.request, seed), 0, keep_before=cut)
        body = ops.clip(previous[0], 0, cut - 1, clip_duration=False)
        head = shifted(ops.clip(previous[0], 0, self.head, clip_duration=False), self.end)
        inputs = ops.sort(body + head)
        request = GenerationRequest(cut / TPS, self.end / TPS, inputs, seed=seed + STAGE_SEED)
        return Stage(request, 0)

    def assemble(self, results: list[list[int]]) -> list[int]:
        body = ops.clip(results[0], 0, self.end - self.tail - 1, clip_duration=False)
        tail = results[1] if len(results) > 1 else []
        return ops.clip(ops.sort(body + tail), 0, self.end - 1, clip_duration=True)
