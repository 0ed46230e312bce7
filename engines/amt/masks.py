"""Logit masks and the sampling transform of the AMT sampler.

``reference`` masks reproduce the reference sampler (AMT-FORMAT.md §2) bit for bit:
controls and special ids always blocked, the slot masks (with REST left open in every slot,
a reference quirk), no onset before the current time, and the 15-instrument cap. The
optional ``Constraints`` are extra exact masks on top (they only ever block more ids).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cache, lru_cache

import numpy as np
import numpy.typing as npt
import torch

from engines.amt import vocab as V

Logits = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
Ids = npt.NDArray[np.int64]
Ranges = tuple[tuple[int, int], ...]  # sorted, disjoint half-open id ranges

NEG_INF = float("-inf")
INSTRUMENT_CAP = 15  # 16 channels minus the reserved drum channel, as the reference counts


@cache
def slot_masks() -> Mask:
    """Bool [3, VOCAB]: True where the reference blocks an id in slot 0/1/2."""
    blocked = np.zeros((3, V.VOCAB_SIZE), dtype=np.bool_)
    blocked[:, V.CONTROL_OFFSET :] = True  # controls and SEPARATOR/flags, all slots
    time = slice(V.TIME_OFFSET, V.TIME_OFFSET + V.MAX_TIME)
    dur = slice(V.DUR_OFFSET, V.DUR_OFFSET + V.MAX_DUR)
    note = slice(V.NOTE_OFFSET, V.NOTE_OFFSET + V.MAX_NOTE)  # REST (27512) is not in it
    blocked[0, dur] = blocked[0, note] = True
    blocked[1, time] = blocked[1, note] = True
    blocked[2, time] = blocked[2, dur] = True
    return blocked


@dataclass(frozen=True)
class Constraints:
    """Extra exact masks applied after the reference ones.

    instruments: allowed General MIDI programs (0..127) for new notes; None = any.
    drums: allow drum notes (instrument 128).
    pitch_range: inclusive (low, high) MIDI pitch for pitched instruments (not drums).
    scale: allowed pitch classes (0 = C .. 11 = B) for pitched instruments; None = any.
    block_rest: never sample REST (27512) in any slot.
    max_time_step: limit onsets to [current time, current time + max_time_step) ticks
      (the benchmark harness rule that keeps random weights producing notes).
    """

    instruments: Collection[int] | None = None
    drums: bool = True
    pitch_range: tuple[int, int] | None = None
    scale: Collection[int] | None = None
    block_rest: bool = False
    max_time_step: int | None = None

    def __post_init__(self) -> None:
        if self.max_time_step is not None and self.max_time_step < 0:
            raise ValueError("max_time_step must be >= 0")

    def note_mask(self) -> Mask | None:
        """Bool [VOCAB] of extra note-slot blocks, or None when nothing extra is blocked."""
        if (
            self.instruments is None
            and self.drums
            and self.pitch_range is None
            and self.scale is None
            and not self.block_rest
        ):
            return None
        allowed = np.ones((V.MAX_INSTR, V.MAX_PITCH), dtype=np.bool_)
        if self.instruments is not None:
            keep = np.zeros(V.MAX_INSTR, dtype=np.bool_)
            for program in self.instruments:
                if not 0 <= program < V.DRUMS:
                    raise ValueError(f"instrument program {program} outside 0..127")
                keep[program] = True
            keep[V.DRUMS] = True  # drums are governed by the ``drums`` flag alone
            allowed &= keep[:, None]
        if not self.drums:
            allowed[V.DRUMS] = False
        pitched = allowed[: V.DRUMS]
        if self.pitch_range is not None:
            low, high = self.pitch_range
            pitches = np.arange(V.MAX_PITCH)
            pitched &= ((pitches >= low) & (pitches <= high))[None, :]
        if self.scale is not None:
            classes = np.zeros(12, dtype=np.bool_)
            for pc in self.scale:
                classes[pc % 12] = True
            pitched &= classes[np.arange(V.MAX_PITCH) % 12][None, :]
        blocked = np.zeros(V.VOCAB_SIZE, dtype=np.bool_)
        blocked[V.NOTE_OFFSET : V.NOTE_OFFSET + V.MAX_NOTE] = ~allowed.reshape(-1)
        if self.block_rest:
            blocked[V.REST] = True
        return blocked


def mask_logits(
    logits: Logits,
    slot: int,
    *,
    current_time: int,
    instruments: Collection[int],
    extra_note_mask: Mask | None = None,
    constraints: Constraints | None = None,
) -> Logits:
    """Masked float64 copy of one row's last-position logits [VOCAB].

    current_time: the time before which onsets are blocked, window-relative ticks.
    instruments: instruments of the whole history (events, controls, REST as 129).
    """
    out = np.where(slot_masks()[slot], NEG_INF, logits.astype(np.float64))
    if slot == 0:
        if current_time > 0:
            out[V.TIME_OFFSET : V.TIME_OFFSET + min(current_time, V.MAX_TIME)] = NEG_INF
        if constraints is not None:
            if constraints.max_time_step is not None:
                upper = max(current_time, 0) + constraints.max_time_step
                out[V.TIME_OFFSET + min(upper, V.MAX_TIME) : V.TIME_OFFSET + V.MAX_TIME] = NEG_INF
            if constraints.block_rest:
                out[V.REST] = NEG_INF
    elif slot == 1:
        if constraints is not None and constraints.block_rest:
            out[V.REST] = NEG_INF
    else:
        if len(instruments) >= INSTRUMENT_CAP:
            notes = out[V.NOTE_OFFSET : V.NOTE_OFFSET + V.MAX_NOTE].reshape(
                V.MAX_INSTR, V.MAX_PITCH
            )
            unseen = np.ones(V.MAX_INSTR, dtype=np.bool_)
            unseen[[i for i in instruments if 0 <= i < V.MAX_INSTR]] = False
            notes[unseen] = NEG_INF  # a view: writes through to ``out``
        if extra_note_mask is not None:
            out[extra_note_mask] = NEG_INF
    return out


def note_instruments(extra_note_mask: Mask | None) -> tuple[int, ...] | None:
    """Instruments with at least one note ``extra_note_mask`` leaves open (None: all)."""
    if extra_note_mask is None:
        return None
    notes = extra_note_mask[V.NOTE_OFFSET : V.NOTE_OFFSET + V.MAX_NOTE]
    closed = notes.reshape(V.MAX_INSTR, V.MAX_PITCH).all(axis=1)
    return tuple(int(i) for i in np.flatnonzero(~closed))


def open_ranges(
    slot: int,
    *,
    current_time: int,
    instruments: Collection[int],
    constraints: Constraints | None = None,
    allowed_instruments: Collection[int] | None = None,
) -> Ranges:
    """Id ranges holding exactly the ids ``mask_logits`` leaves open, before the extra note mask.

    Same arguments as ``mask_logits``; ``allowed_instruments`` (``note_instruments`` of the
    extra note mask) may drop whole instrument blocks the extra mask closes. In the note
    slot REST is always included: the extra note mask decides it (``open_logits``).
    """
    rest_blocked = constraints is not None and constraints.block_rest
    ranges: list[tuple[int, int]] = []
    if slot == 0:
        low = min(max(current_time, 0), V.MAX_TIME)
        high = V.MAX_TIME
        if constraints is not None and constraints.max_time_step is not None:
            high = min(max(current_time, 0) + constraints.max_time_step, V.MAX_TIME)
        if low < high:
            ranges.append((V.TIME_OFFSET + low, V.TIME_OFFSET + high))
    elif slot == 1:
        ranges.append((V.DUR_OFFSET, V.DUR_OFFSET + V.MAX_DUR))
    else:
        rest_blocked = False
        if len(instruments) >= INSTRUMENT_CAP:
            open_instr = {i for i in instruments if 0 <= i < V.MAX_INSTR}
        else:
            open_instr = set(range(V.MAX_INSTR))
        if allowed_instruments is not None:
            open_instr &= set(allowed_instruments)
        for instr in sorted(open_instr):
            low = V.NOTE_OFFSET + instr * V.MAX_PITCH
            if ranges and ranges[-1][1] == low:
                ranges[-1] = (ranges[-1][0], low + V.MAX_PITCH)
            else:
                ranges.append((low, low + V.MAX_PITCH))
    if not rest_blocked:
        if ranges and ranges[-1][1] == V.REST:
            ranges[-1] = (ranges[-1][0], V.REST + 1)
        else:
            ranges.append((V.REST, V.REST + 1))
    return tuple(ranges)


@lru_cache(maxsize=64)
def _range_ids(ranges: Ranges) -> Ids:
    ids: Ids = np.concatenate([np.arange(lo, hi, dtype=np.int64) for lo, hi in ranges])
    ids.flags.writeable = False
    return ids


def open_logits(
    logits: npt.NDArray[np.floating], ranges: Ranges, extra_note_mask: Mask | None = None
) -> tuple[Ids, Logits]:
    """The open ids (ascending) and their float64 logits, as ``mask_logits`` leaves them.

    ``ranges`` from ``open_ranges``; pass the extra note mask in the note slot only. Equal
    to ``flatnonzero(masked > -inf)`` and ``masked[...]`` of the full masked vector, at the
    cost of the open ids alone.
    """
    if not ranges:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float64)
    if len(ranges) == 1:
        lo, hi = ranges[0]
        ids: Ids = np.arange(lo, hi, dtype=np.int64)
        values: Logits = logits[lo:hi].astype(np.float64)
    else:
        ids = _range_ids(ranges)
        values = logits[ids].astype(np.float64)
    keep = values > NEG_INF
    if extra_note_mask is not None:
        keep &= ~extra_note_mask[ids]
    if not keep.all():
        ids, values = ids[keep], values[keep]
    return ids, values


NUCLEUS_CANDIDATES = 64  # first guess at the nucleus size (grown 8x while too small)


def nucleus_indices(values: Logits, top_p: float) -> Ids:
    """Positions (ascending) of the nucleus of ``values`` (finite logits): the highest
    values in the order of a stable descending sort, up to and including the first whose
    cumulative probability exceeds ``top_p`` (the HF rule the reference uses).

    The nucleus is usually a few dozen of 1k-16k open ids, so candidates are picked by a
    partition (linear) instead of sorting them all: everything at least as large as the
    k-th largest value, ties included, which is exactly the full sort's first entries.
    """
    n = values.size
    shifted = np.exp(values - values.max())
    total = shifted.sum()
    k = NUCLEUS_CANDIDATES
    while True:
        if k >= n:
            candidates: Ids = np.arange(n)
        else:
            kth = np.partition(values, n - k)[n - k]
            candidates = np.flatnonzero(values >= kth)
        order = candidates[np.argsort(-values[candidates], kind="stable")]
        cumulative = np.cumsum(shifted[order] / total)
        # keep up to and including the first id whose cumulative mass exceeds top_p
        keep = int(cumulative.searchsorted(top_p, side="right")) + 1
        if keep <= order.size or k >= n:
            chosen: Ids = np.sort(order[:keep])
            return chosen
        k *= 8


def _softmax(logits: Logits) -> Logits:
    shifted = np.exp(logits - logits.max())
    result: Logits = shifted / shifted.sum()
    return result


def sample(logits: Logits, *, top_p: float, temperature: float, generator: torch.Generator) -> int:
    """Temperature, nucleus, softmax, then one inverse-CDF draw from the row's generator.

    Exactly one uniform is drawn per token, so a row's random stream depends only on its
    own history. Only the open (finite) ids are sorted and summed: a slot mask leaves
    1k-16k of the 55k ids open, so this is several times cheaper than the full vector.
    """
    open_ids = np.flatnonzero(logits > NEG_INF)
    return sample_open(
        open_ids, logits[open_ids], top_p=top_p, temperature=temperature, generator=generator
    )


def sample_open(
    open_ids: Ids,
    values: Logits,
    *,
    top_p: float,
    temperature: float,
    generator: torch.Generator,
) -> int:
    """``sample`` given only the open ids (ascending) and their finite float64 logits."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if open_ids.size == 0:
        raise ValueError("every token is masked")
    if temperature != 1.0:
        values = values / temperature
    if top_p < 1.0:
        chosen = nucleus_indices(values, top_p)
        open_ids, values = open_ids[chosen], values[chosen]
    cdf = _softmax(values).cumsum()  # methods, not np.* wrappers: this runs per token
    u = float(torch.rand((), generator=generator, dtype=torch.float64))
    index = int(cdf.searchsorted(u * cdf[-1], side="right"))
    return int(open_ids[min(index, open_ids.size - 1)])
