"""The transformer's validation NLL per event, measured the way training reports it.

Each position's softmax covers only the ids valid in its slot (time, duration or note: the
blocks the sampler allows), anticipated controls are context and not targets, and the NLL
of an event is the sum over its three tokens; dividing by the number of events (separator
triples included) gives nats per event, comparable with the n-gram models.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import torch

from engines.amt.train.slots import SlotTables, slot_loss

# The bundled model's card quotes its NLL on this many validation sequences; a test
# recomputes it from the shipped weights (small enough for the suite, ~5,500 events).
REFERENCE_SEQUENCES = 16


def reference_sequences(valid: npt.NDArray[np.integer]) -> npt.NDArray[np.integer]:
    """``REFERENCE_SEQUENCES`` sequences spread evenly over the validation set.

    Evenly spaced, not the leading ones: consecutive sequences come from the same piece,
    so the first 16 are two or three pieces (one of them a tune a trigram predicts as well
    as the model: 4.23 vs 4.22 nats/event), not a sample of the set.
    """
    return valid[:: _reference_stride(valid)][:REFERENCE_SEQUENCES]


def reference_description(valid: npt.NDArray[np.integer]) -> str:
    stride = _reference_stride(valid)
    return f"{REFERENCE_SEQUENCES} validation sequences spread over the set (every {stride}th)"


def _reference_stride(valid: npt.NDArray[np.integer]) -> int:
    return max(len(valid) // REFERENCE_SEQUENCES, 1)


@torch.inference_mode()
def model_nll_per_event(
    model: Any,
    sequences: npt.NDArray[np.integer],
    batch_size: int = 4,
    *,
    onsets_not_in_past: bool = False,
) -> tuple[float, int]:
    """(nats per event, number of events) of ``model`` (a GPT2LMHeadModel) on ``sequences``.

    ``onsets_not_in_past``: score the distribution the sampler draws from, whose onsets are
    never before the previous event's (AMT-FORMAT.md section 2), which is also the support
    of the n-gram models (time since the previous onset >= 0).
    """
    device = next(model.parameters()).device
    tables = SlotTables.build(device=device)
    was_training = model.training
    model.train(False)
    nll = 0.0
    events = 0.0
    try:
        for i in range(0, len(sequences), batch_size):
            batch = torch.from_numpy(np.asarray(sequences[i : i + batch_size], dtype=np.int64))
            batch = batch.to(device)
            hidden = model.transformer(input_ids=batch).last_hidden_state.float()
            weight = model.lm_head.weight.float()
            parts = slot_loss(
                hidden, batch, weight, tables, onsets_not_in_past=onsets_not_in_past
            )
            nll += float(parts.nll.double().sum())
            events += float(parts.count[2])
    finally:
        model.train(was_training)
    return nll / max(events, 1.0), int(events)
