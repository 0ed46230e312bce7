"""Cached pieces -> train/validation token arrays, manifest and data card.

- Split by piece: a piece is in validation when a hash of its id falls in the lowest 5%,
  so the split never changes when other files are added or fail.
- Validation: every piece once, in its written key, unaugmented (AUTOREGRESS): a clean
  next-event likelihood for ``tutti eval``.
- Training: ``copies`` copies of every piece, each transposed by a different number of
  semitones (0 first, then a per-piece random draw from -5..+6). Even copies are plain
  autoregressive; odd copies carry anticipated controls, the augmentation kind drawn per
  copy from 1..9 as in the reference (1 spans, 2-5 random events, 6-9 instrument subsets),
  which the infill, accompany and bridge tasks need. ``copies`` is the largest count that
  fits the size budget.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import numpy as np

from engines.amt import ops
from engines.amt import vocab as V
from engines.amt.data.arrays import MANIFEST_FILE, TOKENS_FILE, save_tokens, to_array
from engines.amt.data.sources import EXCLUDED_COLLECTIONS
from engines.amt.tokenize import SequenceBuilder, TokenizeStats, augment, filter_piece

VALID_PERCENT: Final = 5
MAX_COPIES: Final = 12  # one per key
SHIFTS: Final = tuple(range(-5, 7))  # the 12 transpositions, in semitones


def augment_kind(copy: int, rng: np.random.Generator) -> int:
    """tokenize.augment kind of copy ``copy``: 0 (none) for even copies, else 1..9."""
    return 0 if copy % 2 == 0 else int(rng.integers(1, 10))


def is_valid_piece(piece_id: str) -> bool:
    """Deterministic ~5% validation split by piece id."""
    digest = hashlib.sha1(piece_id.encode()).hexdigest()
    return int(digest[:8], 16) % 100 < VALID_PERCENT


def transpose(compound: Sequence[int], shift: int) -> list[int] | None:
    """Compound tuples moved by ``shift`` semitones (drums kept), None if out of range."""
    out = list(compound)
    for j in range(0, len(out), V.COMPOUND_SIZE):
        if out[j + 3] == V.DRUMS:
            continue
        pitch = out[j + 2] + shift
        if not 0 <= pitch < V.MAX_PITCH:
            return None
        out[j + 2] = pitch
    return out


@dataclass
class Copy:
    compound: list[int]
    shift: int
    kind: int


@dataclass
class SplitResult:
    sequences: list[list[int]] = field(default_factory=list)
    stats: TokenizeStats = field(default_factory=TokenizeStats)
    pieces_used: int = 0


def build_split(
    pieces: list[dict[str, Any]], copies: float, rng: np.random.Generator
) -> SplitResult:
    """Tokenize ``copies`` transposed/augmented copies of each piece into one stream.

    A fractional count gives every piece ``floor(copies)`` copies and one more with
    probability ``copies - floor(copies)``.
    """
    builder = SequenceBuilder()
    stats = builder.result.stats
    used = 0
    whole = int(copies)
    for piece in pieces:
        others = [int(s) for s in rng.permutation([s for s in SHIFTS if s != 0])]
        count = whole + int(rng.random() < copies - whole)
        shifts = [0, *others][:count]
        first = True
        for j, shift in enumerate(shifts):
            compound = transpose(piece["compound"], shift)
            if compound is None:
                continue
            kept = filter_piece(compound, stats)
            if kept is None:
                break  # the filters do not depend on the key
            events, _truncations = kept
            if first:
                used += 1
                first = False
            instruments = list(ops.get_instruments(events))
            kind = augment_kind(j, rng)
            plain, controls = augment(events, kind, instruments, rng)
            padded = ops.pad(plain, ops.max_time(events))
            tokens, leftover = ops.anticipate(padded, controls)
            if leftover:
                raise RuntimeError("padding to the piece end must place every control")
            builder.add(tokens, augmented=kind != 0)
    return SplitResult(builder.result.sequences, stats, used)


def usable_pieces(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Pieces of allowed, successfully parsed files, sorted by id."""
    pieces = [
        piece
        for record in records
        if record["licence"]["allowed"] and not record["error"]
        for piece in record["pieces"]
    ]
    return sorted(pieces, key=lambda p: str(p["piece_id"]))


def _choose_copies(train: list[dict[str, Any]], budget_tokens: int) -> float:
    """Most copies (to 0.05) whose padded token count fits the budget (from copy 0)."""
    per_copy = 0
    scratch = TokenizeStats()
    for piece in train:
        kept = filter_piece(piece["compound"], scratch)
        if kept is not None:
            events = kept[0]
            per_copy += len(ops.pad(events, ops.max_time(events))) + V.EVENT_SIZE
    if per_copy == 0:
        return 1.0
    if per_copy > budget_tokens:
        raise ValueError(
            f"one copy of the training pieces needs {per_copy:,} tokens, more than the "
            f"budget of {budget_tokens:,}: raise --max-mb or use fewer collections"
        )
    return min(float(MAX_COPIES), math.floor(20 * budget_tokens / per_copy) / 20)


def assemble(
    records: list[dict[str, Any]],
    out: Path,
    max_bytes: int = 15_000_000,
    seed: int = 0,
    card: Path | None = None,
) -> str:
    """Write ``tokens.npz`` and ``manifest.json`` (and the data card); return a summary."""
    pieces = usable_pieces(records)
    valid_pieces = [p for p in pieces if is_valid_piece(p["piece_id"])]
    train_pieces = [p for p in pieces if not is_valid_piece(p["piece_id"])]
    valid = build_split(valid_pieces, 1, np.random.default_rng(seed))
    budget = max_bytes // 2 - len(valid.sequences) * V.CONTEXT_SIZE
    copies = _choose_copies(train_pieces, budget)
    while True:
        train = build_split(train_pieces, copies, np.random.default_rng(seed + 1))
        if len(train.sequences) * V.CONTEXT_SIZE <= budget or copies <= 1:
            break
        copies = max(1.0, copies - 0.05)  # the estimate misses rests' growth; retry smaller
    train_array, valid_array = to_array(train.sequences), to_array(valid.sequences)
    save_tokens(out / TOKENS_FILE, train_array, valid_array)
    from engines.amt.data.manifest import build_manifest, dumps, write_card

    manifest = build_manifest(records, valid_pieces, copies, train, valid, seed)
    (out / MANIFEST_FILE).write_text(dumps(manifest))
    if card is not None:
        write_card(manifest, card)
    size = (out / TOKENS_FILE).stat().st_size
    return (
        f"train {train_array.shape} ({train.pieces_used} pieces x {copies:g} copies), "
        f"valid {valid_array.shape} ({valid.pieces_used} pieces); "
        f"{(train_array.size + valid_array.size) / 1e6:.2f} M tokens; {TOKENS_FILE} {size / 1e6:.2f} MB"
    )


__all__ = ["EXCLUDED_COLLECTIONS", "assemble", "build_split", "is_valid_piece", "transpose"]
