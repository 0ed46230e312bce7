"""Chord recognition by template matching, and roman numerals relative to a key."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from engines.analysis.gm import PITCH_CLASS_NAMES

F64 = NDArray[np.float64]
I64 = NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class Quality:
    name: str
    intervals: tuple[int, ...]
    suffix: str  # chord-symbol suffix: "m", "7", ...
    minor_case: bool  # lower-case numeral (minor-third chords)
    figure: str  # numeral suffix: "°", "7", ...
    prior: float  # bias: a triad plus a passing tone should stay a triad


QUALITIES: tuple[Quality, ...] = (
    Quality("major", (0, 4, 7), "", False, "", 0.0),
    Quality("minor", (0, 3, 7), "m", True, "", 0.0),
    Quality("diminished", (0, 3, 6), "dim", True, "°", -0.03),
    Quality("augmented", (0, 4, 8), "aug", False, "+", -0.05),
    Quality("dominant7", (0, 4, 7, 10), "7", False, "7", -0.05),
    Quality("major7", (0, 4, 7, 11), "maj7", False, "maj7", -0.08),
    Quality("minor7", (0, 3, 7, 10), "m7", True, "7", -0.07),
    Quality("half-diminished7", (0, 3, 6, 10), "m7b5", True, "ø7", -0.06),
)
BASS_BONUS = 0.08  # the lowest note is usually the root

# Degree names by semitone above the tonic; the minor table follows the natural minor scale, with
# the raised leading tone written as in textbooks (V, vii°).
MAJOR_DEGREES = ("I", "bII", "II", "bIII", "III", "IV", "#IV", "V", "bVI", "VI", "bVII", "VII")
MINOR_DEGREES = ("I", "bII", "II", "III", "#III", "IV", "#IV", "V", "VI", "#VI", "VII", "VII")


def _templates() -> tuple[F64, F64]:
    rows, prior = [], []
    for q in QUALITIES:
        for root in range(12):
            t = np.zeros(12)
            t[[(root + i) % 12 for i in q.intervals]] = 1.0
            rows.append(t / np.linalg.norm(t))
            prior.append(q.prior)
    return np.stack(rows), np.asarray(prior)


_TEMPLATES, _PRIOR = _templates()


@dataclass(frozen=True, slots=True)
class ChordGuess:
    root: int
    quality: Quality
    score: float

    @property
    def symbol(self) -> str:
        return PITCH_CLASS_NAMES[self.root] + self.quality.suffix


def recognise(chroma: F64, bass: I64) -> list[ChordGuess | None]:
    """Best chord per row of a (n, 12) chroma matrix; None where nothing sounds."""
    norm = np.linalg.norm(chroma, axis=1, keepdims=True)
    unit = chroma / np.where(norm > 0, norm, 1.0)
    scores = unit @ _TEMPLATES.T + _PRIOR  # (n, 96): quality-major order, root minor
    roots = np.tile(np.arange(12), len(QUALITIES))
    scores = scores + BASS_BONUS * (roots[None, :] == bass[:, None])
    best = np.argmax(scores, axis=1)
    return [
        ChordGuess(int(b % 12), QUALITIES[int(b // 12)], float(scores[i, b])) if norm[i, 0] > 0 else None
        for i, b in enumerate(best)
    ]


def roman_numeral(chord: ChordGuess, tonic: int, mode: str) -> str:
    degree = (chord.root - tonic) % 12
    base = (MAJOR_DEGREES if mode == "major" else MINOR_DEGREES)[degree]
    accidental = base[0] if base[0] in "b#" else ""
    numeral = base[len(accidental):]
    if mode == "minor" and degree == 11:
        accidental = ""  # leading-tone chord on the raised 7th: vii°, not #vii°
    numeral = numeral.lower() if chord.quality.minor_case else numeral
    return accidental + numeral + chord.quality.figure
