"""Slot-restricted language-model loss.

Token ``t >= 1`` of a sequence is a time (``(t-1) % 3 == 0``), duration (1) or note (2), so
the hidden state at position ``p`` predicts a token of slot ``p % 3``. Instead of the full
55,028-way softmax at every position, the final hidden states are computed once and each
slot's positions get logits only for that slot's ids (a slice of the tied embedding
matrix): ~10k time ids, ~1k durations, ~16.5k notes. That is the ~3x CPU saving, and it
matches inference, where the sampler masks every other block anyway.

A target outside its slot's id set (a control token when controls are not predicted) is
ignored. With every id of a slot included, the loss equals the full softmax cross-entropy
renormalised over the slot's ids.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from engines.amt import vocab as V

IGNORE = -100
SLOT_NAMES = ("time", "duration", "note")


def slot_ids(
    slot: int, predict_controls: bool = False, instruments: Iterable[int] | None = None
) -> list[int]:
    """Sorted vocabulary ids a token of ``slot`` may take."""
    if slot == 0:
        ranges = [range(V.TIME_OFFSET, V.TIME_OFFSET + V.MAX_TIME)]
    elif slot == 1:
        ranges = [range(V.DUR_OFFSET, V.DUR_OFFSET + V.MAX_DUR)]
    elif slot == 2:
        if instruments is None:
            ranges = [range(V.NOTE_OFFSET, V.NOTE_OFFSET + V.MAX_NOTE)]
        else:
            ranges = [
                range(V.NOTE_OFFSET + V.MAX_PITCH * i, V.NOTE_OFFSET + V.MAX_PITCH * (i + 1))
                for i in sorted(set(instruments))
            ]
        ranges.append(range(V.REST, V.REST + 1))
    else:
        raise ValueError(f"slot must be 0, 1 or 2, got {slot}")
    ids = [i for r in ranges for i in r]
    if predict_controls:
        ids += [i + V.CONTROL_OFFSET for i in ids if i != V.REST]
    ids.append(V.SEPARATOR)  # a separator triple fills all three slots
    return sorted(ids)


@dataclass
class SlotTables:
    """Per slot: the ids (LongTensor) and a vocabulary -> local index lookup (-100 = none)."""

    ids: list[torch.Tensor]
    lookup: list[torch.Tensor]

    @classmethod
    def build(
        cls,
        predict_controls: bool = False,
        instruments: Iterable[int] | None = None,
        device: torch.device | str = "cpu",
    ) -> SlotTables:
        inst = None if instruments is None else list(instruments)
        ids, lookup = [], []
        for slot in range(3):
            slot_list = torch.tensor(slot_ids(slot, predict_controls, inst), dtype=torch.long)
            table = torch.full((V.VOCAB_SIZE,), IGNORE, dtype=torch.long)
            table[slot_list] = torch.arange(len(slot_list))
            ids.append(slot_list.to(device))
            lookup.append(table.to(device))
        return cls(ids, lookup)

    def to(self, device: torch.device | str) -> SlotTables:
        return SlotTables([t.to(device) for t in self.ids], [t.to(device) for t in self.lookup])


@dataclass
class LossParts:
    """Summed NLL and target count per slot (sum / count = mean token NLL)."""

    nll: torch.Tensor  # (3,) summed NLL per slot, differentiable
    count: torch.Tensor  # (3,) number of targets per slot

    def mean(self) -> torch.Tensor:
        return self.nll.sum() / self.count.sum().clamp(min=1)


def onset_floor(input_ids: torch.Tensor) -> torch.Tensor:
    """(B, number of triples): the earliest onset (time id) the sampler allows for each
    triple's time token, i.e. the latest event onset before it ("no onset in the past",
    AMT-FORMAT.md section 2); 0 at a sequence start and after a separator, where times
    restart. Controls do not move it."""
    times = input_ids[:, 1::3]
    notes = input_ids[:, 3::3]
    n = min(times.shape[1], notes.shape[1])
    times, notes = times[:, :n], notes[:, :n]
    event = (times < V.TIME_OFFSET + V.MAX_TIME) & (notes < V.CONTROL_OFFSET)
    separator = notes == V.SEPARATOR
    # segment = separators seen before this triple; cummax of (segment, onset + 1) keys
    # gives the latest onset within the segment (keys of earlier segments sort below)
    segment = torch.cumsum(separator.long(), dim=1) - separator.long()
    big = V.MAX_TIME + 2
    key = segment * big + torch.where(event & ~separator, times - V.TIME_OFFSET + 1, 0)
    running = torch.cummax(key, dim=1).values - segment * big  # onset + 1, or <= 0 if none
    before = torch.cat([torch.zeros_like(running[:, :1]), running[:, :-1]], dim=1)
    # a separator's own triple and the one after it start from 0
    after_sep = torch.cat([torch.zeros_like(separator[:, :1]), separator[:, :-1]], dim=1)
    floor = torch.where(after_sep | separator, 0, (before - 1).clamp(min=0))
    return floor


def slot_loss(
    hidden: torch.Tensor,
    input_ids: torch.Tensor,
    weight: torch.Tensor,
    tables: SlotTables,
    *,
    onsets_not_in_past: bool = False,
) -> LossParts:
    """Loss of predicting ``input_ids[:, 1:]`` from ``hidden[:, :-1]`` within each slot.

    ``hidden``: final hidden states (B, T, D) (after the last layer norm); ``weight``: the
    output embedding matrix (V, D). ``onsets_not_in_past``: the time slot's softmax covers
    only onsets at or after the previous event's, the distribution the sampler draws from
    (targets never violate it: events are time-ordered).
    """
    nll, count = [], []
    for slot in range(3):
        h = hidden[:, slot : hidden.shape[1] - 1 : 3]  # positions predicting this slot
        targets = input_ids[:, slot + 1 :: 3][:, : h.shape[1]]
        local = tables.lookup[slot][targets]
        logits = h @ weight.index_select(0, tables.ids[slot]).T
        if slot == 0 and onsets_not_in_past:
            logits = _mask_past(logits, onset_floor(input_ids)[:, : h.shape[1]], tables)
        loss = F.cross_entropy(
            logits.reshape(-1, logits.shape[-1]).float(),
            local.reshape(-1),
            ignore_index=IGNORE,
            reduction="sum",
        )
        nll.append(loss)
        count.append((local != IGNORE).sum())
    return LossParts(torch.stack(nll), torch.stack(count))


def _mask_past(logits: torch.Tensor, floor: torch.Tensor, tables: SlotTables) -> torch.Tensor:
    """-inf for time ids before ``floor`` (per position); the slot's other ids untouched."""
    ids = tables.ids[0]
    is_time = ids < V.TIME_OFFSET + V.MAX_TIME
    past = is_time[None, None, :] & (ids[None, None, :] - V.TIME_OFFSET < floor[..., None])
    return logits.masked_fill(past, float("-inf"))


def full_loss(logits: torch.Tensor, input_ids: torch.Tensor) -> LossParts:
    """Plain next-token cross-entropy over the whole vocabulary, split by slot for reporting."""
    nll, count = [], []
    for slot in range(3):
        lg = logits[:, slot : logits.shape[1] - 1 : 3]
        targets = input_ids[:, slot + 1 :: 3][:, : lg.shape[1]]
        loss = F.cross_entropy(
            lg.reshape(-1, lg.shape[-1]).float(), targets.reshape(-1), reduction="sum"
        )
        nll.append(loss)
        count.append(torch.tensor(targets.numel(), device=logits.device))
    return LossParts(torch.stack(nll), torch.stack(count))
