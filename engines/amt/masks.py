"""Logit masks and the sampling transform of the AMT sampler.

``reference`` masks reproduce the reference sampler (AMT-FORMAT.md §2) bit for bit:
controls and special ids always blocked, the slot masks (with REST left open in every slot,
a reference quirk), no onset before the current time, and the 15-instrument cap. The
optional ``Constraints`` are extra exact masks on top (they only ever block more ids).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from functools import cache

import torch

from engines.amt import vocab as V

NEG_INF = float("-inf")
INSTRUMENT_CAP = 15  # 16 channels minus the reserved drum channel, as the reference counts


@cache
def slot_masks() -> torch.Tensor:
    """Bool [3, VOCAB]: True where the reference blocks an id in slot 0/1/2."""
    blocked = torch.zeros(3, V.VOCAB_SIZE, dtype=torch.bool)
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

    def note_mask(self) -> torch.Tensor | None:
        """Bool [VOCAB] of extra note-slot blocks, or None when nothing extra is blocked."""
        if (
            self.instruments is None
            and self.drums
            and self.pitch_range is None
            and self.scale is None
            and not self.block_rest
        ):
            return None
        allowed = torch.ones(V.MAX_INSTR, V.MAX_PITCH, dtype=torch.bool)
        if self.instruments is not None:
            keep = torch.zeros(V.MAX_INSTR, dtype=torch.bool)
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
            pitches = torch.arange(V.MAX_PITCH)
            pitched &= ((pitches >= low) & (pitches <= high))[None, :]
        if self.scale is not None:
            classes = torch.zeros(12, dtype=torch.bool)
            for pc in self.scale:
                classes[pc % 12] = True
            pitched &= classes[torch.arange(V.MAX_PITCH) % 12][None, :]
        blocked = torch.zeros(V.VOCAB_SIZE, dtype=torch.bool)
        blocked[V.NOTE_OFFSET : V.NOTE_OFFSET + V.MAX_NOTE] = ~allowed.reshape(-1)
        if self.block_rest:
            blocked[V.REST] = True
        return blocked


def mask_logits(
    logits: torch.Tensor,
    slot: int,
    *,
    current_time: int,
    instruments: Collection[int],
    extra_note_mask: torch.Tensor | None = None,
    constraints: Constraints | None = None,
) -> torch.Tensor:
    """Masked copy of one row's last-position logits [VOCAB].

    current_time: the time before which onsets are blocked, window-relative ticks.
    instruments: instruments of the whole history (events, controls, REST as 129).
    """
    out = logits.masked_fill(slot_masks()[slot].to(logits.device), NEG_INF)
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
            for instr in range(V.MAX_INSTR):
                if instr not in instruments:
                    start = V.NOTE_OFFSET + instr * V.MAX_PITCH
                    out[start : start + V.MAX_PITCH] = NEG_INF
        if extra_note_mask is not None:
            out = out.masked_fill(extra_note_mask.to(out.device), NEG_INF)
    return out


def nucleus(logits: torch.Tensor, top_p: float) -> torch.Tensor:
    """Keep the smallest set of ids whose probability mass reaches ``top_p`` (HF rule)."""
    if top_p >= 1.0:
        return logits
    sorted_logits, order = torch.sort(logits, descending=True)
    cumulative = torch.cumsum(torch.softmax(sorted_logits, dim=-1), dim=-1)
    remove = cumulative > top_p
    # shift right so the first id crossing the threshold is kept as well
    remove[1:] = remove[:-1].clone()
    remove[0] = False
    return logits.masked_fill(remove.scatter(0, order, remove), NEG_INF)


def sample(
    logits: torch.Tensor, *, top_p: float, temperature: float, generator: torch.Generator
) -> int:
    """Temperature, nucleus, softmax and one multinomial draw from the row's generator."""
    if temperature <= 0:
        raise ValueError("temperature must be > 0")
    if temperature != 1.0:
        logits = logits / temperature
    probs = torch.softmax(nucleus(logits, top_p).float(), dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator).item())
