"""The LM head applied to the ids a row can sample only, into a reused logits buffer.

A GPT-2 head is the largest matrix product per token (width x 55,028). The sampler
knows each row's open ids (its slot's block, onsets from the current time on, the seen
instruments once the instrument cap is reached, the harness's onset window), so only
those columns are computed; every other logit stays -inf, which is what the reference
masks would make of them anyway.

Rows are grouped into as few products as the ranges allow:

* rows with the same ranges share one product;
* rows of one slot with different ranges share one product over the union of their
  ranges when that costs about as much as one product per row (onset windows close in
  time, nested instrument sets);
* otherwise one product per range set. Products over many small ranges (instrument
  blocks) read gathered head rows, kept while they recur (a capped row's instruments
  stay the same for the rest of its generation). One batched product over per-row
  gathered stacks was measured slower here than a product per row: the cost is reading
  the head rows, which stacking does not reduce.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from engines.amt import vocab as V
from engines.amt.masks import Ranges

GAP = 64  # id gap bridged when rows of one slot share a head product
CALL_IDS = 1024  # a head product's fixed cost, in ids of one row
GATHERED = 8  # gathered head weights kept (instrument sets of live rows)

Plan = tuple[list[int], Ranges]  # batch indices, the id ranges of their one product


class OpenHead:
    """Logits of the open ids of each row, written into one reused ``[B, VOCAB]`` buffer.

    ``fresh(batch)`` hands out the buffer's first rows with every logit -inf again (only
    the columns the last call wrote are reset); ``write`` fills the open columns.
    """

    def __init__(self, head: torch.nn.Module, device: torch.device) -> None:
        self.head = head  # an nn.Linear without bias (GPT-2's tied lm_head)
        self.device = device
        self._out = torch.empty((0, V.VOCAB_SIZE), dtype=torch.float32, device=device)
        self._spans: list[tuple[int, int]] = []  # columns each buffer row last got
        self._gathered: OrderedDict[tuple[Any, ...], tuple[torch.Tensor, torch.Tensor]] = (
            OrderedDict()
        )

    def fresh(self, batch: int) -> torch.Tensor:
        """The buffer's first ``batch`` rows, all -inf."""
        if batch > self._out.shape[0]:
            self._out = torch.full(
                (max(batch, 2 * self._out.shape[0]), V.VOCAB_SIZE),
                float("-inf"),
                dtype=torch.float32,
                device=self.device,
            )
            self._spans = [(0, 0)] * self._out.shape[0]
        written = [(i, low, high) for i, (low, high) in enumerate(self._spans) if high > low]
        if written:
            # one fill over the rows and columns written last time (rows of a step mostly
            # share a slot, so their spans overlap): fewer calls than one per row
            rows = written[-1][0] + 1
            low = min(span[1] for span in written)
            high = max(span[2] for span in written)
            self._out[:rows, low:high] = float("-inf")
            self._spans[:rows] = [(0, 0)] * rows
        return self._out[:batch]

    def write_logits(self, out: torch.Tensor, targets: list[int], logits: torch.Tensor) -> None:
        """Whole logit rows (a model whose head is not split off) into ``out[targets]``."""
        out.index_copy_(0, torch.tensor(targets, device=out.device), logits.float())
        for target in targets:
            self._spans[target] = (0, V.VOCAB_SIZE)

    def write(
        self,
        out: torch.Tensor,
        targets: list[int],
        hidden: torch.Tensor,
        open_ids: Sequence[Ranges],
    ) -> None:
        """Logits of the last hidden states ``hidden[i]`` for ``open_ids[i]`` into
        ``out[targets[i]]`` (rows of one product may also get the others' ids)."""
        weight = self.head.weight
        if not isinstance(weight, torch.Tensor):
            raise TypeError("the model's lm_head has no weight matrix")
        for rows, plan in head_plans(open_ids):
            h = pick(hidden, rows)
            dest = [targets[i] for i in rows]
            self._product(out, dest, h, weight, plan)

    # -- products -------------------------------------------------------------------------

    def _product(
        self,
        out: torch.Tensor,
        dest: list[int],
        h: torch.Tensor,
        weight: torch.Tensor,
        ranges: Ranges,
    ) -> None:
        for target in dest:
            self._spans[target] = (ranges[0][0], ranges[-1][1])
        block: torch.Tensor | None = None  # a view of out when dest rows are consecutive
        index: torch.Tensor | None = None
        if consecutive(dest):
            block = out[dest[0] : dest[0] + len(dest)]
        else:
            index = torch.tensor(dest, device=out.device)
        if len(ranges) <= 3:
            for low, high in ranges:
                part = F.linear(h, weight[low:high]).float()
                if block is not None:
                    block[:, low:high] = part
                else:
                    out[index, low:high] = part
            return
        keep = block_of(ranges) == 2  # instrument blocks: the same every note step
        sub, cols = self._gather(weight, ranges, keep=keep)
        part = F.linear(h, sub).float()
        if block is not None:
            block.index_copy_(1, cols, part)
        else:
            assert index is not None
            out[index[:, None], cols[None, :]] = part

    def _gather(
        self, weight: torch.Tensor, ranges: Ranges, *, keep: bool
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Head rows of many small ranges and their ids; kept when ``keep`` (instrument
        blocks, which stay the same once the instrument cap is reached)."""
        key = (ranges, weight.data_ptr(), weight._version, weight.dtype, weight.device)
        hit = self._gathered.get(key)
        if hit is not None:
            self._gathered.move_to_end(key)
            return hit
        cols = torch.cat([torch.arange(low, high) for low, high in ranges]).to(weight.device)
        made = (weight.index_select(0, cols), cols)
        if not keep:
            return made
        self._gathered[key] = made
        while len(self._gathered) > GATHERED:
            self._gathered.popitem(last=False)
        return made


def head_plans(open_ids: Sequence[Ranges]) -> list[Plan]:
    """(batch indices, id ranges) per head product.

    Rows with the same ranges share one product; rows of one slot with different ranges
    (onset windows at different times, different instrument sets) share one over the
    union of their ranges when that costs about as much as one product per row.
    """
    same: dict[Ranges, list[int]] = {}
    for i, ranges in enumerate(open_ids):
        if ranges:
            same.setdefault(tuple(ranges), []).append(i)
    by_block: dict[int, list[Ranges]] = {}
    for ranges in same:
        by_block.setdefault(block_of(ranges), []).append(ranges)
    plans: list[Plan] = []
    for group in by_block.values():
        if len(group) == 1:
            plans.append((same[group[0]], group[0]))
            continue
        union = union_of(group)
        rows = sorted(i for ranges in group for i in same[ranges])
        separate = sum(size_of(r) * len(same[r]) + CALL_IDS for r in group)
        if len(rows) * size_of(union) <= separate:
            plans.append((rows, union))
        else:
            plans.extend((same[ranges], ranges) for ranges in group)
    return plans


def block_of(ranges: Ranges) -> int:
    """The slot block (0 times, 1 durations, 2 notes or REST alone) ranges start in."""
    first = ranges[0][0]
    return 0 if first < V.DUR_OFFSET else 1 if first < V.NOTE_OFFSET else 2


def size_of(ranges: Ranges) -> int:
    return sum(high - low for low, high in ranges)


def union_of(all_ranges: Sequence[Ranges]) -> Ranges:
    """Sorted union of id ranges; gaps of up to ``GAP`` ids are bridged (one product over
    a few extra ids is cheaper than another call)."""
    if len(all_ranges) == 1:
        return all_ranges[0]
    merged: list[tuple[int, int]] = []
    for low, high in sorted(r for ranges in all_ranges for r in ranges):
        if merged and low <= merged[-1][1] + GAP:
            merged[-1] = (merged[-1][0], max(merged[-1][1], high))
        else:
            merged.append((low, high))
    return tuple(merged)


def consecutive(indices: Sequence[int]) -> bool:
    return indices[-1] - indices[0] == len(indices) - 1 and list(indices) == sorted(indices)


def pick(t: torch.Tensor, rows: Sequence[int]) -> torch.Tensor:
    """Rows of ``t``: a view when they are consecutive (no index tensor, no copy)."""
    if consecutive(rows):
        return t[rows[0] : rows[0] + len(rows)]
    return t.index_select(0, torch.tensor(list(rows), device=t.device))
