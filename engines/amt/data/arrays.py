"""The committed token arrays: ``tokens.npz`` with uint16 ``train`` and ``valid`` (n, 1024).

numpy only, so training runs on machines without music21. uint16 holds every id of the
55,028-token vocabulary (< 65,536) at half the size of int32.
"""

from __future__ import annotations

from pathlib import Path
from typing import Final

import numpy as np
import numpy.typing as npt

from engines.amt import vocab as V

TOKENS_FILE: Final = "tokens.npz"
MANIFEST_FILE: Final = "manifest.json"
DATA_DIR: Final = Path(__file__).resolve().parent

TokenArray = npt.NDArray[np.uint16]


def to_array(sequences: list[list[int]]) -> TokenArray:
    """Stack 1024-token sequences as uint16, checking length and id range."""
    if not sequences:
        return np.zeros((0, V.CONTEXT_SIZE), dtype=np.uint16)
    array = np.asarray(sequences, dtype=np.int64)
    if array.ndim != 2 or array.shape[1] != V.CONTEXT_SIZE:
        raise ValueError(f"sequences must be (n, {V.CONTEXT_SIZE}), got {array.shape}")
    if array.min() < 0 or array.max() >= V.VOCAB_SIZE:
        raise ValueError("token id outside the vocabulary")
    return array.astype(np.uint16)


def save_tokens(path: Path, train: TokenArray, valid: TokenArray) -> None:
    """Compressed: token streams repeat a lot, and git stores what we write."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp.npz")
    np.savez_compressed(tmp, train=train, valid=valid)
    tmp.replace(path)


def load_tokens(path: Path = DATA_DIR / TOKENS_FILE) -> tuple[TokenArray, TokenArray]:
    """(train, valid) arrays, validated."""
    with np.load(path) as data:
        train, valid = data["train"], data["valid"]
    for name, array in (("train", train), ("valid", valid)):
        if array.dtype != np.uint16 or array.ndim != 2 or array.shape[1] != V.CONTEXT_SIZE:
            raise ValueError(
                f"{path}: {name} must be uint16 (n, 1024), got {array.dtype} {array.shape}"
            )
        if array.size and int(array.max()) >= V.VOCAB_SIZE:
            raise ValueError(f"{path}: {name} holds ids >= {V.VOCAB_SIZE}")
    return train, valid
