"""Loading weights the way users do: a saved folder (offline), hub ids, the bundled default."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from amt_models import save_tiny_gpt2

from engines.amt import models
from engines.amt.engine import AmtEngine
from engines.errors import EngineError


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_gpt2(tmp_path_factory.mktemp("amt") / "tiny")


def test_local_folder_loads_offline(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    loaded = models.load(str(model_dir))
    assert loaded.choice.source == "local" and loaded.choice.local_files_only
    assert (loaded.device, loaded.dtype) == ("cpu", "float32")
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert not loaded.model.training
    assert loaded.model.config.n_layer == 2


def test_engine_reports_what_is_loaded(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    engine = AmtEngine(model=str(model_dir), threads=1)
    before = engine.info()
    assert before.available and before.model == str(model_dir.resolve())
    engine.setup()
    info = engine.info()
    assert info.available and info.model == str(model_dir.resolve())
    assert info.device == "cpu (float32)"
    tasks = {t.name: t for t in info.tasks}
    assert set(tasks) == {"generate", "continue", "bridge", "infill", "accompany", "loop", "embed"}
    assert "key_lock" in tasks["generate"].constraints
    assert "instruments" in tasks["accompany"].constraints


def test_no_bundled_weights_is_a_clear_reason(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(models, "BUNDLED_DIR", tmp_path / "weights")
    info = AmtEngine().info()
    assert not info.available
    assert info.reason == models.NO_BUNDLED_WEIGHTS
    with pytest.raises(EngineError) as err:
        AmtEngine().setup()
    assert err.value.code == "engine_unavailable"
    assert "--amt-model" in err.value.message


def test_loading_prints_no_progress_bar_and_leaves_the_setting_alone(
    model_dir: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    from transformers.utils import logging as hf_logging

    assert hf_logging.is_progress_bar_enabled()
    models.load(str(model_dir))
    assert "Loading weights" not in capfd.readouterr().err
    assert hf_logging.is_progress_bar_enabled()  # restored for whoever else uses transformers


def test_bundled_folder_is_used_when_it_holds_weights(
    model_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(models, "BUNDLED_DIR", model_dir)
    choice = models.resolve(None)
    assert choice.source == "bundled" and choice.local_files_only and choice.label == "bundled"


def test_hub_ids_and_bad_names(tmp_path: Path) -> None:
    choice = models.resolve("stanford-crfm/music-small-800k")
    assert choice.source == "hub" and not choice.local_files_only
    empty = tmp_path / "empty"
    empty.mkdir()
    for bad in (str(empty), "not a model", "./missing/folder"):
        with pytest.raises(EngineError) as err:
            models.resolve(bad)
        assert err.value.code == "engine_unavailable"


def test_only_a_named_hub_id_may_download(model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """from_pretrained sees local_files_only=False for a hub id only; failures are reasons."""
    import transformers

    seen: list[tuple[str, bool]] = []

    def fake(location: str, *, local_files_only: bool) -> None:
        seen.append((location, local_files_only))
        raise OSError("offline")

    monkeypatch.setattr(transformers.GPT2LMHeadModel, "from_pretrained", fake)
    for name in ("tutti-tests/no-such-model", str(model_dir)):
        with pytest.raises(EngineError) as err:
            models.load(name)
        assert err.value.code == "engine_unavailable" and "offline" in err.value.message
    assert seen == [("tutti-tests/no-such-model", False), (str(model_dir.resolve()), True)]


def test_auto_dtype() -> None:
    assert models.pick_dtype("cpu") == "float32"
    assert models.pick_dtype("cpu", "bfloat16") == "bfloat16"
