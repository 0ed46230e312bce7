"""Motifs: interval-and-rhythm patterns that recur in a part (transposition allowed).

Each pitched instrument is reduced to its top line (highest note per onset).  A note-to-note step
is a token (interval in semitones, inter-onset time in 1/12 beats); every window of L tokens is
hashed in one vectorised pass, so counting all patterns of one length is a single ``np.unique``.
Longer patterns are chosen first; a shorter one is kept only if it occurs somewhere new.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray
from pydantic import BaseModel, ConfigDict

from engines.analysis.gm import note_name
from engines.analysis.notes import NoteArrays, ParsedMidi

I64 = NDArray[np.int64]

MIN_LEN, MAX_LEN = 3, 12  # tokens, i.e. 4 to 13 notes
MAX_MOTIFS = 10
MAX_OCCURRENCES = 50
CANDIDATES_PER_LENGTH = 40
RHYTHM_GRID = 12  # tokens compare inter-onset times in 1/12 beat
_HASH_MUL = np.int64(1_000_003)


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class MotifOccurrence(_Model):
    track: int
    bar: int  # 1-based
    beat: float  # 1-based, quarter notes into the bar
    time_seconds: float
    start_pitch: str
    transposition: int  # semitones relative to the first occurrence


class Motif(_Model):
    intervals: list[int]
    rhythm_beats: list[float]  # inter-onset times
    notes: int
    count: int
    bars: list[int]
    occurrences: list[MotifOccurrence]


class MotifAnalysis(_Model):
    motifs: list[Motif]


def top_line(notes: NoteArrays) -> NoteArrays:
    """Highest pitched note per (track, onset), ordered by track then time."""
    keep = ~notes.is_drum
    order = np.lexsort((-notes.pitch[keep], notes.onset_ticks[keep], notes.track[keep]))
    sel = np.flatnonzero(keep)[order]
    t, o = notes.track[sel], notes.onset_ticks[sel]
    first = np.ones(sel.shape[0], dtype=bool)
    first[1:] = (t[1:] != t[:-1]) | (o[1:] != o[:-1])
    mask = np.zeros(len(notes), dtype=bool)
    mask[sel[first]] = True
    line = notes.select(mask)
    # select keeps time order; regroup by track (stable, so time order holds inside a track)
    return _take(line, np.argsort(line.track, kind="stable"))


def _take(n: NoteArrays, idx: I64) -> NoteArrays:
    return NoteArrays(
        onset_ticks=n.onset_ticks[idx], duration_ticks=n.duration_ticks[idx], pitch=n.pitch[idx],
        velocity=n.velocity[idx], program=n.program[idx], is_drum=n.is_drum[idx],
        track=n.track[idx], tempo=n.tempo,
    )


def _tokens(line: NoteArrays) -> tuple[I64, NDArray[np.bool_]]:
    """Token per step i -> i+1, and whether the step stays inside one track."""
    interval = np.diff(line.pitch)
    ioi = np.round(np.diff(line.onset_beats) * RHYTHM_GRID).astype(np.int64)
    valid = (line.track[1:] == line.track[:-1]) & (ioi > 0) & (ioi <= 8 * RHYTHM_GRID)
    tok = (np.clip(interval, -36, 36) + 36) * 1000 + np.clip(ioi, 0, 999)
    return tok.astype(np.int64), valid


def _hashes(tok: I64, valid: NDArray[np.bool_], length: int) -> tuple[I64, I64]:
    """Hash of each window of ``length`` tokens, and the window starts that are usable."""
    win = sliding_window_view(tok, length)
    ok = sliding_window_view(valid, length).all(axis=1)
    h = np.zeros(win.shape[0], dtype=np.int64)
    for j in range(length):  # per token position (<= 12), not per note; int64 wrap is the hash
        h = h * _HASH_MUL + win[:, j]
    starts = np.flatnonzero(ok)
    return h[starts], starts


def _non_overlapping(starts: I64, length: int) -> list[int]:
    out: list[int] = []
    for s in starts.tolist():
        if not out or s > out[-1] + length:
            out.append(s)
    return out


def _trivial(tok: I64) -> bool:
    """One repeated step (an even scale run) or only repeated notes is texture, not a motif."""
    return bool((tok == tok[0]).all() or (tok // 1000 == 36).all())


def analyze_motifs(p: ParsedMidi) -> MotifAnalysis:
    line = top_line(p.notes)
    if len(line) < MIN_LEN + 2:
        return MotifAnalysis(motifs=[])
    tok, valid = _tokens(line)
    covered = np.zeros(len(line), dtype=bool)
    chosen: list[tuple[int, list[int]]] = []  # (length, occurrence starts)
    for length in range(min(MAX_LEN, tok.shape[0]), MIN_LEN - 1, -1):
        hashes, starts = _hashes(tok, valid, length)
        if hashes.shape[0] == 0:
            continue
        _, inverse, counts = np.unique(hashes, return_inverse=True, return_counts=True)
        cand = np.flatnonzero(counts >= 2)
        cand = cand[np.argsort(-counts[cand], kind="stable")][:CANDIDATES_PER_LENGTH]
        for c in cand.tolist():  # a few dozen candidates per length
            occ = _non_overlapping(starts[inverse == c], length)
            if len(occ) < 2 or _trivial(tok[occ[0] : occ[0] + length]):
                continue
            fresh = [s for s in occ if not covered[s : s + length + 1].any()]
            if not fresh:
                continue  # every occurrence lies inside a longer motif already reported
            for s in occ:
                covered[s : s + length + 1] = True
            chosen.append((length, occ))
    chosen.sort(key=lambda c: -(c[0] + 1) * len(c[1]))
    return MotifAnalysis(motifs=[_describe(p, line, tok, ln, occ) for ln, occ in chosen[:MAX_MOTIFS]])


def _describe(p: ParsedMidi, line: NoteArrays, tok: I64, length: int, occ: list[int]) -> Motif:
    first = occ[0]
    idx = np.asarray(occ[:MAX_OCCURRENCES], dtype=np.int64)
    ticks = line.onset_ticks[idx]
    bars = p.bar_of_ticks(ticks)
    secs = line.onset_s[idx]
    base = int(line.pitch[first])
    occurrences = [
        MotifOccurrence(
            track=int(line.track[i]),
            bar=int(b) + 1,
            beat=round(1.0 + (float(t) - float(p.bar_starts_ticks[b])) / p.tpq, 3),
            time_seconds=round(float(s), 3),
            start_pitch=note_name(int(line.pitch[i])),
            transposition=int(line.pitch[i]) - base,
        )
        for i, t, b, s in zip(idx.tolist(), ticks.tolist(), bars.tolist(), secs.tolist(), strict=True)
    ]
    steps = tok[first : first + length]
    return Motif(
        intervals=(steps // 1000 - 36).tolist(),
        rhythm_beats=[round(x / RHYTHM_GRID, 3) for x in (steps % 1000).tolist()],
        notes=length + 1,
        count=len(occ),
        bars=sorted({o.bar for o in occurrences}),
        occurrences=occurrences,
    )
