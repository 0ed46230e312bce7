"""Embeddings: a pooled hidden state of the model over a piece's opening context.

The piece is tokenised as the model saw training data: AUTOREGRESS flag, then the events
relativised to their first onset, cut to one context (1023 tokens, and onsets within the
100-s time range); ``truncated`` says whether anything was cut.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from engines.amt import ops
from engines.amt import vocab as V


@dataclass(frozen=True)
class Embedding:
    vector: list[float]
    layer: int  # the resolved layer index (0 = token + position embeddings)
    tokens: int
    truncated: bool
    pool: str

    @property
    def dimension(self) -> int:
        return len(self.vector)

    def summary(self) -> dict[str, Any]:
        return {
            "dimension": self.dimension,
            "layer": self.layer,
            "tokens": self.tokens,
            "truncated": self.truncated,
            "pool": self.pool,
        }

    def to_json(self) -> bytes:
        return json.dumps({**self.summary(), "vector": self.vector}).encode()

    def to_npy(self) -> bytes:
        out = io.BytesIO()
        np.save(out, np.asarray(self.vector, dtype=np.float32))
        return out.getvalue()


def context_tokens(events: list[int]) -> tuple[list[int], bool]:
    """Flag + relativised events fitting one context; and whether the piece was cut."""
    origin = ops.min_time(events)
    fitting = ops.clip(events, origin, origin + V.MAX_TIME - 1, clip_duration=False)
    body = ops.translate(fitting, -origin) if fitting else []
    limit = (V.CONTEXT_SIZE - 1) // 3 * 3
    truncated = len(body) > limit or len(fitting) < len(events)
    return [V.AUTOREGRESS, *body[:limit]], truncated


def embed(model: Any, events: list[int], layer: int, pool: Literal["mean", "last"]) -> Embedding:
    """Hidden state ``layer`` (-1 = last) pooled over the positions (mean or last)."""
    import torch

    tokens, truncated = context_tokens(events)
    device = next(model.parameters()).device
    ids = torch.tensor([tokens], dtype=torch.long, device=device)
    with torch.no_grad():
        out = model(input_ids=ids, output_hidden_states=True, logits_to_keep=1)
    states = out.hidden_states
    index = layer if layer >= 0 else len(states) - 1
    if index >= len(states):
        raise ValueError(f"the model has layers 0..{len(states) - 1}; layer {layer} is not one")
    hidden = states[index][0].float()
    pooled = hidden.mean(dim=0) if pool == "mean" else hidden[-1]
    vector = [float(x) for x in pooled.cpu().tolist()]
    return Embedding(vector, index, len(tokens), truncated, pool)
