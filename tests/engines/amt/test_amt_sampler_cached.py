"""The KV-cached step against a full recompute on a small random GPT-2, and batching."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import pytest
import torch
from amt_fixture_data import piece
from transformers import GPT2Config, GPT2LMHeadModel

from engines.amt import ops
from engines.amt import vocab as V
from engines.amt.batching import SLOT_RANGES, BatchedCachedStep
from engines.amt.masks import Constraints, Ranges
from engines.amt.sampler import (
    GenerationRequest,
    SamplingParams,
    generate,
    generate_batch,
    variations,
)
from engines.amt.steps import CachedStep, FullRecomputeStep, ModelStep

# random weights would stop after one event; the benchmark harness rule keeps them going
HARNESS = Constraints(block_rest=True, max_time_step=20)


@pytest.fixture(scope="module", params=["cpu", pytest.param("cuda", marks=pytest.mark.gpu)])
def model(request: pytest.FixtureRequest) -> GPT2LMHeadModel:
    """The same tests on the CPU and (opt-in, fp32) on a CUDA device."""
    torch.manual_seed(1234)
    config = GPT2Config(
        vocab_size=V.VOCAB_SIZE, n_positions=V.CONTEXT_SIZE, n_layer=2, n_embd=64, n_head=2
    )
    model: Any = GPT2LMHeadModel(config)
    return cast(GPT2LMHeadModel, model.eval().to(request.param))


class CheckingStep:
    """Runs a KV-cached step and a full recompute side by side and compares every step.

    Only ids the sampler can draw are compared: the batched step computes the others as
    -inf (its slot's block through ``__call__``, the sampler's exact ranges through
    ``narrowed``).
    """

    def __init__(self, model: GPT2LMHeadModel, cached: ModelStep | None = None) -> None:
        self.cached = cached if cached is not None else CachedStep(model)
        self.full = FullRecomputeStep(
            lambda ids: model(input_ids=ids, logits_to_keep=1).logits, model.device
        )
        self.steps = 0
        self.max_len = 0
        self.max_diff = 0.0

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor:
        got = self.cached(windows, rows)
        if isinstance(self.cached, BatchedCachedStep):
            opens = [SLOT_RANGES[(len(w) - 1) % 3] for w in windows]
            return self._check(windows, rows, got, opens)
        return self._check(windows, rows, got, None)

    def _check(
        self,
        windows: Sequence[Sequence[int]],
        rows: Sequence[int],
        got: torch.Tensor,
        opens: Sequence[Ranges] | None,
    ) -> torch.Tensor:
        want = self.full(windows, rows)
        if opens is not None:
            keep = torch.zeros_like(got, dtype=torch.bool)
            for i, ranges in enumerate(opens):
                for low, high in ranges:
                    keep[i, low:high] = True
            got, want = got.masked_fill(~keep, 0.0), want.masked_fill(~keep, 0.0)
        self.max_diff = max(self.max_diff, float((got - want).abs().max()))
        torch.testing.assert_close(got, want, atol=1e-4, rtol=0)
        self.steps += 1
        self.max_len = max(self.max_len, *(len(w) for w in windows))
        return got

    def release(self, row: int) -> None:
        self.cached.release(row)


class NarrowCheckingStep(CheckingStep):
    """The same through ``narrowed``, the path the decoder takes with a batched step."""

    def narrowed(
        self, windows: Sequence[Sequence[int]], rows: Sequence[int], open_ids: Sequence[Ranges]
    ) -> torch.Tensor:
        assert isinstance(self.cached, BatchedCachedStep)
        got = self.cached.narrowed(windows, rows, open_ids)
        return self._check(windows, rows, got, open_ids)


def _checking(model: GPT2LMHeadModel, kind: str) -> CheckingStep:
    if kind == "cached":
        return CheckingStep(model)
    if kind == "batched-hf":
        return CheckingStep(model, BatchedCachedStep(model, lean=False))
    step = BatchedCachedStep(model)
    assert step.lean is not None  # a stock GPT-2 takes the lean forward
    return (NarrowCheckingStep if kind == "lean-narrowed" else CheckingStep)(model, step)


STEPS = ["cached", "batched-hf", "lean", "lean-narrowed"]


def _long_prompt_request(seed: int = 0) -> GenerationRequest:
    events = piece("joplin_maple_leaf_rag")["events"][: 3 * 330]
    start = ops.max_time(events) / V.TIME_RESOLUTION
    return GenerationRequest(start_time=start, end_time=start + 2.5, inputs=events, seed=seed)


@pytest.mark.parametrize("kind", STEPS)
@pytest.mark.parametrize("window", ["chunked", "reference"])
def test_cached_logits_equal_full_recompute_across_a_slide(
    model: GPT2LMHeadModel, window: str, kind: str
) -> None:
    step = _checking(model, kind)
    params = SamplingParams(constraints=HARNESS, window=window)  # type: ignore[arg-type]
    out = generate(step, _long_prompt_request(), params)
    prompt_len = len(_long_prompt_request().inputs)
    assert len(out) > prompt_len + 3 * 15  # it really generated a few dozen events
    assert step.max_len >= V.CONTEXT_SIZE - 6  # the window filled up ...
    rebuilds = step.cached.rebuilds  # type: ignore[attr-defined]
    generated_tokens = (len(out) - prompt_len) // 3 * 3
    assert generated_tokens > V.CONTEXT_SIZE - 990  # ... and had to slide
    if window == "chunked":
        # one prefill, then one rebuild per slide of ~170 events, not one per event
        assert 2 <= rebuilds <= 3
    else:
        # the reference window slides every triple: the cache is rebuilt nearly every event
        assert rebuilds > 10


def test_cached_step_feeds_one_token_per_step_between_slides(model: GPT2LMHeadModel) -> None:
    step = CachedStep(model)
    events = 0

    def count(_row: int, _event: tuple[int, int, int]) -> None:
        nonlocal events
        events += 1

    req = GenerationRequest(start_time=0, end_time=6, seed=3)
    generate(step, req, SamplingParams(constraints=HARNESS), on_event=count)
    assert events > 20
    assert step.rebuilds == 1
    # prefill of the flag, then exactly one new token per sampled token
    assert step.tokens_fed == 3 * events + 1


def test_variations_batched_equal_alone(model: GPT2LMHeadModel) -> None:
    base = GenerationRequest(start_time=0, end_time=2, seed=10)
    params = SamplingParams(constraints=HARNESS, top_p=0.95, temperature=0.9)
    reqs = variations(base, 3)
    batched = generate_batch(CachedStep(model), reqs, params)
    alone = [generate(CachedStep(model), r, params) for r in reqs]
    assert batched == alone
    assert len({tuple(b) for b in batched[:3]}) == 3  # different seeds, different music
