"""One forward pass for all rows: same logits and same music as each row alone."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pytest
import torch
from amt_fixture_data import piece
from amt_models import tiny_gpt2

from cas.store import CasStore
from engines.amt import ops
from engines.amt import vocab as V
from engines.amt.batching import BatchedCachedStep
from engines.amt.engine import AmtEngine
from engines.amt.masks import Constraints, Ranges, slot_masks
from engines.amt.sampler import Decoder, GenerationRequest, SamplingParams, generate, variations
from engines.amt.steps import CachedStep
from engines.protocol import EngineEvent, EngineRequest, Output

HARNESS = Constraints(block_rest=True, max_time_step=20)
PARAMS = SamplingParams(constraints=HARNESS, top_p=0.95, window="chunked")


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    return tiny_gpt2()


class Checking:
    """The batched step, checked against per-row cached steps at every call."""

    def __init__(self, model: torch.nn.Module, *, lean: bool = True) -> None:
        self.batched = BatchedCachedStep(model, lean=lean)
        assert (self.batched.lean is not None) == lean
        self.alone = CachedStep(model)
        self.calls = 0
        self.widest = 0
        self.widest_block = 0  # most new tokens one row fed in one call (a due control)

    def __call__(self, windows: Sequence[Sequence[int]], rows: Sequence[int]) -> torch.Tensor:
        got = self.batched(windows, rows)
        # the batched head computes only the ids a slot can produce; the rest is -inf
        blocked = torch.from_numpy(np.stack([slot_masks()[(len(w) - 1) % 3] for w in windows]))
        assert bool(torch.isneginf(got[blocked]).all())
        return self._check(windows, rows, got, blocked)

    def _check(
        self,
        windows: Sequence[Sequence[int]],
        rows: Sequence[int],
        got: torch.Tensor,
        ignored: torch.Tensor,
    ) -> torch.Tensor:
        held = {r: len(self.alone._rows[r].ids) for r in rows if r in self.alone._rows}
        want = self.alone(windows, rows)
        for w, r in zip(windows, rows, strict=True):
            self.widest_block = max(self.widest_block, len(w) - held.get(r, len(w)))
        got_cmp, want = got.masked_fill(ignored, 0.0), want.masked_fill(ignored, 0.0)
        # relative: the time-bias unit makes logits reach -500, float32 noise scales with them
        torch.testing.assert_close(got_cmp, want, atol=1e-5, rtol=1e-5)
        self.calls += 1
        self.widest = max(self.widest, len(rows))
        return got

    def release(self, row: int) -> None:
        self.batched.release(row)
        self.alone.release(row)


class NarrowChecking(Checking):
    """The same through ``narrowed`` (exact id ranges from the sampler)."""

    def narrowed(
        self, windows: Sequence[Sequence[int]], rows: Sequence[int], open_ids: Sequence[Ranges]
    ) -> torch.Tensor:
        got = self.batched.narrowed(windows, rows, open_ids)
        ignored = torch.ones_like(got, dtype=torch.bool)
        for i, ranges in enumerate(open_ids):
            for low, high in ranges:
                ignored[i, low:high] = False
        return self._check(windows, rows, got, ignored)


CHECKERS: dict[str, Callable[[torch.nn.Module], Checking]] = {
    "lean": lambda m: Checking(m),
    "hf": lambda m: Checking(m, lean=False),
    "lean-narrowed": lambda m: NarrowChecking(m),
    "hf-narrowed": lambda m: NarrowChecking(m, lean=False),
}


@pytest.mark.parametrize("kind", list(CHECKERS))
def test_rows_joining_and_leaving_match_each_row_alone(model: torch.nn.Module, kind: str) -> None:
    step = CHECKERS[kind](model)
    decoder = Decoder(step)
    events = piece("joplin_maple_leaf_rag")["events"][: 3 * 330]
    start = ops.max_time(events) / V.TIME_RESOLUTION
    long_prompt = GenerationRequest(start, start + 3.0, inputs=events, seed=11)
    first = variations(GenerationRequest(0, 5, seed=3), 3)
    late = GenerationRequest(0, 2, seed=42)
    ids = [decoder.add(r, PARAMS) for r in first]
    steps = 0
    while decoder.active():
        if steps == 20:
            ids.append(decoder.add(late, PARAMS))  # joins mid-run
        if steps == 40:
            ids.append(decoder.add(long_prompt, PARAMS))  # a long prefill, then a slide
        decoder.step()
        steps += 1
    got = [decoder.output(r) for r in ids]
    want = [generate(CachedStep(model), r, PARAMS) for r in [*first, late, long_prompt]]
    assert got == want
    assert step.widest >= 4
    assert step.batched.forwards < step.calls + 12  # one extend per step plus rare prefills
    assert len({tuple(g) for g in got[:3]}) == 3


@pytest.mark.parametrize("kind", list(CHECKERS))
def test_due_controls_feed_several_tokens_beside_one_token_rows(
    model: torch.nn.Module, kind: str
) -> None:
    """A row placing anticipated controls feeds 4 tokens while the others feed 1: holes,
    a causal block in the step, and a mask while the holes last."""
    step = CHECKERS[kind](model)
    decoder = Decoder(step)
    events = piece("joplin_maple_leaf_rag")["events"][: 3 * 200]
    controls = [tok + V.CONTROL_OFFSET for tok in events]
    accompany = GenerationRequest(0, 4, controls=controls, seed=5)
    plain = variations(GenerationRequest(0, 4, seed=8), 2)
    ids = [decoder.add(r, PARAMS) for r in [accompany, *plain]]
    while decoder.active():
        decoder.step()
    got = [decoder.output(r) for r in ids]
    want = [generate(CachedStep(model), r, PARAMS) for r in [accompany, *plain]]
    assert got == want
    assert step.widest_block >= 4  # a control triple plus the sampled token in one call
    assert step.widest == 3


def test_identical_windows_share_one_prefill(model: torch.nn.Module) -> None:
    step = BatchedCachedStep(model)
    decoder = Decoder(step)
    for r in variations(GenerationRequest(0, 1, seed=0), 4):
        decoder.add(r, PARAMS)
    decoder.step()
    assert step.rebuilds == 1 and step.forwards == 1
    decoder.step()
    assert step.forwards == 2  # then one batched forward per step


def _run_all(
    engine: AmtEngine, cas: CasStore, requests: list[EngineRequest]
) -> dict[str, list[EngineEvent]]:
    runs = [engine.start(r, cas) for r in requests]
    out: dict[str, list[EngineEvent]] = {r.job_id: [] for r in requests}
    while not all(run.done for run in runs):
        for job, events in engine.step_many([r for r in runs if not r.done]).items():
            out[job] += events
    return out


def test_concurrent_jobs_equal_each_job_alone(model: torch.nn.Module, tmp_path: Path) -> None:
    engine = AmtEngine()
    engine.use_model(model, "tiny")
    cas = CasStore(tmp_path / "cas")
    a = EngineRequest("a", "generate", {"length_seconds": 3}, num_variations=2, seed=5)
    b = EngineRequest("b", "loop", {"bars": 1, "instruments": [0]}, seed=9)
    together = _run_all(engine, cas, [a, b])
    alone = {**_run_all(engine, cas, [a]), **_run_all(engine, cas, [b])}

    def digests(events: list[EngineEvent]) -> list[str]:
        return [e.digest for e in events if isinstance(e, Output) and not e.partial]

    for job in ("a", "b"):
        assert digests(together[job]) == digests(alone[job])
        assert digests(together[job])
    assert len(set(digests(together["a"]))) == 2
