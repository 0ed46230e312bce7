"""Replay of every recorded reference ``generate``/``generate_ar`` case with the fake model."""

from __future__ import annotations

from typing import Any

import pytest
from amt_fixture_data import generate_cases
from fake_model import FakeModel

from engines.amt.sampler import GenerationRequest, SamplingParams, generate, generate_batch
from engines.amt.steps import FullRecomputeStep

# (fixture file, case) pairs; the test ids name both
PAIRS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (f, c) for f in generate_cases()["files"] for c in f["cases"]
]
CASES = [
    pytest.param(f, c, id=f"{f['file'].removesuffix('.mid')}-{c['case']}") for f, c in PAIRS
]
REFERENCE = SamplingParams(window="reference", finish_stopping_triple=True)


def _request(case: dict[str, Any], seed: int = 0) -> GenerationRequest:
    args, inputs = case["args"], case["inputs"]
    return GenerationRequest(
        start_time=args["start_time"],
        end_time=args["end_time"],
        inputs=inputs.get("inputs", []),
        controls=inputs.get("controls", []),
        mode="ar" if case["case"].startswith("accompany_ar") else "anticipate",
        seed=seed,
    )


def test_all_cases_present() -> None:
    assert len(CASES) == 15


@pytest.mark.parametrize(("fx", "case"), CASES)
def test_replay_exact(fx: dict[str, Any], case: dict[str, Any]) -> None:
    model = FakeModel()
    events: list[tuple[int, int, int]] = []
    out = generate(
        FullRecomputeStep(model), _request(case), REFERENCE, on_event=lambda _r, e: events.append(e)
    )
    assert out == case["output"]
    assert len(model.lengths) == case["model_calls"]
    assert model.lengths == case["call_input_lengths"]
    assert model.sha16 == case["call_input_sha16"]
    # one callback per generated event, in generation order
    assert len(events) == (case["model_calls"] - 3) // 3


def test_batch_of_all_cases_equals_each_alone() -> None:
    requests = [_request(c, seed=k) for k, (_f, c) in enumerate(PAIRS)]
    batched = generate_batch(FullRecomputeStep(FakeModel()), requests, REFERENCE)
    assert batched == [c["output"] for _f, c in PAIRS]


def test_stopping_early_skips_two_calls_and_keeps_the_output() -> None:
    _fx, case = PAIRS[0]
    model = FakeModel()
    out = generate(FullRecomputeStep(model), _request(case), SamplingParams())
    assert out == case["output"]
    assert len(model.lengths) == case["model_calls"] - 2


def test_cancel_is_checked_every_step() -> None:
    from engines.amt.errors import SamplingCancelled

    model = FakeModel()
    checks = 0

    def cancel() -> bool:
        nonlocal checks
        checks += 1
        return checks > 5

    with pytest.raises(SamplingCancelled):
        generate(FullRecomputeStep(model), GenerationRequest(0, 10), cancel=cancel)
    assert len(model.lengths) == 5
