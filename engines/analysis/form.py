"""Form from a bar self-similarity matrix: section boundaries, letters, repetition.

Boundaries are peaks of a Foote novelty curve (a checkerboard kernel slid along the diagonal:
high where the bars before are alike, the bars after are alike, and the two groups differ).
Sections are then lettered greedily: a section takes the letter of the first earlier section whose
bars match it bar-for-bar, else a new letter.
"""

from __future__ import annotations

import math
import string
from dataclasses import dataclass
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

F64 = NDArray[np.float64]

KERNEL_BARS = 4  # half-width: phrases are usually 4 bars
MIN_SECTION_BARS = 2
MIN_NOVELTY = 0.12  # absolute floor (similarity units) for a boundary
RELATIVE_NOVELTY = 0.35  # and at least this share of the strongest boundary
SAME_SECTION = 0.75  # bar-for-bar similarity to reuse a letter
REPEAT_SIMILARITY = 0.9  # two consecutive bars this similar at some lag = material repeats


@dataclass(frozen=True, slots=True)
class Section:
    letter: str
    start_bar: int  # 0-based, inclusive
    end_bar: int  # 0-based, exclusive


def novelty(s: F64, half: int) -> F64:
    """Novelty of a boundary before each bar (index 0 and n are never boundaries)."""
    n = s.shape[0]
    offs = np.arange(-half, half, dtype=np.int64)
    idx = np.arange(n, dtype=np.int64)[:, None] + offs[None, :]  # (n, 2h) bars around each i
    valid = (idx >= 0) & (idx < n)
    safe = np.clip(idx, 0, n - 1)
    block = s[safe[:, :, None], safe[:, None, :]]  # (n, 2h, 2h)
    pair_ok = valid[:, :, None] & valid[:, None, :]
    left = offs < 0
    same = (left[:, None] == left[None, :])[None, :, :] & pair_ok
    cross = (left[:, None] != left[None, :])[None, :, :] & pair_ok
    within = (block * same).sum(axis=(1, 2)) / np.maximum(same.sum(axis=(1, 2)), 1)
    across = (block * cross).sum(axis=(1, 2)) / np.maximum(cross.sum(axis=(1, 2)), 1)
    out: F64 = within - across
    out[0] = 0.0
    return out


def boundaries(s: F64) -> list[int]:
    """Bar indices where new sections start (0 always included)."""
    n = s.shape[0]
    if n < 2 * MIN_SECTION_BARS:
        return [0]
    half = min(KERNEL_BARS, max(1, n // 4))
    nov = novelty(s, half)
    nov[:MIN_SECTION_BARS] = 0.0
    nov[n - MIN_SECTION_BARS + 1 :] = 0.0
    threshold = max(MIN_NOVELTY, RELATIVE_NOVELTY * float(nov.max()))
    padded = np.pad(nov, 1)
    is_peak = (nov >= padded[:-2]) & (nov > padded[2:]) & (nov >= threshold)
    out = [0]
    # Strongest first, so a weak neighbour never blocks a clear boundary.
    for i in sorted(np.flatnonzero(is_peak).tolist(), key=lambda j: -nov[j]):
        if all(abs(i - b) >= MIN_SECTION_BARS for b in out) and n - i >= MIN_SECTION_BARS:
            out.append(i)
    return sorted(out)


def _section_similarity(s: F64, a: tuple[int, int], b: tuple[int, int]) -> float:
    la, lb = a[1] - a[0], b[1] - b[0]
    m = min(la, lb)
    diag = s[np.arange(a[0], a[0] + m), np.arange(b[0], b[0] + m)]
    return float(diag.mean()) * math.sqrt(m / max(la, lb))


def _letter(i: int) -> str:
    letters = string.ascii_uppercase
    return letters[i] if i < 26 else f"{letters[i % 26]}{i // 26}"


def sections(s: F64) -> list[Section]:
    """Sections with form letters, covering every bar."""
    n = s.shape[0]
    if n == 0:
        return []
    cuts = [*boundaries(s), n]
    spans = list(pairwise(cuts))
    letters: list[str] = []
    used = 0
    for k, span in enumerate(spans):
        best, best_sim = None, SAME_SECTION
        for j in range(k):  # sections, not notes: a few dozen at most
            sim = _section_similarity(s, spans[j], span)
            if sim >= best_sim:
                best, best_sim = letters[j], sim
        if best is None:
            best = _letter(used)
            used += 1
        letters.append(best)
    return [Section(letter, a, b) for letter, (a, b) in zip(letters, spans, strict=True)]


def has_repeats(s: F64, empty: NDArray[np.bool_]) -> bool:
    """True if two consecutive sounding bars recur at some later point."""
    n = s.shape[0]
    if n < 3:
        return False
    sounding = ~empty
    m = (s >= REPEAT_SIMILARITY) & sounding[:, None] & sounding[None, :]
    m = np.triu(m, k=1)
    return bool((m[:-1, :-1] & m[1:, 1:]).any())
