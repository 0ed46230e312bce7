"""Operations on arrival-time token sequences (flat lists of (time, duration, note) triples).

Every function takes a sequence of ints and returns new lists; nothing is modified in place.
Times are ticks (10 ms) unless a name says ``_seconds``. A triple is a *control* when its
note token is in the control block (>= CONTROL_OFFSET); all three of its tokens are then
shifted by CONTROL_OFFSET. Semantics, including the odd corners (REST counted as
instrument 129, ``min_time`` stopping at a SEPARATOR while ``max_time`` skips it), follow the
reference implementation because training data and the sampler depend on them.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator, Sequence
from typing import Protocol

from engines.amt import vocab as V
from engines.amt.errors import CodecError

Triple = tuple[int, int, int]


class SpanRng(Protocol):
    """The part of a numpy RNG the extractors use (``Generator`` and ``RandomState`` fit).

    Passing ``numpy.random.RandomState(0)`` reproduces the reference's legacy global RNG
    stream exactly; a ``numpy.random.Generator`` gives independent, modern draws.
    """

    def exponential(self, scale: float) -> float: ...

    def random(self) -> float: ...


def triples(tokens: Sequence[int]) -> Iterator[Triple]:
    """Iterate (time, duration, note) triples; rejects a ragged sequence."""
    if len(tokens) % V.EVENT_SIZE:
        raise CodecError(f"token count {len(tokens)} is not a multiple of 3")
    it = iter(tokens)
    return zip(it, it, it, strict=True)


def is_control(note: int) -> bool:
    """True for a control triple (its note token lies in the control block)."""
    return V.CONTROL_OFFSET <= note < V.SPECIAL_OFFSET


def event_time(time: int, note: int) -> int:
    """Tick of a triple's onset, whether it is an event or a control."""
    return time - (V.ATIME_OFFSET if note >= V.CONTROL_OFFSET else V.TIME_OFFSET)


def instrument_of(note: int) -> int:
    """Instrument of a note token (event or control); REST reads as instrument 129."""
    base = V.ANOTE_OFFSET if note >= V.CONTROL_OFFSET else V.NOTE_OFFSET
    return (note - base) // V.MAX_PITCH


def seconds_to_ticks(seconds: float) -> int:
    """Seconds -> ticks by truncation, as the reference converts clip bounds."""
    return int(V.TIME_RESOLUTION * seconds)


# ----------------------------------------------------------------------------------------
# selection
# ----------------------------------------------------------------------------------------


def clip(tokens: Sequence[int], start: int, end: int, *, clip_duration: bool = True) -> list[int]:
    """Keep triples with ``start <= onset <= end`` (ticks, both inclusive).

    With ``clip_duration`` a duration running past ``end`` is shortened to end there.
    """
    out: list[int] = []
    for time, dur, note in triples(tokens):
        onset = event_time(time, note)
        if onset < start or end < onset:
            continue
        if clip_duration:
            length = dur - (V.ADUR_OFFSET if note >= V.CONTROL_OFFSET else V.DUR_OFFSET)
            if end < onset + length:
                dur -= onset + length - end
        out.extend((time, dur, note))
    return out


def clip_seconds(
    tokens: Sequence[int], start: float, end: float, *, clip_duration: bool = True
) -> list[int]:
    """``clip`` with bounds in seconds (truncated to ticks)."""
    return clip(tokens, seconds_to_ticks(start), seconds_to_ticks(end), clip_duration=clip_duration)


def mask(tokens: Sequence[int], start: float, end: float) -> list[int]:
    """Drop triples whose onset in seconds lies strictly between ``start`` and ``end``."""
    out: list[int] = []
    for time, dur, note in triples(tokens):
        if start < event_time(time, note) / float(V.TIME_RESOLUTION) < end:
            continue
        out.extend((time, dur, note))
    return out


def delete(tokens: Sequence[int], criterion: Callable[[Triple], bool]) -> list[int]:
    """Drop the triples for which ``criterion`` is true."""
    out: list[int] = []
    for triple in triples(tokens):
        if not criterion(triple):
            out.extend(triple)
    return out


def sort(tokens: Sequence[int]) -> list[int]:
    """Stable sort of triples by their raw time token (events or controls, not both)."""
    groups = list(triples(tokens))
    out: list[int] = []
    for triple in sorted(groups, key=lambda t: t[0]):
        out.extend(triple)
    return out


def split(tokens: Sequence[int]) -> tuple[list[int], list[int]]:
    """Separate an interleaved sequence into (events, controls), each keeping its order."""
    events: list[int] = []
    controls: list[int] = []
    for time, dur, note in triples(tokens):
        (controls if note >= V.CONTROL_OFFSET else events).extend((time, dur, note))
    return events, controls


def combine(events: Sequence[int], controls: Sequence[int]) -> list[int]:
    """Controls turned back into events and merged with ``events`` in time order."""
    return sort([*events, *(tok - V.CONTROL_OFFSET for tok in controls)])


# ----------------------------------------------------------------------------------------
# padding and shifting
# ----------------------------------------------------------------------------------------


def pad(
    tokens: Sequence[int], end_time: int | None = None, density: int = V.TIME_RESOLUTION
) -> list[int]:
    """Insert REST triples so that no onset gap exceeds ``density`` ticks, up to ``end_time``.

    ``end_time`` of None *or 0* means the sequence's own max time (reference behaviour).
    Only plain events may be padded (before any interleaving or separators).
    """
    end = V.TIME_OFFSET + (end_time if end_time else max_time(tokens))
    out: list[int] = []
    previous = V.TIME_OFFSET
    for time, dur, note in triples(tokens):
        if note >= V.CONTROL_OFFSET:
            raise CodecError("pad() works on events only, before controls are interleaved")
        while time > previous + density:
            previous += density
            out.extend((previous, V.DUR_OFFSET, V.REST))
        out.extend((time, dur, note))
        previous = time
    while end > previous + density:
        previous += density
        out.extend((previous, V.DUR_OFFSET, V.REST))
    return out


def unpad(tokens: Sequence[int]) -> list[int]:
    """Remove REST triples."""
    return delete(tokens, lambda t: t[2] == V.REST)


def translate(tokens: Sequence[int], dt: int) -> list[int]:
    """Shift onsets by ``dt`` ticks up to the first SEPARATOR (later triples stay put)."""
    out: list[int] = []
    for time, dur, note in triples(tokens):
        if note == V.SEPARATOR:
            dt = 0
        elif event_time(time, note) + dt < 0:
            raise CodecError(f"translate by {dt} ticks makes an onset negative")
        out.extend((time + dt, dur, note))
    return out


# ----------------------------------------------------------------------------------------
# statistics
# ----------------------------------------------------------------------------------------


def min_time(tokens: Sequence[int], instr: int | None = None) -> int:
    """Earliest onset (ticks) of events and controls, stopping at the first SEPARATOR.

    0 when nothing qualifies. With ``instr`` only that instrument's triples count.
    """
    best: int | None = None
    for time, _dur, note in triples(tokens):
        if note == V.SEPARATOR:
            break
        if instr is not None and instrument_of(note) != instr:
            continue
        t = event_time(time, note)
        best = t if best is None else min(best, t)
    return 0 if best is None else best


def max_time(tokens: Sequence[int], instr: int | None = None) -> int:
    """Latest onset (ticks) of events and controls, skipping (not stopping at) SEPARATORs."""
    best = 0
    for time, _dur, note in triples(tokens):
        if note == V.SEPARATOR:
            continue
        if instr is not None and instrument_of(note) != instr:
            continue
        best = max(best, event_time(time, note))
    return best


def get_instruments(tokens: Sequence[int]) -> dict[int, int]:
    """Instrument -> number of triples, in order of first appearance (REST -> 129)."""
    counts: dict[int, int] = {}
    for _time, _dur, note in triples(tokens):
        if note >= V.SPECIAL_OFFSET:
            continue
        instr = instrument_of(note)
        counts[instr] = counts.get(instr, 0) + 1
    return counts


def sparsity(tokens: Sequence[int]) -> int:
    """Largest gap (ticks) between consecutive onsets, counting from time 0."""
    largest = 0
    previous = V.TIME_OFFSET
    for time, _dur, note in triples(tokens):
        if note == V.SEPARATOR:
            continue
        if note >= V.CONTROL_OFFSET:
            raise CodecError("sparsity() works on events only")
        largest = max(largest, time - previous)
        previous = time
    return largest


# ----------------------------------------------------------------------------------------
# controls
# ----------------------------------------------------------------------------------------


def _as_control(time: int, dur: int, note: int) -> Triple:
    return (V.CONTROL_OFFSET + time, V.CONTROL_OFFSET + dur, V.CONTROL_OFFSET + note)


def _check_plain(note: int) -> None:
    if note >= V.CONTROL_OFFSET or note == V.REST:
        raise CodecError("controls are extracted from plain events (no controls, RESTs)")


def extract_instruments(
    events: Sequence[int], instruments: Collection[int]
) -> tuple[list[int], list[int]]:
    """Turn every note of ``instruments`` into a control: returns (events, controls)."""
    keep: list[int] = []
    controls: list[int] = []
    wanted = {int(i) for i in instruments}
    for time, dur, note in triples(events):
        _check_plain(note)
        if instrument_of(note) in wanted:
            controls.extend(_as_control(time, dur, note))
        else:
            keep.extend((time, dur, note))
    return keep, controls


def extract_spans(events: Sequence[int], rate: float, rng: SpanRng) -> tuple[list[int], list[int]]:
    """Span augmentation: 5-s spans of controls after exponential gaps of mean 1/rate s."""
    keep: list[int] = []
    controls: list[int] = []
    in_span = True
    next_span = end_span = V.TIME_OFFSET
    for time, dur, note in triples(events):
        _check_plain(note)
        if in_span and time >= end_span:
            in_span = False
            next_span = time + int(V.TIME_RESOLUTION * rng.exponential(1.0 / rate))
        if not in_span and time >= next_span:
            in_span = True
            end_span = time + V.DELTA_TICKS
        if in_span:
            controls.extend(_as_control(time, dur, note))
        else:
            keep.extend((time, dur, note))
    return keep, controls


def extract_random(events: Sequence[int], rate: int, rng: SpanRng) -> tuple[list[int], list[int]]:
    """Random augmentation: each event becomes a control with probability rate/10."""
    keep: list[int] = []
    controls: list[int] = []
    for time, dur, note in triples(events):
        _check_plain(note)
        if rng.random() < rate / float(V.ANTICIPATION_RATES):
            controls.extend(_as_control(time, dur, note))
        else:
            keep.extend((time, dur, note))
    return keep, controls


def anticipate(
    events: Sequence[int], controls: Sequence[int], delta: int = V.DELTA_TICKS
) -> tuple[list[int], list[int]]:
    """Interleave time-ordered ``controls`` into ``events``, each ``delta`` ticks early.

    Before each event, every pending control with time <= (previous event onset + delta) is
    written; the previous onset starts at 0. Returns (interleaved tokens, unconsumed
    controls). Pad the events to the end time first if every control must be placed.
    """
    if not controls:
        return list(events), []
    out: list[int] = []
    pending = list(triples(controls))
    k = 0
    previous = 0
    for time, dur, note in triples(events):
        if note >= V.CONTROL_OFFSET:
            raise CodecError("anticipate() expects plain events and separate controls")
        while k < len(pending) and previous >= pending[k][0] - V.ATIME_OFFSET - delta:
            out.extend(pending[k])
            k += 1
        previous = time - V.TIME_OFFSET
        out.extend((time, dur, note))
    leftover = [tok for triple in pending[k:] for tok in triple]
    return out, leftover
