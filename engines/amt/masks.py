"""Logit masks of the AMT sampler, and the id ranges they leave open.

``reference`` masks reproduce the reference sampler (AMT-FORMAT.md §2) bit for bit:
controls and special ids always blocked, the slot masks (with REST left open in every slot,
a reference quirk), no onset before the current time, and the 15-instrument cap. The
optional ``Constraints`` are extra exact masks on top (they only ever block more ids).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cache
from typing import Any

import numpy as np
import numpy.typing as npt

from engines.amt import vocab as V

Logits = npt.NDArray[np.float64]
Mask = npt.NDArray[np.bool_]
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
    logits: npt.NDArray[np.floating[Any]],
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
