"""Run-folder checkpoints (resumable) and the fp16 weights-only export.

``RUN/last.pt``: model + optimizer + step + RNG states + best validation so far, written
atomically so a kill mid-save never loses the previous checkpoint. ``RUN/best.pt``: the
fp32 model weights of the best validation step (what gets exported). ``RUN/runlog.json``
(optional, written by hand): ``{"note": "..."}`` on what changed during the run (a config
edited between resumes). The export copies it and ``RUN/history.jsonl`` (validation NLL
per event by step) into training.json for the model card.
"""

from __future__ import annotations

import inspect
import json
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from transformers import GPT2LMHeadModel

from engines.amt.train.config import ModelConfig
from engines.amt.train.model import gpt2_config

LAST = "last.pt"
BEST = "best.pt"
RUNLOG = "runlog.json"
HISTORY = "history.jsonl"  # the trainer appends one validation record per line


@dataclass
class RunState:
    step: int = 0
    tokens_seen: int = 0
    best_val: float = float("inf")
    best_step: int = -1
    history: list[dict[str, float]] = field(default_factory=list)
    stopped_early: bool = False  # validation stopped improving (run.patience)


def rng_state() -> dict[str, Any]:
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": np.random.get_state(),
        "python": random.getstate(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _atomic_save(obj: Any, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(obj, tmp)
    tmp.replace(path)


def save_checkpoint(
    run_dir: Path,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    state: RunState,
    config: dict[str, Any],
) -> None:
    _atomic_save(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "run_state": state.__dict__,
            "rng": rng_state(),
            "config": config,
        },
        run_dir / LAST,
    )


def load_checkpoint(
    run_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer
) -> RunState | None:
    """Restore ``last.pt`` into model and optimizer (and the RNGs); None if there is none."""
    path = run_dir / LAST
    if not path.is_file():
        return None
    data = torch.load(path, map_location="cpu", weights_only=False)  # our own file: RNG states
    model.load_state_dict(data["model"])
    optimizer.load_state_dict(data["optimizer"])
    set_rng_state(data["rng"])
    return RunState(**data["run_state"])


def save_best(run_dir: Path, model: torch.nn.Module, info: dict[str, Any]) -> None:
    state = {k: v.detach().float().cpu() for k, v in model.state_dict().items()}
    _atomic_save({"model": state, "info": info}, run_dir / BEST)


def export_best(
    run_dir: Path, model_cfg: ModelConfig, target: Path, card_info: dict[str, Any]
) -> Path:
    """Best weights -> ``target`` as fp16 safetensors (weights only) + ``training.json``."""
    data = torch.load(run_dir / BEST, map_location="cpu", weights_only=True)
    model = GPT2LMHeadModel(gpt2_config(model_cfg))
    model.load_state_dict(data["model"])
    # torch.nn.Module.half: the transformers override is untyped; same effect
    torch.nn.Module.half(model).train(False)
    target.mkdir(parents=True, exist_ok=True)
    kwargs: dict[str, Any] = {}
    if "safe_serialization" in inspect.signature(model.save_pretrained).parameters:
        kwargs["safe_serialization"] = True  # transformers 4.x; 5.x always writes safetensors
    model.save_pretrained(target, **kwargs)
    info = {**data["info"], **card_info}
    runlog = run_dir / RUNLOG
    if runlog.is_file():
        info["run_notes"] = str(json.loads(runlog.read_text()).get("note", ""))
    history = run_dir / HISTORY
    if history.is_file():
        # one record per validation; a resumed run may have repeated one: keep the last
        by_step: dict[int, float] = {}
        for line in history.read_text().splitlines():
            if line.strip():
                record = json.loads(line)
                by_step[int(record["step"])] = float(record["val_nll_per_event"])
        info["history"] = [[step, by_step[step]] for step in sorted(by_step)]
    (target / "training.json").write_text(json.dumps(info, indent=1) + "\n")
    return target
