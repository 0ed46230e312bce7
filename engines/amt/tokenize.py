"""Training-sequence builder following the AMT paper's recipe (reference ``tokenize``).

Per piece: filter (>= 100 events, 10 s .. 1 h, <= 16 instruments), then for each of
``augment_factor`` copies pick an augmentation by ``k % 10`` (0 none, 1 spans, 2..5 random
events, 6..9 instrument subsets), pad the events with RESTs to the piece end, interleave the
controls, prefix a SEPARATOR triple and append to one running stream that is cut into
1023-token chunks. Each chunk is shifted to start at time 0, dropped if a time overflows the
10000-tick vocabulary, and written behind a flag token (AUTOREGRESS or ANTICIPATE).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

from engines.amt import ops
from engines.amt import vocab as V
from engines.amt.codec import compound_to_events_with_stats

Rng = np.random.Generator | np.random.RandomState

SPAN_RATE = 0.05  # spans start after exponential gaps with mean 1/0.05 = 20 s
CHUNK = V.EVENT_SIZE * V.M  # 1023 tokens; the flag makes 1024


@dataclass
class TokenizeStats:
    """Counters reported by the builder, in the reference's tuple order."""

    sequences: int = 0
    rests: int = 0
    short: int = 0
    long: int = 0
    too_many_instruments: int = 0
    time_overflow: int = 0
    truncations: int = 0

    def as_tuple(self) -> tuple[int, int, int, int, int, int, int]:
        return (
            self.sequences,
            self.rests,
            self.short,
            self.long,
            self.too_many_instruments,
            self.time_overflow,
            self.truncations,
        )


@dataclass
class TokenizeResult:
    sequences: list[list[int]] = field(default_factory=list)
    stats: TokenizeStats = field(default_factory=TokenizeStats)


def filter_piece(compound: Sequence[int], stats: TokenizeStats) -> tuple[list[int], int] | None:
    """Events and truncation count of a usable piece, or None (and the skip counted)."""
    if len(compound) < V.COMPOUND_SIZE * V.MIN_TRACK_EVENTS:
        stats.short += 1
        return None
    events, truncations = compound_to_events_with_stats(compound)
    end_time = ops.max_time(events)
    if end_time < V.TIME_RESOLUTION * V.MIN_TRACK_TIME_IN_SECONDS:
        stats.short += 1
        return None
    if end_time > V.TIME_RESOLUTION * V.MAX_TRACK_TIME_IN_SECONDS:
        stats.long += 1
        return None
    if len(ops.get_instruments(events)) > V.MAX_TRACK_INSTR:
        stats.too_many_instruments += 1
        return None
    return events, truncations


def _randint(rng: Rng, low: int, high: int) -> int:
    """Uniform int in [low, high) from either numpy RNG flavour."""
    if isinstance(rng, np.random.RandomState):
        return int(rng.randint(low, high))
    return int(rng.integers(low, high))


def augment(
    events: Sequence[int], k: int, instruments: Sequence[int], rng: Rng
) -> tuple[list[int], list[int]]:
    """(events, controls) for augmentation copy ``k`` (its kind is ``k % 10``)."""
    kind = k % 10
    if kind == 0:
        return list(events), []
    if kind == 1:
        return ops.extract_spans(events, SPAN_RATE, rng)
    if kind < 6:
        rate = _randint(rng, 1, V.ANTICIPATION_RATES)
        return ops.extract_random(events, rate, rng)
    if len(instruments) > 1:
        # a non-empty proper subset of the instruments becomes controls
        size = 1 + _randint(rng, 0, len(instruments) - 1)
        subset = rng.choice(np.asarray(instruments), size, replace=False)
        return ops.extract_instruments(events, [int(i) for i in subset])
    return list(events), []


class SequenceBuilder:
    """The running token stream across pieces, cut into flagged 1024-token sequences."""

    def __init__(self) -> None:
        self.stream: list[int] = []
        self.flag = V.AUTOREGRESS
        self.result = TokenizeResult()

    def add(self, tokens: Sequence[int], augmented: bool) -> None:
        """Append one piece copy (already interleaved) and emit every full chunk."""
        copy_flag = V.ANTICIPATE if augmented else V.AUTOREGRESS
        # A sequence's flag describes the copy it starts in: the copy that was being
        # appended when the previous chunk was cut, or this one if the stream was empty.
        if not self.stream:
            self.flag = copy_flag
        self.stream.extend((V.SEPARATOR, V.SEPARATOR, V.SEPARATOR))
        self.stream.extend(tokens)
        while len(self.stream) >= CHUNK:
            seq, self.stream = self.stream[:CHUNK], self.stream[CHUNK:]
            seq = ops.translate(seq, -ops.min_time(seq))
            if ops.max_time(seq) >= V.MAX_TIME:
                # dropped; the flag is not advanced either (reference behaviour)
                self.result.stats.time_overflow += 1
                continue
            self.result.sequences.append([self.flag, *seq])
            self.flag = copy_flag
            self.result.stats.sequences += 1


def tokenize(
    compounds: Iterable[Sequence[int]], augment_factor: int = 1, rng: Rng | None = None
) -> TokenizeResult:
    """Build training sequences from compound token lists (one per MIDI file).

    ``rng`` defaults to ``numpy.random.RandomState(0)``, which replays the reference's
    legacy global RNG draws exactly; pass a ``numpy.random.Generator`` for fresh draws.
    """
    if augment_factor < 1:
        raise ValueError("augment_factor must be >= 1")
    rng = np.random.RandomState(0) if rng is None else rng
    builder = SequenceBuilder()
    stats = builder.result.stats
    for compound in compounds:
        piece = filter_piece(compound, stats)
        if piece is None:
            continue
        all_events, truncations = piece
        instruments = list(ops.get_instruments(all_events))
        end_time = ops.max_time(all_events)
        for k in range(augment_factor):
            events, controls = augment(all_events, k, instruments, rng)
            stats.truncations += truncations  # counted per copy, as the reference does
            padded = ops.pad(events, end_time)
            stats.rests += sum(1 for tok in padded[2::3] if tok == V.REST)
            tokens, leftover = ops.anticipate(padded, controls)
            if leftover:
                raise RuntimeError("padding to the piece end must place every control")
            builder.add(tokens, augmented=k % 10 != 0)
    return builder.result
