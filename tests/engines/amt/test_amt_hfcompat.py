"""Both names of the KV cache in transformers: the argument a forward takes and the
field its output carries; the installed version's stock GPT-2 is driven without its
deprecation warning."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from amt_models import BiasedModel, tiny_gpt2

from engines.amt.batching import BatchedCachedStep
from engines.amt.hfcompat import cache_argument, returned_cache
from engines.amt.steps import CachedStep


def takes_new(input_ids: Any, cache: Any = None, **kwargs: Any) -> None: ...


def takes_old(input_ids: Any, past_key_values: Any = None) -> None: ...


def takes_anything(*args: Any, **kwargs: Any) -> None: ...


@pytest.mark.parametrize(
    ("forward", "name"),
    [(takes_new, "cache"), (takes_old, "past_key_values"), (takes_anything, "past_key_values"),
     (len, "past_key_values")],
)
def test_cache_argument_follows_the_signature(forward: Callable[..., Any], name: str) -> None:
    assert cache_argument(forward) == name


def test_returned_cache_reads_either_field() -> None:
    marker = object()
    assert returned_cache(SimpleNamespace(cache=marker)) is marker
    assert returned_cache(SimpleNamespace(past_key_values=marker)) is marker
    assert returned_cache(SimpleNamespace(cache=None, past_key_values=marker)) is marker


def test_a_custom_forward_keeps_its_own_argument_name() -> None:
    assert cache_argument(BiasedModel().forward) == "past_key_values"


@pytest.mark.parametrize("make", [lambda m: CachedStep(m), lambda m: BatchedCachedStep(m, lean=False)])
def test_stock_gpt2_is_driven_without_deprecation_warnings(make: Callable[[Any], Any]) -> None:
    model = tiny_gpt2()
    step = make(model)
    window = [0, 10_000, 11_000, 5, 10_010]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a renamed argument warns (FutureWarning)
        first = step([window], [0])
        second = step([[*window, 20]], [0])
    assert first.shape == second.shape and torch.isfinite(first).any() and torch.isfinite(second).any()
    assert step.tokens_fed == len(window) + 1  # the second call extended the cache
