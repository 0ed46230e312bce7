"""Drawing tokens: the batched draw against a plain one-row oracle over the masked vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from mask_cases import mask_case

from engines.amt import vocab as V
from engines.amt.draw import RowDraw, draw_rows, nucleus_indices, range_ids
from engines.amt.errors import SamplerError

EVERYTHING = ((0, V.VOCAB_SIZE),)


def full_sort_nucleus(values: np.ndarray, top_p: float) -> np.ndarray:
    """The HF rule written plainly: sort everything, cut after the mass passes top_p."""
    order = np.argsort(-values, kind="stable")
    probs = np.exp(values[order] - values.max())
    cumulative = np.cumsum(probs / probs.sum())
    remove = cumulative > top_p
    remove[1:] = remove[:-1].copy()  # the first id crossing the threshold is kept
    remove[0] = False
    return np.sort(order[~remove])


def oracle(masked: np.ndarray, top_p: float, temperature: float, u: float) -> int:
    """One token from a whole masked float64 vector, written plainly: the open ids,
    temperature, the fully sorted nucleus, then the first id whose cumulative mass
    exceeds u times the total."""
    ids = np.flatnonzero(masked > -np.inf)
    values = masked[ids]
    if temperature != 1.0:
        values = values / temperature
    if top_p < 1.0:
        chosen = full_sort_nucleus(values, top_p)
        ids, values = ids[chosen], values[chosen]
    cdf = np.exp(values - values.max()).cumsum()
    return int(ids[min(int(cdf.searchsorted(u * cdf[-1], side="right")), ids.size - 1)])


def test_one_hot_is_argmax_and_top_p_cuts_the_tail() -> None:
    g = torch.Generator().manual_seed(0)
    logits = np.full((1, V.VOCAB_SIZE), -1e9, dtype=np.float32)
    logits[0, 123] = 0.0
    assert {draw_rows(logits, [RowDraw(EVERYTHING, g)])[0] for _ in range(5)} == {123}
    logits = np.full((1, V.VOCAB_SIZE), -np.inf, dtype=np.float32)
    logits[0, [10, 11, 12]] = [np.log(0.7), np.log(0.2), np.log(0.1)]
    narrow = RowDraw(EVERYTHING, g, top_p=0.6)
    assert {draw_rows(logits, [narrow])[0] for _ in range(50)} == {10}
    wider = RowDraw(EVERYTHING, g, top_p=0.85)
    assert {draw_rows(logits, [wider])[0] for _ in range(200)} == {10, 11}


def _case(seed: int) -> tuple[np.ndarray, np.ndarray, RowDraw]:
    """Random logits, the reference-masked vector, and the row's draw over its ranges."""
    case = mask_case(seed, times=(0, 37, 5000), counts=(3, 15))
    rng = np.random.default_rng(seed + 1000)
    top_p = float(rng.choice([1.0, 0.9, 0.3]))
    temperature = float(rng.choice([1.0, 0.7, 1.5]))
    generator = torch.Generator().manual_seed(seed)
    draw = RowDraw(case.ranges, generator, case.note_mask, top_p, temperature)
    return case.logits, case.masked, draw


@pytest.mark.parametrize("seed", range(42))
def test_draw_over_open_ranges_equals_the_oracle_on_the_masked_vector(seed: int) -> None:
    logits, masked, draw = _case(seed)
    if not np.isfinite(masked).any():  # the constraints leave nothing: an error, no token
        with pytest.raises(SamplerError, match="every token is masked"):
            draw_rows(logits[None], [draw])
        return
    twin = torch.Generator().manual_seed(seed)
    for _ in range(4):
        u = float(torch.rand((), generator=twin, dtype=torch.float64))
        assert draw_rows(logits[None], [draw])[0] == oracle(masked, draw.top_p, draw.temperature, u)


def test_rows_draw_the_same_tokens_alone_and_together() -> None:
    """Rows of different slots, sizes and transforms in one block: each row's tokens are
    the ones it draws alone with a generator of the same seed."""
    seeds = [seed for seed in range(30) if np.isfinite(_case(seed)[1]).any()][:9]
    cases = [_case(seed) for seed in seeds]
    block = np.stack([logits for logits, _, _ in cases])
    together = [draw for _, _, draw in cases]
    alone = [
        RowDraw(d.ranges, torch.Generator().manual_seed(s), d.note_mask, d.top_p, d.temperature)
        for s, d in zip(seeds, together, strict=True)
    ]
    for _ in range(5):
        batched = draw_rows(block, together)
        assert batched == [draw_rows(block[i : i + 1], [d])[0] for i, d in enumerate(alone)]
        for token, draw in zip(batched, together, strict=True):
            assert token in set(range_ids(draw.ranges).tolist())


def test_a_row_with_nothing_open_is_a_sampler_error_naming_it() -> None:
    g = torch.Generator().manual_seed(0)
    logits = np.zeros((2, V.VOCAB_SIZE), dtype=np.float32)
    logits[1, 100:120] = -np.inf
    rows = [RowDraw(((0, 10),), g), RowDraw(((100, 120),), g)]
    with pytest.raises(SamplerError, match="row 1"):
        draw_rows(logits, rows)
    with pytest.raises(SamplerError, match="row 0"):
        draw_rows(logits[:1], [RowDraw((), g)])


@pytest.mark.parametrize(("top_p", "temperature"), [(0.0, 1.0), (1.5, 1.0), (0.9, 0.0)])
def test_bad_transform_is_a_sampler_error(top_p: float, temperature: float) -> None:
    row = RowDraw(((0, 10),), torch.Generator(), top_p=top_p, temperature=temperature)
    with pytest.raises(SamplerError, match="top_p"):
        draw_rows(np.zeros((1, V.VOCAB_SIZE), dtype=np.float32), [row])


def test_one_draw_row_per_logit_row_is_required() -> None:
    with pytest.raises(SamplerError, match="2 logit rows"):
        draw_rows(np.zeros((2, 16), dtype=np.float32), [RowDraw(((0, 4),), torch.Generator())])


@pytest.mark.parametrize("seed", range(40))
def test_partitioned_nucleus_equals_sorting_everything(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.choice([1, 2, 63, 64, 65, 1000, 16513]))
    shape = seed % 4
    if shape == 0:  # peaked: a nucleus of a few ids
        values = rng.normal(scale=6.0, size=n)
    elif shape == 1:  # flat: the nucleus needs most ids (several growth rounds)
        values = rng.normal(scale=0.05, size=n)
    elif shape == 2:  # many ties, also at the candidate boundary
        values = rng.integers(-3, 3, size=n).astype(np.float64)
    else:  # trained-model-like: a few strong ids over a long tail
        values = np.concatenate([rng.normal(8, 1, size=min(n, 5)), rng.normal(0, 2, size=n)])[:n]
    for top_p in (0.05, 0.5, 0.9, 0.95, 0.999999):
        got = nucleus_indices(values, top_p)
        want = full_sort_nucleus(values, top_p)
        assert np.array_equal(got, want), (n, shape, top_p)
