"""Slot masks against the reference's allowed ranges, and the extra constraint masks."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from amt_fixture_data import vocab_json

from engines.amt import vocab as V
from engines.amt.masks import (
    Constraints,
    mask_logits,
    note_instruments,
    nucleus_indices,
    open_logits,
    open_ranges,
    sample,
    sample_open,
    slot_masks,
)


def test_slot_masks_match_reference_allowed_ranges() -> None:
    for slot, ranges in vocab_json()["sampling_allowed_range_by_slot"].items():
        allowed = np.zeros(V.VOCAB_SIZE, dtype=np.bool_)
        for lo, hi in ranges:
            allowed[lo:hi] = True
        assert np.array_equal(~slot_masks()[int(slot)], allowed)


def _open_ids(slot: int, constraints: Constraints, current_time: int = 0) -> np.ndarray:
    out = mask_logits(
        np.zeros(V.VOCAB_SIZE),
        slot,
        current_time=current_time,
        instruments=set(),
        extra_note_mask=constraints.note_mask(),
        constraints=constraints,
    )
    return np.flatnonzero(np.isfinite(out))


def test_key_range_instrument_and_drum_constraints_are_exact() -> None:
    c = Constraints(
        instruments=[0, 33], drums=False, pitch_range=(48, 72), scale=[0, 2, 4, 5, 7, 9, 11]
    )
    open_notes = [i for i in _open_ids(2, c) if i != V.REST]
    assert open_notes
    for tok in open_notes:
        instr, pitch = divmod(int(tok) - V.NOTE_OFFSET, V.MAX_PITCH)
        assert instr in (0, 33) and 48 <= pitch <= 72 and pitch % 12 in {0, 2, 4, 5, 7, 9, 11}
    assert len(open_notes) == 2 * 15  # 15 C-major pitches in 48..72, two programs
    assert V.REST in _open_ids(2, c)  # REST stays open, like the reference
    assert V.REST not in _open_ids(2, Constraints(block_rest=True))


def test_time_slot_blocks_the_past_and_harness_window() -> None:
    ids = _open_ids(0, Constraints(max_time_step=20, block_rest=True), current_time=100)
    assert list(ids) == list(range(100, 120))
    ids = _open_ids(0, Constraints(), current_time=100)
    assert ids[0] == 100 and ids[-1] == V.REST and len(ids) == V.MAX_TIME - 100 + 1


def test_instrument_cap_counts_like_the_reference() -> None:
    seen = set(range(14)) | {129}  # REST counts as an instrument: 15 in all
    out = mask_logits(np.zeros(V.VOCAB_SIZE), 2, current_time=0, instruments=seen)
    open_instr = {(int(i) - V.NOTE_OFFSET) // V.MAX_PITCH for i in np.flatnonzero(np.isfinite(out))}
    assert open_instr == set(range(14)) | {129}  # 129 = REST id itself


def test_sampling_is_argmax_for_one_hot_and_respects_top_p() -> None:
    logits = np.full(V.VOCAB_SIZE, -1e9)
    logits[123] = 0.0
    g = torch.Generator().manual_seed(0)
    assert all(sample(logits, top_p=1.0, temperature=1.0, generator=g) == 123 for _ in range(5))
    logits = np.full(V.VOCAB_SIZE, -np.inf)
    logits[[10, 11, 12]] = [np.log(0.7), np.log(0.2), np.log(0.1)]
    draws = {sample(logits, top_p=0.6, temperature=1.0, generator=g) for _ in range(50)}
    assert draws == {10}
    draws = {sample(logits, top_p=0.85, temperature=1.0, generator=g) for _ in range(200)}
    assert draws == {10, 11}


CONSTRAINTS: list[Constraints | None] = [
    None,
    Constraints(),
    Constraints(block_rest=True, max_time_step=20),
    Constraints(max_time_step=0),
    Constraints(instruments=[0, 33], drums=False, pitch_range=(48, 72), scale=[0, 2, 4, 7]),
    Constraints(instruments=[5], block_rest=True),
    Constraints(drums=False),
]


@pytest.mark.parametrize("seed", range(60))
def test_open_ranges_hold_exactly_the_ids_the_masks_leave_open(seed: int) -> None:
    """The sampler's fast path (the open ids only) equals masking the whole vector."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(scale=3.0, size=V.VOCAB_SIZE).astype(np.float32)
    logits[rng.integers(0, V.VOCAB_SIZE, 2000)] = -np.inf  # a model may block ids itself
    slot = seed % 3
    current_time = int(rng.choice([-5, 0, 37, 5000, 9990, 10000, 12000]))
    count = int(rng.choice([0, 5, 14, 15, 20]))
    instruments = {int(i) for i in rng.choice(130, size=count, replace=False)}
    constraints = CONSTRAINTS[seed % len(CONSTRAINTS)]
    extra = constraints.note_mask() if constraints is not None else None
    masked = mask_logits(
        logits,
        slot,
        current_time=current_time,
        instruments=instruments,
        extra_note_mask=extra,
        constraints=constraints,
    )
    ranges = open_ranges(
        slot,
        current_time=current_time,
        instruments=instruments,
        constraints=constraints,
        allowed_instruments=note_instruments(extra),
    )
    bounds = [b for r in ranges for b in r]
    assert bounds == sorted(bounds) and all(lo < hi for lo, hi in ranges)
    ids, values = open_logits(logits, ranges, extra if slot == 2 else None)
    want = np.flatnonzero(masked > -np.inf)
    assert np.array_equal(ids, want)
    assert np.array_equal(values, masked[want])
    if want.size:
        a, b = (torch.Generator().manual_seed(seed) for _ in range(2))
        for _ in range(3):
            got = sample_open(ids, values, top_p=0.9, temperature=0.8, generator=a)
            assert got == sample(masked, top_p=0.9, temperature=0.8, generator=b)


def full_sort_nucleus(values: np.ndarray, top_p: float) -> np.ndarray:
    """The HF rule written plainly: sort everything, cut after the mass passes top_p."""
    order = np.argsort(-values, kind="stable")
    probs = np.exp(values[order] - values.max())
    cumulative = np.cumsum(probs / probs.sum())
    remove = cumulative > top_p
    remove[1:] = remove[:-1].copy()  # the first id crossing the threshold is kept
    remove[0] = False
    return np.sort(order[~remove])


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


def test_negative_onset_window_is_rejected() -> None:
    with pytest.raises(ValueError):
        Constraints(max_time_step=-1)
