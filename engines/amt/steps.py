"""Model steps: next-token logits for the last position of each row's current window.

The control loop (``sampler.py``) owns the windows (flag + relativised history + the part
of the triple sampled so far); a step only turns windows into logits. Rows carry stable
ids so a stateful step can keep per-row state (a KV cache) while rows join and leave.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import torch

from engines.amt import vocab as V
from engines.amt.errors import SamplerError
from engines.amt.hfcompat import cache_argument, returned_cache
from engines.amt.masks import Ranges


class ModelStep(Protocol):
    """Callable returning float logits [len(windows), VOCAB] for each window's last position."""

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor: ...

    def release(self, row: int) -> None:
        """Forget any state kept for ``row`` (it finished or was cancelled)."""


@runtime_checkable
class NarrowingStep(Protocol):
    """A ``ModelStep`` that can also compute only the ids each row may sample.

    ``open_ids[i]`` are sorted id ranges covering every id row i can sample this step
    (``masks.open_ranges``); the sampler reads nothing else, so logits outside them may be
    anything (-inf by convention). The result only has to stay valid until the next call.
    """

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor: ...

    def release(self, row: int) -> None: ...

    def narrowed(
        self, windows: Sequence[Sequence[int]], rows: Sequence[int], open_ids: Sequence[Ranges]
    ) -> torch.Tensor: ...


def _last_logits(output: Any) -> torch.Tensor:
    """Logits [VOCAB] of the last position from a model output or a logits tensor."""
    logits = output.logits if hasattr(output, "logits") else output
    if not isinstance(logits, torch.Tensor) or logits.shape[-1] != V.VOCAB_SIZE:
        raise SamplerError("model step must produce logits over the 55028-id vocabulary")
    return logits.reshape(-1, V.VOCAB_SIZE)[-1]


class FullRecomputeStep:
    """The reference's way: one full forward pass over the whole window per token, batch 1.

    ``model`` maps input ids [1, L] (long) to logits [1, L', VOCAB] (or an object with
    ``.logits``); only the last position is used. This is the replay path for the fake
    model of the fixtures and the benchmark's faithful reference.
    """

    def __init__(self, model: Callable[[torch.Tensor], Any], device: str | torch.device = "cpu"):
        self.model = model
        self.device = torch.device(device)

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor:
        out = []
        with torch.no_grad():
            for window in windows:
                ids = torch.tensor([list(window)], dtype=torch.long, device=self.device)
                out.append(_last_logits(self.model(ids)).float())
        return out[0].unsqueeze(0) if len(out) == 1 else torch.stack(out)

    def release(self, row: int) -> None:
        return None


@dataclass
class _RowCache:
    ids: list[int]
    past: Any  # transformers Cache holding exactly ``ids``


class CachedStep:
    """KV-cached steps over a transformers causal LM (``GPT2LMHeadModel``).

    Each row keeps its own cache and the ids it holds. A new window that extends those ids
    costs a forward pass over the new tokens only (with explicit position ids) and computes
    logits for the last position only. When the window changed in front (the loop slid it
    or re-based its times) the cache is cropped to the common prefix, or rebuilt from
    scratch when nothing is shared; the loop's windowing policy decides how rarely that is.
    Rows run one by one so a row's numbers never depend on which other rows are present.
    """

    def __init__(self, model: Any, *, context_size: int = V.CONTEXT_SIZE) -> None:
        from transformers import DynamicCache  # local: keeps torch-only imports light

        self._cache_cls = DynamicCache
        self.model = model
        self.context_size = context_size
        self.device = next(model.parameters()).device
        self._cache_kw = cache_argument(model.forward)
        self._rows: dict[int, _RowCache] = {}
        self.rebuilds = 0  # prefills and cut-backs (window slid), for tests and the benchmark
        self.tokens_fed = 0

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor:
        if len(windows) != len(rows):
            raise SamplerError("one row id per window is required")
        with torch.no_grad():
            out = [self._row(list(w), r) for w, r in zip(windows, rows, strict=True)]
        return out[0].unsqueeze(0) if len(out) == 1 else torch.stack(out)

    def release(self, row: int) -> None:
        self._rows.pop(row, None)

    def _row(self, window: list[int], row: int) -> torch.Tensor:
        if not window or len(window) > self.context_size:
            raise SamplerError(f"window of {len(window)} tokens does not fit the context")
        state = self._rows.get(row)
        shared = 0
        if state is not None:
            limit = min(len(state.ids), len(window) - 1)  # always feed >= 1 token
            while shared < limit and state.ids[shared] == window[shared]:
                shared += 1
        if state is None or shared < len(state.ids):
            self.rebuilds += 1  # the cache could not simply be extended
        if state is None or shared == 0:
            state = _RowCache(ids=[], past=self._cache_cls())
            self._rows[row] = state
        elif shared < len(state.ids):
            state.past.crop(shared - len(state.ids))  # negative: drop that many tokens
            del state.ids[shared:]
        new = window[shared:]
        ids = torch.tensor([new], dtype=torch.long, device=self.device)
        positions = torch.arange(shared, len(window), device=self.device).unsqueeze(0)
        out = self.model(
            input_ids=ids,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=1,
            **{self._cache_kw: state.past},
        )
        state.past = returned_cache(out)
        state.ids.extend(new)
        self.tokens_fed += len(new)
        return _last_logits(out.logits).float()
