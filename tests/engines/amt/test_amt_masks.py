"""Slot masks against the reference's allowed ranges, and the extra constraint masks."""

from __future__ import annotations

import numpy as np
import pytest
from amt_fixture_data import vocab_json
from mask_cases import mask_case

from engines.amt import vocab as V
from engines.amt.draw import range_ids
from engines.amt.masks import (
    Constraints,
    mask_logits,
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


@pytest.mark.parametrize("seed", range(60))
def test_open_ranges_hold_exactly_the_ids_the_masks_leave_open(seed: int) -> None:
    """The sampler's fast path (the open ids only) equals masking the whole vector."""
    case = mask_case(seed)
    bounds = [b for r in case.ranges for b in r]
    assert bounds == sorted(bounds) and all(lo < hi for lo, hi in case.ranges)
    ids = range_ids(case.ranges)
    if case.note_mask is not None:
        ids = ids[~case.note_mask[ids]]
    ids = ids[case.logits[ids] > -np.inf]  # ids the model itself gives -inf never occur
    assert np.array_equal(ids, np.flatnonzero(case.masked > -np.inf))


def test_negative_onset_window_is_rejected() -> None:
    with pytest.raises(ValueError):
        Constraints(max_time_step=-1)
