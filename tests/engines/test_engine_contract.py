"""The job contract, run through a real worker process, against every engine we have."""

from __future__ import annotations

import pytest

from cas.store import CasStore
from engines.protocol import EngineRequest
from engines.registry import EngineRegistry, EngineSpec, amt_spec
from tests.engines.engine_contract import ContractCase, EngineContract
from tests.engines.slow_engine import chunk_notes, notes_to_midi

SLOW = EngineSpec.parse("slow=tests.engines.slow_engine:SlowEngine")


class TestSlowEngineContract(EngineContract):
    @pytest.fixture
    def case(self) -> ContractCase:
        return ContractCase(
            spec=SLOW,
            valid=lambda cas, job: EngineRequest(job, "stream", {"chunks": 3, "interval": 0.01}),
            long=lambda cas, job: EngineRequest(job, "stream", {"chunks": 200, "interval": 0.05}),
            invalid=lambda cas, job: EngineRequest(job, "stream", {"chunks": -1, "bogus": 1}),
        )


def _midi_input(cas: CasStore, chunks: int, per_chunk: int) -> dict[str, str]:
    notes = [n for i in range(chunks) for n in chunk_notes(i, per_chunk)]
    return {"artifact": cas.put(notes_to_midi(notes), mime="audio/midi").digest}


class TestTransformEngineContract(EngineContract):
    @pytest.fixture
    def case(self) -> ContractCase:
        return ContractCase(
            spec=EngineRegistry.default().get("transform"),
            valid=lambda cas, job: EngineRequest(
                job,
                "transpose",
                {"artifact": "art_a", "semitones": 2},
                inputs=_midi_input(cas, 8, 4),
            ),
            # ~16k notes: hundreds of steps, and a first step (parse + transform) long enough
            # that a cancel sent right after start lands while the job is still running.
            long=lambda cas, job: EngineRequest(
                job, "humanize", {"artifact": "art_b", "seed": 1}, inputs=_midi_input(cas, 500, 32)
            ),
            invalid=lambda cas, job: EngineRequest(
                job,
                "transpose",
                {"artifact": "art_c", "semitones": 1000},
                inputs=_midi_input(cas, 2, 2),
            ),
            cancel_after_first_event=False,
        )


@pytest.fixture(scope="module")
def amt_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    from tests.engines.amt.amt_models import save_tiny_gpt2

    return str(save_tiny_gpt2(tmp_path_factory.mktemp("amt") / "tiny"))


class TestAmtEngineContract(EngineContract):
    """The AMT engine with a small random model folder, passed as users pass one."""

    @pytest.fixture
    def case(self, amt_model_dir: str, monkeypatch: pytest.MonkeyPatch) -> ContractCase:
        monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # inherited by the spawned worker
        return ContractCase(
            spec=amt_spec(amt_model_dir, threads=1),
            valid=lambda cas, job: EngineRequest(job, "generate", {"length_seconds": 2.0}),
            long=lambda cas, job: EngineRequest(
                job, "generate", {"length_seconds": 80.0}, num_variations=4
            ),
            invalid=lambda cas, job: EngineRequest(job, "generate", {"top_p": 5, "bogus": 1}),
        )
