"""Small AMT-shaped models for tests: a random GPT-2 and a biased test double.

``tiny_gpt2`` is random except for one hidden unit that makes time logits fall with the
time id, so sampling advances ~0.2 s per event instead of jumping to the end (random
weights alone would finish after one event). ``BiasedModel`` is a ``PreTrainedModel``
built like the fixtures' fake model (it reads the whole window, which it keeps in its KV
cache as raw ids) whose favourite note is always a forbidden one: an out-of-key pitch
on violin (40) or drums, so only exact masks keep the constraints. ``SilentModel`` wants
3-second silences instead: its onsets jump 300 ticks and every other note is a REST.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import numpy as np
import torch
from transformers import (
    DynamicCache,
    GPT2Config,
    GPT2LMHeadModel,
    PretrainedConfig,
    PreTrainedModel,
)
from transformers.modeling_outputs import CausalLMOutputWithPast

from engines.amt import vocab as V

# the output's cache field: `cache` from transformers 5.25, `past_key_values` before
OUTPUT_CACHE_FIELD = "cache" if "cache" in CausalLMOutputWithPast.__dataclass_fields__ else "past_key_values"

_IDS = np.arange(V.VOCAB_SIZE, dtype=np.float64)
FORBIDDEN_PITCHES = (61, 63, 66, 68, 70)  # black keys: outside C major / A minor
FORBIDDEN_INSTRUMENTS = (40, 128)


def tiny_gpt2(
    layers: int = 2, width: int = 64, heads: int = 2, seed: int = 1234
) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=V.VOCAB_SIZE,
        n_positions=V.CONTEXT_SIZE,
        n_layer=layers,
        n_embd=width,
        n_head=heads,
    )
    model = cast(GPT2LMHeadModel, cast(Any, GPT2LMHeadModel(config)).eval())
    with torch.no_grad():
        # unit 0 of the final layer norm is constant 1, so wte[:, 0] is a per-id logit bias
        model.transformer.ln_f.weight[0] = 0.0
        model.transformer.ln_f.bias[0] = 1.0
        model.transformer.wte.weight[: V.MAX_TIME, 0] = -0.05 * torch.arange(V.MAX_TIME)
        model.transformer.wte.weight[V.REST, 0] = -100.0
    return model


def save_tiny_gpt2(folder: Path) -> Path:
    tiny_gpt2().save_pretrained(folder)
    return folder


def biased_target(window: list[int]) -> int:
    n = len(window)
    slot = (n - 1) % 3
    h = sum((j + 1) * tok for j, tok in enumerate(window)) % 1_000_003
    if slot == 0:
        # onset of the last event (anticipated controls lie ahead; they do not move time)
        last = next((window[i] for i in range(n - 3, 0, -3) if window[i + 2] < V.CONTROL_OFFSET), 0)
        return min(last + 5 + h % 30, V.MAX_TIME - 1)
    if slot == 1:
        return V.DUR_OFFSET + 5 + h % 60
    instrument = FORBIDDEN_INSTRUMENTS[h % 2]
    pitch = FORBIDDEN_PITCHES[h % len(FORBIDDEN_PITCHES)] + 12 * (h % 3 - 1)
    return V.NOTE_OFFSET + V.MAX_PITCH * instrument + pitch


def silent_target(window: list[int]) -> int:
    n = len(window)
    slot = (n - 1) % 3
    if slot == 0:
        last = next((window[i] for i in range(n - 3, 0, -3) if window[i + 2] < V.CONTROL_OFFSET), 0)
        return min(last + 300, V.MAX_TIME - 1)
    if slot == 1:
        return V.DUR_OFFSET + 50
    return V.REST if (n // 3) % 2 else V.NOTE_OFFSET + 60  # REST, then a piano middle C


def biased_logits(window: list[int], target_of: Any = biased_target) -> torch.Tensor:
    target = target_of(window)
    # the nearest allowed id wins once masks remove the target
    distance = 2.0 * np.abs(_IDS - target) + (target > _IDS)
    return torch.from_numpy((-0.5 * distance).astype(np.float32))


class BiasedConfig(PretrainedConfig):  # type: ignore[no-untyped-call]
    model_type = "amt-biased-test"

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.vocab_size = V.VOCAB_SIZE


class BiasedModel(PreTrainedModel):  # type: ignore[no-untyped-call]
    config_class = BiasedConfig
    target = staticmethod(biased_target)  # the id it favours after a window

    def __init__(self, config: BiasedConfig | None = None) -> None:
        super().__init__(config or BiasedConfig())
        self.anchor = torch.nn.Parameter(torch.zeros(1))

    def forward(
        self,
        input_ids: torch.Tensor,
        past_key_values: Any = None,
        attention_mask: torch.Tensor | None = None,
        **_: Any,
    ) -> CausalLMOutputWithPast:
        cache = past_key_values if past_key_values is not None else DynamicCache()
        ids = input_ids.float()[:, None, :, None]
        keys, _values = cache.update(ids, ids, 0)
        held = keys[:, 0, :, 0].long()
        mask = (
            attention_mask.bool()
            if attention_mask is not None
            else torch.ones_like(held, dtype=torch.bool)
        )
        logits = torch.stack(
            [biased_logits(held[b][mask[b]].tolist(), self.target) for b in range(held.shape[0])]
        )
        fields: dict[str, Any] = {"logits": logits[:, None, :], OUTPUT_CACHE_FIELD: cache}
        return CausalLMOutputWithPast(**fields)


class SilentModel(BiasedModel):  # type: ignore[no-untyped-call]
    """Favours long silences: onsets 3 s apart, every other note a REST."""

    target = staticmethod(silent_target)
