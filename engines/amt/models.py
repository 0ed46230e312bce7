"""Finding and loading AMT weights: a hub id, a local folder, or the bundled default.

Only a hub id the user names explicitly may touch the network; a folder and the bundled
weights load with ``local_files_only=True``. ``resolve`` is cheap (no torch import), so
the engine can say why it is unavailable before paying for torch.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from engines.errors import EngineError

BUNDLED_DIR = Path(__file__).resolve().parent / "weights"
NO_BUNDLED_WEIGHTS = (
    "the bundled AMT weights are missing (engines/amt/weights/model.safetensors): "
    "reinstall Tutti, or pass --amt-model DIR or a hub id"
)
# "owner/name" as the Hugging Face hub spells repository ids
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")

Source = Literal["bundled", "local", "hub"]


@dataclass(frozen=True)
class ModelChoice:
    """Where the weights come from; ``location`` is a folder path or a hub id."""

    source: Source
    location: str

    @property
    def local_files_only(self) -> bool:
        return self.source != "hub"

    @property
    def label(self) -> str:
        return "bundled" if self.source == "bundled" else self.location


@dataclass(frozen=True)
class LoadedModel:
    model: Any  # GPT2LMHeadModel in eval mode
    choice: ModelChoice
    device: str
    dtype: str


def unavailable(message: str, **details: object) -> EngineError:
    return EngineError(message, code="engine_unavailable", details=dict(details))


def _has_weights(folder: Path) -> bool:
    return (folder / "config.json").is_file() and any(
        (folder / name).is_file()
        for name in ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
    )


def resolve(model: str | None) -> ModelChoice:
    """``None`` -> bundled weights; an existing folder -> local; "owner/name" -> hub id.

    Raises ``engine_unavailable`` with a reason a musician can act on.
    """
    if model is None or not model.strip():
        if not _has_weights(BUNDLED_DIR):
            raise unavailable(NO_BUNDLED_WEIGHTS, folder=str(BUNDLED_DIR))
        return ModelChoice("bundled", str(BUNDLED_DIR))
    text = model.strip()
    path = Path(text).expanduser()
    if path.is_dir():
        if not _has_weights(path):
            raise unavailable(
                f"{path} holds no model (config.json and model.safetensors expected)",
                folder=str(path),
            )
        return ModelChoice("local", str(path.resolve()))
    if _HUB_ID.match(text) and not text.startswith((".", "/", "~")):
        return ModelChoice("hub", text)
    raise unavailable(
        f"AMT model {text!r} is neither a folder nor a hub id like "
        "'stanford-crfm/music-small-800k'",
        model=text,
    )


def pick_device(device: str | None = None) -> str:
    import torch

    if device:
        return device
    return "cuda" if torch.cuda.is_available() else "cpu"


def pick_dtype(device: str, dtype: str | None = None) -> str:
    """fp32 on the CPU (exact, and bf16 matmuls are slow there); bf16 on GPUs that have it."""
    if dtype:
        return dtype
    if not device.startswith("cuda"):
        return "float32"
    import torch

    return "bfloat16" if torch.cuda.is_bf16_supported() else "float16"


def load(model: str | None, *, device: str | None = None, dtype: str | None = None) -> LoadedModel:
    """Load the chosen weights as a ``GPT2LMHeadModel`` in eval mode on the chosen device."""
    choice = resolve(model)
    import torch
    from transformers import GPT2LMHeadModel

    where = pick_device(device)
    precision = pick_dtype(where, dtype)
    from transformers.utils import logging as transformers_logging

    hf_logging: Any = transformers_logging  # its toggles are untyped

    # a "Loading weights" bar per load would interleave with the hub's log and the CLI's own
    # progress bar; a 35 MB file loads in milliseconds anyway
    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        loaded = GPT2LMHeadModel.from_pretrained(
            choice.location,
            local_files_only=choice.local_files_only,
        )
    except (OSError, ValueError) as exc:
        hint = (
            " (downloads need network access; set HF_HUB_OFFLINE=0)"
            if choice.source == "hub"
            else ""
        )
        raise unavailable(
            f"cannot load AMT model {choice.label}: {exc}{hint}", model=choice.location
        ) from exc
    finally:
        if bars:
            hf_logging.enable_progress_bar()
    vocab = int(loaded.config.vocab_size)
    from engines.amt import vocab as V

    if vocab < V.VOCAB_SIZE:
        raise unavailable(
            f"{choice.label} has a vocabulary of {vocab}, not the AMT vocabulary of {V.VOCAB_SIZE}",
            model=choice.location,
        )
    # cast after loading: the from_pretrained dtype keyword changed name across versions
    model_any: Any = loaded
    model_any = model_any.to(device=where, dtype=getattr(torch, precision)).eval()
    return LoadedModel(model_any, choice, where, precision)
