"""Batched KV-cached decoding: one forward pass for every active row.

All rows share one batched cache ``[B, heads, T, dim]`` per layer. Rows have different
lengths and may add different numbers of tokens in one step (a due control adds three),
so the cache is ragged: a bool ``valid [B, T]`` marks real slots, every other slot is a
hole that the attention mask hides. New tokens are right-aligned in the step's input
block (holes in front), so the last position is every row's last real token and only
that position's logits are computed. Each row gets its own position ids (its real
length), so a row's numbers do not depend on its holes.

A row that joins, or whose window changed in front (the sampler slid it), is prefilled
on its own and added after the step's batched forward, ending where the other rows end
(rows in lockstep stay hole-free); rows with identical windows (the variations of one job
at their start) share one prefill. A row that leaves is cut out. Holes are squeezed out
when they exceed a quarter of the cache.

The cache lives in preallocated buffers with spare room in both batch and time: new keys
and values are written in place, a leaving row is replaced by the last one, and the
buffers double when full. No per-token ``torch.cat`` of the cache, and few allocations
(fresh memory is expensive on a busy machine).

For a stock GPT-2 (``LeanGPT2.supports``) the forward is ``engines.amt.lean``: the same
weights and arithmetic without the HF model's per-call overhead, and no attention mask
at all while no row has holes (one row, or rows in lockstep). Any other causal LM goes
through its own ``forward`` with a ``DynamicCache`` over the buffers.

The LM head is applied to the last position only and only to the ids a row can produce:
by default its slot's block (times, durations or notes) plus REST, every other id being
blocked by the reference slot masks anyway; ``narrowed`` takes exact id ranges from the
sampler instead (onsets from the current time on, the seen instruments once the
instrument cap is reached, the harness's onset window). That cuts the largest matrix
product per token (width x 55,028) by 3x-2,000x and changes no sampled token.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from engines.amt import vocab as V
from engines.amt.errors import SamplerError
from engines.amt.head import OpenHead, pick
from engines.amt.hfcompat import cache_argument, returned_cache
from engines.amt.lean import LeanGPT2
from engines.amt.masks import Ranges

MAX_EXTEND = 16  # more new tokens than this: prefill the row alone instead
SLACK = 64  # cache time capacity comes in multiples of this
FIRST_CAPACITY = 640  # time slots of a new cache (~20 s of music at ~11 events/s)
_REST = (V.REST, V.REST + 1)
# ids each slot can produce (slot = (window length - 1) % 3); REST is open in all three
SLOT_BLOCKS = (
    (V.TIME_OFFSET, V.TIME_OFFSET + V.MAX_TIME),
    (V.DUR_OFFSET, V.DUR_OFFSET + V.MAX_DUR),
    (V.NOTE_OFFSET, V.REST),
)
SLOT_RANGES: tuple[Ranges, ...] = tuple((block, _REST) for block in SLOT_BLOCKS)


@dataclass
class _Held:
    ids: list[int]  # tokens in the cache for this row, in order


class _Cache:
    """Keys and values ``[rows, H, capacity, D]`` per layer; rows ``[:batch]`` and slots
    ``[:length]`` are in use, ``valid`` marks their real tokens. Hole slots in use hold
    finite numbers (zeros or a dummy token's), slots past ``length`` anything."""

    def __init__(self, device: torch.device, limit: int) -> None:
        self.limit = limit  # time capacity doubles up to this (more only if needed)
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.valid = torch.zeros((0, 0), dtype=torch.bool, device=device)
        self.batch = 0
        self.length = 0

    def layers(self, end: int) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Views of the rows in use (all slots, or the first ``end``)."""
        b = self.batch
        if b == self.valid.shape[0] and end == self.valid.shape[1]:
            return self.keys, self.values
        return [k[:b, :, :end] for k in self.keys], [v[:b, :, :end] for v in self.values]

    def reserve(self, batch: int, length: int, like: Sequence[torch.Tensor]) -> None:
        """Room for ``batch`` rows of ``length`` slots (buffers double when they grow)."""
        rows, capacity = self.valid.shape
        if batch <= rows and length <= capacity:
            return
        rows = max(batch, 2 * rows if batch > rows else rows)
        if length > capacity:
            # start at FIRST_CAPACITY: a 10-20 s piece then never regrows (each regrowth
            # copies every row's keys and values, which showed up at ~3 ms a buffer)
            capacity = max(length, min(max(2 * capacity, FIRST_CAPACITY), self.limit))
        capacity = -(-capacity // SLACK) * SLACK
        b, t = self.batch, self.length

        def grown(old: torch.Tensor | None, piece: torch.Tensor) -> torch.Tensor:
            buf = piece.new_empty((rows, piece.shape[1], capacity, piece.shape[3]))
            if old is not None and b:
                buf[:b, :, :t] = old[:b, :, :t]
            return buf

        olds: list[torch.Tensor | None] = list(self.keys) or [None] * len(like)
        self.keys = [grown(o, p) for o, p in zip(olds, like, strict=True)]
        olds = list(self.values) or [None] * len(like)
        self.values = [grown(o, p) for o, p in zip(olds, like, strict=True)]
        valid = torch.zeros((rows, capacity), dtype=torch.bool, device=self.valid.device)
        valid[:b, :t] = self.valid[:b, :t]
        self.valid = valid

    def add(self, keys: Sequence[torch.Tensor], values: Sequence[torch.Tensor], n: int) -> None:
        """Append ``n`` rows holding one prefilled window (``[1, H, L, D]`` per layer),
        ending at the cache's last slot (holes in front); older rows get holes after
        their tokens when the window is longer than the cache."""
        size = keys[0].shape[2]
        b, t = self.batch, self.length
        total = max(t, size)
        self.reserve(b + n, total, keys)
        for bufs, pieces in ((self.keys, keys), (self.values, values)):
            for buf, piece in zip(bufs, pieces, strict=True):
                if b and total > t:
                    buf[:b, :, t:total].zero_()
                buf[b : b + n, :, : total - size].zero_()
                buf[b : b + n, :, total - size : total] = piece[0]
        if b and total > t:
            self.valid[:b, t:total] = False
        self.valid[b : b + n, : total - size] = False
        self.valid[b : b + n, total - size : total] = True
        self.batch, self.length = b + n, total

    def remove(self, index: int) -> None:
        """Drop row ``index``; the last row moves into its place."""
        last = self.batch - 1
        t = self.length
        if index != last:
            for buf in (*self.keys, *self.values):
                buf[index, :, :t] = buf[last, :, :t]
            self.valid[index, :t] = self.valid[last, :t]
        self.batch = last
        if not last:
            self.length = 0

    def compact(self, lengths: Sequence[int]) -> None:
        """Squeeze the holes out: each row's real slots, right-aligned in the longest."""
        b, t = self.batch, self.length
        longest = max(lengths)
        device = self.valid.device
        index = torch.zeros((b, longest), dtype=torch.long, device=device)
        valid = torch.zeros((b, longest), dtype=torch.bool, device=device)
        for i in range(b):
            slots = torch.nonzero(self.valid[i, :t], as_tuple=False).squeeze(1)
            index[i, longest - slots.numel() :] = slots
            valid[i, longest - slots.numel() :] = True
        for buf in (*self.keys, *self.values):
            buf[:b, :, :longest] = _gather(buf[:b, :, :t], index)
        self.valid[:b, :longest] = valid
        self.length = longest


class BatchedCachedStep:
    """``ModelStep`` over a transformers causal LM (GPT-2) with one batched ragged cache.

    lean: use the lean GPT-2 forward where the model allows it (False: always the HF one).
    """

    def __init__(
        self, model: Any, *, context_size: int = V.CONTEXT_SIZE, lean: bool = True
    ) -> None:
        from transformers import DynamicCache  # local: keeps torch-only imports light

        self._cache_cls = DynamicCache
        self.model = model
        self.context_size = context_size
        param = next(model.parameters())
        self.device = param.device
        self.lean = LeanGPT2(model) if lean and LeanGPT2.supports(model) else None
        self._order: list[int] = []  # row id at each batch index
        self._held: dict[int, _Held] = {}
        # holes stay under a quarter of the slots (plus one step's block) between compactions
        self._cache = _Cache(self.device, context_size * 4 // 3 + MAX_EXTEND + SLACK)
        # the logits buffer reused by every call, filled for the open ids only
        self._head = OpenHead(getattr(model, "lm_head", torch.nn.Identity()), self.device)
        self.rebuilds = 0  # prefills (row joined or window slid), for tests and the benchmark
        self.tokens_fed = 0
        self.forwards = 0
        # GPT-2 layout: run the body, then the head for the open ids only
        self._split = hasattr(model, "transformer") and hasattr(model, "lm_head")
        self._cache_kw = cache_argument(model.transformer.forward if self._split else model.forward)

    # -- ModelStep ----------------------------------------------------------------------

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor:
        opens = [SLOT_RANGES[(len(w) - 1) % 3] for w in windows]
        return self.narrowed(windows, rows, opens).clone()

    def narrowed(
        self, windows: Sequence[Sequence[int]], rows: Sequence[int], open_ids: Sequence[Ranges]
    ) -> torch.Tensor:
        """Float32 logits ``[len(rows), VOCAB]`` computed for ``open_ids[i]`` only (sorted
        id ranges covering every id row i may sample); ids outside are -inf, except that
        rows of one slot may get the ids of the others' ranges too.

        The result is a view of a buffer that the next call overwrites: use it (or copy
        it) before calling again.
        """
        if not len(windows) == len(rows) == len(open_ids):
            raise SamplerError("one row id per window is required")
        opens = dict(zip(rows, open_ids, strict=True))
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
        position = {row: i for i, row in enumerate(rows)}
        with torch.inference_mode():
            out = self._head.fresh(len(rows))
            for group in fresh.values():
                for row in group:
                    self._release(row)
            if extend:
                self._extend(extend, opens, out, position)
            # prefilled rows join after the batched forward, so they end where others end
            for window_ids, group in fresh.items():
                last, keys, values = self._prefill(list(window_ids))
                self._write(
                    out,
                    [position[row] for row in group],
                    last.expand(len(group), -1),
                    [opens[row] for row in group],
                )
                self._cache.add(keys, values, len(group))
                for row in group:
                    self._order.append(row)
                    self._held[row] = _Held(list(window_ids))
            self._maybe_compact()
        return out

    def release(self, row: int) -> None:
        with torch.inference_mode():
            self._release(row)

    @property
    def cache_length(self) -> int:
        return self._cache.length

    # -- pieces -------------------------------------------------------------------------

    def _lean(self) -> LeanGPT2 | None:
        """The lean forward, unless the model is in training mode (dropout: HF forward)."""
        return None if self.model.training else self.lean

    def _release(self, row: int) -> None:
        if row not in self._held:
            return
        index = self._order.index(row)
        del self._held[row]
        self._cache.remove(index)
        last = self._order.pop()
        if last != row:
            self._order[index] = last

    def _hf_forward(
        self, ids: torch.Tensor, positions: torch.Tensor, mask: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """The model's own forward over the cache's first ``start`` slots: last-position
        hidden state (GPT-2) or logits, and the keys and values of the whole input."""
        if start:
            keys, values = self._cache.layers(start)
            past = self._cache_cls(ddp_cache_data=list(zip(keys, values, strict=True)))
        else:
            past = self._cache_cls()
        inputs: dict[str, Any] = {
            "input_ids": ids,
            self._cache_kw: past,
            "attention_mask": mask.long(),
            "position_ids": positions,
            "use_cache": True,
        }
        if self._split:
            out = self.model.transformer(**inputs)
            last = out.last_hidden_state[:, -1, :]
        else:
            out = self.model(**inputs, logits_to_keep=1)
            last = out.logits[:, -1, :]
        layers = returned_cache(out).layers
        return last, [layer.keys for layer in layers], [layer.values for layer in layers]

    def _write(
        self,
        out: torch.Tensor,
        targets: list[int],
        last: torch.Tensor,
        open_ids: Sequence[Ranges],
    ) -> None:
        """Logits of last hidden states (GPT-2) or the model's logits into ``out[targets]``."""
        if self._split:
            self._head.write(out, targets, last, open_ids)
        else:
            self._head.write_logits(out, targets, last)

    def _prefill(
        self, window: list[int]
    ) -> tuple[torch.Tensor, list[torch.Tensor], list[torch.Tensor]]:
        """Last hidden state (or logits) of a lone window, and its keys and values."""
        self.rebuilds += 1
        self.tokens_fed += len(window)
        self.forwards += 1
        ids = torch.tensor([window], dtype=torch.long, device=self.device)
        positions = torch.arange(len(window), device=self.device).unsqueeze(0)
        lean = self._lean()
        if lean is not None:
            keys, values = lean.new_cache(1, len(window))
            last = lean.forward(ids, positions, keys, values, 0, None, causal=True)
            return last, keys, values
        return self._hf_forward(ids, positions, torch.ones_like(ids, dtype=torch.bool), 0)

    def _extend(
        self,
        extend: dict[int, list[int]],
        opens: dict[int, Ranges],
        out: torch.Tensor,
        position: dict[int, int],
    ) -> None:
        """One forward for every cached row; rows not extended this step get holes."""
        cache = self._cache
        width = max(len(new) for new in extend.values())
        batch = len(self._order)
        start = cache.length
        end = start + width
        ids_rows: list[list[int]] = []
        position_rows: list[list[int]] = []
        real: list[int] = []  # new real tokens per row (right-aligned)
        holes = False
        picked: list[int] = []  # batch indices of the extended rows
        for index, row in enumerate(self._order):
            new = extend.get(row, [])
            held = self._held[row].ids
            pad = [0] * (width - len(new))
            ids_rows.append(pad + new)
            position_rows.append(pad + list(range(len(held), len(held) + len(new))))
            real.append(len(new))
            if new:
                held.extend(new)
                self.tokens_fed += len(new)
                picked.append(index)
            holes = holes or len(held) != end
        self.forwards += 1
        ids = torch.tensor(ids_rows, dtype=torch.long).to(self.device)
        positions = torch.tensor(position_rows, dtype=torch.long).to(self.device)
        cache.reserve(batch, end, cache.keys)
        if holes:
            new_valid = torch.arange(width) >= torch.tensor([[width - n] for n in real])
            cache.valid[:batch, start:end] = new_valid.to(self.device)
        else:
            cache.valid[:batch, start:end] = True
        lean = self._lean()
        if lean is not None:
            keys, values = cache.layers(cache.valid.shape[1])
            mask = self._mask(start, width) if holes or width > 1 else None
            last = lean.forward(ids, positions, keys, values, start, mask)
        else:
            mask = cache.valid[:batch, :end]
            last, keys, values = self._hf_forward(ids, positions, mask, start)
            for bufs, new_kv in ((cache.keys, keys), (cache.values, values)):
                for buf, piece in zip(bufs, new_kv, strict=True):
                    buf[:batch, :, start:end] = piece[:, :, start:end]
        cache.length = end
        if len(picked) < batch:
            last = pick(last, picked)
        rows = [self._order[i] for i in picked]
        self._write(out, [position[row] for row in rows], last, [opens[row] for row in rows])

    def _mask(self, start: int, width: int) -> torch.Tensor:
        """Bool attention mask [B, 1, width, start + width]: valid slots, causal in the block."""
        end = start + width
        valid = self._cache.valid[: self._cache.batch, :end]
        if width == 1:
            return valid[:, None, None, :]
        causal = torch.ones((width, end), dtype=torch.bool, device=self.device)
        causal[:, start:] = torch.tril(causal[:, start:])
        return valid[:, None, None, :] & causal[None, None]

    def _maybe_compact(self) -> None:
        """Squeeze holes out once they are a quarter of the cache."""
        if not self._order:
            return
        lengths = [len(self._held[row].ids) for row in self._order]
        total = self._cache.length
        if total - max(lengths) > max(total // 4, 8):
            self._cache.compact(lengths)


def _gather(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Slots ``index [B, T']`` of ``t [B, H, T, D]`` along the time axis."""
    expanded = index[:, None, :, None].expand(t.shape[0], t.shape[1], index.shape[1], t.shape[3])
    return torch.gather(t, 2, expanded)
