"""Batched KV-cached decoding: one forward pass for every active row.

All rows share one batched cache ``[B, heads, T, dim]`` per layer. Rows have different
lengths and may add different numbers of tokens in one step (a due control adds three),
so the cache is ragged: a bool ``valid [B, T]`` marks real slots, every other slot is a
hole that the attention mask hides. New tokens are right-aligned in the step's input
block (holes in front), so the last position is every row's last real token and only
that position's logits are computed. Each row gets its own position ids (its real
length), so a row's numbers do not depend on its holes.

A row that joins, or whose window changed in front (the sampler slid it), is prefilled
on its own and spliced into the batch; rows with identical windows (the variations of
one job at their start) share one prefill. A row that leaves is cut out. Holes are
squeezed out when they exceed a quarter of the cache.

For GPT-2 models the LM head is applied to the last position only and only to the ids
the row's slot can produce at all (times, durations or notes, plus REST): every other id
is blocked by the reference slot masks anyway, so it is returned as -inf. That cuts the
largest matrix product per token (width x 55,028) by 2x-50x depending on the slot, and
changes no sampled token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engines.amt import vocab as V
from engines.amt.errors import SamplerError

KV = list[tuple[torch.Tensor, torch.Tensor]]  # per layer (keys, values), [B, H, T, D]

MAX_EXTEND = 16  # more new tokens than this: prefill the row alone instead
# ids each slot can produce (slot = (window length - 1) % 3); REST is open in all three
SLOT_BLOCKS = (
    (V.TIME_OFFSET, V.TIME_OFFSET + V.MAX_TIME),
    (V.DUR_OFFSET, V.DUR_OFFSET + V.MAX_DUR),
    (V.NOTE_OFFSET, V.REST),
)


@dataclass
class _Held:
    ids: list[int]  # tokens in the cache for this row, in order


class BatchedCachedStep:
    """``ModelStep`` over a transformers causal LM (GPT-2) with one batched ragged cache."""

    def __init__(self, model: Any, *, context_size: int = V.CONTEXT_SIZE) -> None:
        from transformers import DynamicCache  # local: keeps torch-only imports light

        self._cache_cls = DynamicCache
        self.model = model
        self.context_size = context_size
        param = next(model.parameters())
        self.device = param.device
        self._order: list[int] = []  # row id at each batch index
        self._held: dict[int, _Held] = {}
        self._kv: KV = []
        self._valid = torch.zeros((0, 0), dtype=torch.bool, device=self.device)
        self.rebuilds = 0  # prefills (row joined or window slid), for tests and the benchmark
        self.tokens_fed = 0
        self.forwards = 0
        # GPT-2 layout: run the body, then the head for the open ids only
        self._split = hasattr(model, "transformer") and hasattr(model, "lm_head")

    # -- ModelStep ----------------------------------------------------------------------

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor:
        if len(windows) != len(rows):
            raise SamplerError("one row id per window is required")
        out: dict[int, torch.Tensor] = {}
        extend: dict[int, list[int]] = {}
        fresh: dict[tuple[int, ...], list[int]] = {}
        for window, row in zip(windows, rows, strict=True):
            if not window or len(window) > self.context_size:
                raise SamplerError(f"window of {len(window)} tokens does not fit the context")
            held = self._held.get(row)
            n = len(held.ids) if held is not None else 0
            fits = held is not None and n < len(window) and list(window[:n]) == held.ids
            if fits and len(window) - n <= MAX_EXTEND:
                extend[row] = list(window[n:])
            else:
                fresh.setdefault(tuple(window), []).append(row)
        with torch.no_grad():
            for window_ids, group in fresh.items():
                for row in group:
                    self.release(row)
                logits, kv = self._prefill(list(window_ids))
                for row in group:
                    self._insert(row, kv, list(window_ids))
                    out[row] = logits
            if extend:
                out.update(self._extend(extend))
        self._maybe_compact()
        return torch.stack([out[row] for row in rows])

    def release(self, row: int) -> None:
        if row not in self._held:
            return
        index = self._order.index(row)
        del self._held[row]
        self._order.pop(index)
        keep = torch.tensor(
            [i for i in range(len(self._order) + 1) if i != index],
            dtype=torch.long,
            device=self.device,
        )
        if not self._order:
            self._kv = []
            self._valid = torch.zeros((0, 0), dtype=torch.bool, device=self.device)
            return
        self._kv = [(k.index_select(0, keep), v.index_select(0, keep)) for k, v in self._kv]
        self._valid = self._valid.index_select(0, keep)

    @property
    def cache_length(self) -> int:
        return int(self._valid.shape[1])

    # -- pieces -------------------------------------------------------------------------

    def _forward(
        self,
        ids: torch.Tensor,
        positions: torch.Tensor,
        mask: torch.Tensor,
        kv: KV,
        slots: list[int],
    ) -> tuple[torch.Tensor, KV]:
        """Last-position logits [B, VOCAB] (float32) and the new cache."""
        past = self._cache_cls(ddp_cache_data=kv) if kv else self._cache_cls()
        inputs: dict[str, Any] = {
            "input_ids": ids,
            "past_key_values": past,
            "attention_mask": mask.long(),
            "position_ids": positions,
            "use_cache": True,
        }
        self.forwards += 1
        if self._split:
            out = self.model.transformer(**inputs)
            logits = self._head(out.last_hidden_state[:, -1, :], slots)
        else:
            out = self.model(**inputs, logits_to_keep=1)
            logits = out.logits[:, -1, :].float()
        new_kv = [(layer.keys, layer.values) for layer in out.past_key_values.layers]
        return logits, new_kv

    def _head(self, hidden: torch.Tensor, slots: list[int]) -> torch.Tensor:
        weight = self.model.lm_head.weight
        logits = torch.full(
            (hidden.shape[0], V.VOCAB_SIZE),
            float("-inf"),
            dtype=torch.float32,
            device=hidden.device,
        )
        for slot, (low, high) in enumerate(SLOT_BLOCKS):
            rows = [i for i, s in enumerate(slots) if s == slot]
            if not rows:
                continue
            index = torch.tensor(rows, device=hidden.device)
            h = hidden.index_select(0, index)
            logits[index, low:high] = (h @ weight[low:high].T).float()
            logits[index, V.REST] = (h @ weight[V.REST]).float()
        return logits

    def _prefill(self, window: list[int]) -> tuple[torch.Tensor, KV]:
        self.rebuilds += 1
        self.tokens_fed += len(window)
        ids = torch.tensor([window], dtype=torch.long, device=self.device)
        positions = torch.arange(len(window), device=self.device).unsqueeze(0)
        mask = torch.ones_like(ids, dtype=torch.bool)
        logits, kv = self._forward(ids, positions, mask, [], [(len(window) - 1) % 3])
        return logits[0], kv

    def _insert(self, row: int, kv: KV, window: list[int]) -> None:
        """Append a prefilled row ([1, H, L, D] per layer) to the batch, padding with holes."""
        length = len(window)
        if not self._order:
            self._kv = [(k.clone(), v.clone()) for k, v in kv]
            self._valid = torch.ones((1, length), dtype=torch.bool, device=self.device)
        else:
            total = max(self.cache_length, length)
            self._kv = [
                (
                    torch.cat([_left_pad(bk, total), _left_pad(k, total)]),
                    torch.cat([_left_pad(bv, total), _left_pad(v, total)]),
                )
                for (bk, bv), (k, v) in zip(self._kv, kv, strict=True)
            ]
            row_valid = torch.ones((1, length), dtype=torch.bool, device=self.device)
            self._valid = torch.cat(
                [_left_pad_mask(self._valid, total), _left_pad_mask(row_valid, total)]
            )
        self._order.append(row)
        self._held[row] = _Held(list(window))

    def _extend(self, extend: dict[int, list[int]]) -> dict[int, torch.Tensor]:
        """One forward for every cached row; rows not extended this step get one hole."""
        width = max(len(new) for new in extend.values())
        batch = len(self._order)
        ids = torch.zeros((batch, width), dtype=torch.long)
        positions = torch.zeros((batch, width), dtype=torch.long)
        new_valid = torch.zeros((batch, width), dtype=torch.bool)
        slots = [0] * batch
        for index, row in enumerate(self._order):
            new = extend.get(row)
            if not new:
                continue
            slots[index] = (len(self._held[row].ids) + len(new) - 1) % 3
            start = len(self._held[row].ids)
            ids[index, width - len(new) :] = torch.tensor(new)
            positions[index, width - len(new) :] = torch.arange(start, start + len(new))
            new_valid[index, width - len(new) :] = True
            self._held[row].ids.extend(new)
            self.tokens_fed += len(new)
        mask = torch.cat([self._valid, new_valid.to(self.device)], dim=1)
        logits, self._kv = self._forward(
            ids.to(self.device), positions.to(self.device), mask, self._kv, slots
        )
        self._valid = mask
        return {row: logits[i] for i, row in enumerate(self._order) if row in extend}

    def _maybe_compact(self) -> None:
        """Squeeze holes out once they are a quarter of the cache (rows stay right-aligned)."""
        if not self._order:
            return
        lengths = self._valid.sum(dim=1)
        longest = int(lengths.max())
        total = self.cache_length
        if total - longest <= max(total // 4, 8):
            return
        # per row: its valid slot indices, right-aligned in ``longest`` slots (hole in front)
        index = torch.zeros((len(self._order), longest), dtype=torch.long, device=self.device)
        valid = torch.zeros((len(self._order), longest), dtype=torch.bool, device=self.device)
        for i in range(len(self._order)):
            slots = torch.nonzero(self._valid[i], as_tuple=False).squeeze(1)
            index[i, longest - slots.numel() :] = slots
            valid[i, longest - slots.numel() :] = True
        self._kv = [(_gather(k, index), _gather(v, index)) for k, v in self._kv]
        self._valid = valid


def _left_pad(t: torch.Tensor, total: int) -> torch.Tensor:
    missing = total - t.shape[2]
    if missing == 0:
        return t
    pad = t.new_zeros((t.shape[0], t.shape[1], missing, t.shape[3]))
    return torch.cat([pad, t], dim=2)


def _left_pad_mask(t: torch.Tensor, total: int) -> torch.Tensor:
    missing = total - t.shape[1]
    if missing == 0:
        return t
    return torch.cat([t.new_zeros((t.shape[0], missing)), t], dim=1)


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Slots ``index [B, T']`` of ``t [B, H, T, D]`` along the time axis."""
    expanded = index[:, None, :, None].expand(t.shape[0], t.shape[1], index.shape[1], t.shape[3])
    return torch.gather(t, 2, expanded)
