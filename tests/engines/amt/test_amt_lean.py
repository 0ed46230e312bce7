"""The lean GPT-2 forward against the HF model, and the fallback where it does not apply."""

from __future__ import annotations

import random
from typing import Any, cast

import pytest
import torch
from transformers import GPT2Config, GPT2LMHeadModel

from engines.amt import vocab as V
from engines.amt.batching import SLOT_RANGES, BatchedCachedStep
from engines.amt.lean import LeanGPT2


def _model(seed: int = 7, **overrides: Any) -> GPT2LMHeadModel:
    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=V.VOCAB_SIZE,
        n_positions=V.CONTEXT_SIZE,
        n_layer=2,
        n_embd=32,
        n_head=4,
        **overrides,
    )
    return cast(GPT2LMHeadModel, cast(Any, GPT2LMHeadModel(config)).eval())


class _Subclass(GPT2LMHeadModel):  # type: ignore[no-untyped-call]
    """A model whose forward may differ from the stock one: never run lean."""


def _hooked(model: GPT2LMHeadModel) -> GPT2LMHeadModel:
    model.transformer.h[0].register_forward_hook(lambda _m, _i, out: out)
    return model


def _windows() -> list[tuple[list[int], list[int]]]:
    rng = random.Random(3)
    a = [rng.randrange(V.VOCAB_SIZE) for _ in range(40)]
    b = [rng.randrange(V.VOCAB_SIZE) for _ in range(40)]
    c = [rng.randrange(V.VOCAB_SIZE) for _ in range(40)]
    return [
        (a[:10], b[:5]),  # both prefilled
        (a[:11], b[:8]),  # 1 and 3 new tokens: holes, a causal block
        (a[:12], b[:9]),
        (a[:20], b[:10]),  # 8 new tokens beside 1
        (a[:21], c[:30]),  # row 1 changed in front: prefilled again, longer than the cache
        (a[:22], c[:31]),
    ]


def check_logits(step: BatchedCachedStep, model: GPT2LMHeadModel) -> None:
    for wa, wb in _windows():
        got = step([wa, wb], [0, 1])
        with torch.no_grad():
            for i, window in enumerate((wa, wb)):
                want = model(input_ids=torch.tensor([window])).logits[0, -1]
                for low, high in SLOT_RANGES[(len(window) - 1) % 3]:
                    torch.testing.assert_close(got[i, low:high], want[low:high], atol=1e-4, rtol=0)


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"activation_function": "relu"},
        {"activation_function": "gelu"},
        {"activation_function": "gelu_pytorch_tanh"},
        {"scale_attn_by_inverse_layer_idx": True},
        {"scale_attn_weights": False},
        {"n_inner": 48},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_lean_step_equals_the_hf_model(overrides: dict[str, Any]) -> None:
    model = _model(**overrides)
    step = BatchedCachedStep(model)
    assert step.lean is not None
    check_logits(step, model)


@pytest.mark.parametrize(
    "model",
    [
        pytest.param(lambda: _model(reorder_and_upcast_attn=True), id="upcast-attention"),
        pytest.param(lambda: _model(activation_function="quick_gelu"), id="other-activation"),
        pytest.param(lambda: cast(Any, _Subclass(_model().config)).eval(), id="subclass"),
        pytest.param(lambda: _hooked(_model()), id="forward-hook"),
    ],
)
def test_models_the_lean_forward_does_not_know_take_the_hf_forward(model: Any) -> None:
    built = model()
    assert not LeanGPT2.supports(built)
    step = BatchedCachedStep(built)
    assert step.lean is None
    check_logits(step, built)


def test_a_left_row_is_replaced_by_the_last_and_the_cache_keeps_its_buffers() -> None:
    model = _model()
    step = BatchedCachedStep(model)
    rng = random.Random(5)
    windows = [[rng.randrange(V.VOCAB_SIZE) for _ in range(6 + i)] for i in range(3)]
    step(windows, [0, 1, 2])
    buffers = [k.data_ptr() for k in step._cache.keys]
    step.release(0)  # row 2 moves into slot 0
    for _ in range(3):
        windows = [[*w, rng.randrange(V.VOCAB_SIZE)] for w in windows]
        got = step(windows[1:], [1, 2])
        with torch.no_grad():
            for i, window in enumerate(windows[1:]):
                want = model(input_ids=torch.tensor([window])).logits[0, -1]
                low, high = SLOT_RANGES[(len(window) - 1) % 3][0]
                torch.testing.assert_close(got[i, low:high], want[low:high], atol=1e-4, rtol=0)
    assert [k.data_ptr() for k in step._cache.keys] == buffers


def test_a_model_in_training_mode_takes_the_hf_forward(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _model(resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0)
    step = BatchedCachedStep(model)
    model.train()  # dropout would be on: only the HF forward applies it

    def refuse(*_args: Any, **_kwargs: Any) -> torch.Tensor:
        raise AssertionError("lean forward used in training mode")

    monkeypatch.setattr(LeanGPT2, "forward", refuse)
    check_logits(step, model)
