"""The narrowed LM head: every plan (shared, union, separate) equals the full
product on each row's open ids, leaves every other id of the row -inf (or another row's
id of the same product), and a fresh buffer is all -inf again."""

from __future__ import annotations

import random

import pytest
import torch

from engines.amt import vocab as V
from engines.amt.head import OpenHead, head_plans
from engines.amt.masks import Ranges

WIDTH = 32


def instrument_ranges(instruments: list[int]) -> Ranges:
    """Note ids of some instruments, plus REST (what a capped note slot leaves open)."""
    ranges = [(V.NOTE_OFFSET + 128 * i, V.NOTE_OFFSET + 128 * (i + 1)) for i in instruments]
    return (*sorted(ranges), (V.REST, V.REST + 1))


def time_window(start: int) -> Ranges:
    return ((V.TIME_OFFSET + start, V.TIME_OFFSET + start + 20),)


@pytest.fixture(scope="module")
def head() -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(WIDTH, V.VOCAB_SIZE, bias=False)


def kinds(open_ids: list[Ranges]) -> set[str]:
    found = set()
    for rows, _plan in head_plans(open_ids):
        if len(rows) > 1 and len({open_ids[i] for i in rows}) > 1:
            found.add("union")
        else:
            found.add("shared")
    return found


CASES: dict[str, tuple[list[Ranges], str]] = {
    # four variations, each capped to its own 15 instruments: a product each
    "capped instrument sets": (
        [instrument_ranges(random.Random(k).sample(range(129), 15)) for k in range(4)],
        "shared",
    ),
    # nested instrument sets: one product over the union
    "nested instrument sets": (
        [instrument_ranges([0, 1, 2, 3]), instrument_ranges([0, 1, 2])],
        "union",
    ),
    # onset windows far apart (the benchmark harness): one product over gathered rows
    "onset windows apart": ([time_window(t) for t in (0, 300, 2000, 7000)], "union"),
    # open onsets from slightly different times on: one product over the union
    "onsets from nearby times": (
        [((V.TIME_OFFSET + t, V.DUR_OFFSET),) for t in (100, 110, 140)],
        "union",
    ),
    "same ranges": ([instrument_ranges([0, 40, 41])] * 3, "shared"),
    # one row capped, one not: a product each (stacking would pad to the long one)
    "capped beside uncapped": (
        [instrument_ranges([0, 1]), ((V.NOTE_OFFSET, V.REST + 1),)],
        "shared",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
@pytest.mark.parametrize("targets_order", ["in order", "shuffled"])
def test_open_logits_equal_the_full_product(
    head: torch.nn.Linear, name: str, targets_order: str
) -> None:
    open_ids, expected_kind = CASES[name]
    assert expected_kind in kinds(open_ids)
    rows = len(open_ids)
    hidden = torch.randn(rows, WIDTH)
    full = hidden @ head.weight.detach().T
    openhead = OpenHead(head, torch.device("cpu"))
    targets = list(range(rows))
    if targets_order == "shuffled":
        targets = targets[::-1]
    with torch.inference_mode():
        for _ in range(2):  # the second call reads kept gathered weights and a reused buffer
            out = openhead.fresh(rows)
            openhead.write(out, targets, hidden, open_ids)
            product_ids: dict[int, set[int]] = {i: set() for i in range(rows)}
            for members, plan in head_plans(open_ids):
                for i in members:  # a product gives all its rows all of its ids
                    for low, high in plan:
                        product_ids[i].update(range(low, high))
            for i, ranges in enumerate(open_ids):
                got = out[targets[i]]
                own = torch.zeros(V.VOCAB_SIZE, dtype=torch.bool)
                for low, high in ranges:
                    own[low:high] = True
                torch.testing.assert_close(got[own], full[i][own], atol=1e-5, rtol=1e-5)
                computed = torch.zeros(V.VOCAB_SIZE, dtype=torch.bool)
                computed[sorted(product_ids[i])] = True
                # ids outside the row's products are -inf; inside, finite and exact
                assert bool(torch.isneginf(got[~computed]).all())
                assert bool(torch.isfinite(got[computed]).all())


def test_fresh_buffer_is_all_minus_infinity_again(head: torch.nn.Linear) -> None:
    openhead = OpenHead(head, torch.device("cpu"))
    open_ids, _ = CASES["capped instrument sets"]
    with torch.inference_mode():
        out = openhead.fresh(4)
        openhead.write(out, [0, 1, 2, 3], torch.randn(4, WIDTH), open_ids)
        assert int(torch.isfinite(out).sum()) > 0
        again = openhead.fresh(4)
    assert bool(torch.isneginf(again).all())
