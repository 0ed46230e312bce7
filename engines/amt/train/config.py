"""Training configuration: a TOML file mapped onto typed dataclasses (unknown keys fail)."""

from __future__ import annotations

import tomllib
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from engines.amt import vocab as V

DEFAULT_CONFIG = Path(__file__).resolve().parent / "default.toml"


@dataclass
class ModelConfig:
    n_layer: int = 4
    n_embd: int = 256
    n_head: int = 4
    n_positions: int = V.CONTEXT_SIZE
    vocab_size: int = V.VOCAB_SIZE
    dropout: float = 0.1
    # "sinusoidal": time and duration embeddings start as multi-frequency sinusoids of their
    # tick value (see model.sinusoidal_rows); "normal": GPT-2's plain random init.
    time_init: Literal["normal", "sinusoidal"] = "normal"


@dataclass
class DataConfig:
    tokens: str = ""  # "" = the committed engines/amt/data/tokens.npz
    max_train_sequences: int = 0  # 0 = all; small values for smoke runs


@dataclass
class LossConfig:
    # "slot": softmax over the ids valid in each position's slot; "full": all 55,028 ids
    mode: Literal["slot", "full"] = "slot"
    # Also learn to predict anticipated control tokens (the sampler never samples them).
    predict_controls: bool = False
    # Note slot over the instruments the training data uses only (faster; the engine must
    # then mask notes to those instruments, listed in the run's checkpoint and model card).
    corpus_instruments_only: bool = False
    # Time slot: softmax over onsets at or after the previous event's only (the sampler never
    # draws an onset in the past), so no capacity goes into learning that rule.
    onsets_not_in_past: bool = False


@dataclass
class OptimConfig:
    batch_size: int = 4
    grad_accum: int = 1
    lr: float = 1e-3
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.95
    grad_clip: float = 1.0
    warmup_steps: int = 200
    epochs: float = 3.0  # total schedule length in passes over the training array
    max_steps: int = 0  # overrides ``epochs`` when > 0


@dataclass
class RunConfig:
    seed: int = 0
    run_dir: str = "runs/amt-default"
    device: str = "auto"  # "auto", "cpu", "cuda"
    threads: int = 0  # torch CPU threads; 0 = torch's default
    eval_every: int = 200  # steps
    eval_sequences: int = 64  # validation sequences per evaluation (0 = all)
    checkpoint_every: int = 100  # steps; also at the end of every chunk
    export_dir: str = ""  # export the best checkpoint here when training ends
    patience: int = 0  # stop after this many evaluations without improvement (0 = never)


@dataclass
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _section(cls: type[Any], values: dict[str, Any], name: str) -> Any:
    known = {f.name for f in fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown key(s) in [{name}]: {', '.join(sorted(unknown))}")
    return cls(**values)


def from_dict(data: dict[str, Any]) -> TrainConfig:
    sections = {f.name: f for f in fields(TrainConfig)}
    unknown = set(data) - set(sections)
    if unknown:
        raise ValueError(f"unknown section(s): {', '.join(sorted(unknown))}")
    parts = {
        name: _section(type(getattr(TrainConfig(), name)), data.get(name, {}), name)
        for name in sections
    }
    config = TrainConfig(**parts)
    if config.loss.mode not in ("slot", "full"):
        raise ValueError("loss.mode must be 'slot' or 'full'")
    if config.model.n_embd % config.model.n_head:
        raise ValueError("model.n_embd must be a multiple of model.n_head")
    return config


def load_config(path: Path) -> TrainConfig:
    with path.open("rb") as handle:
        return from_dict(tomllib.load(handle))
