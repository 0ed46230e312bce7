"""The transforms themselves: pure functions from scores to scores.

Everything works in ticks on the score's own grid (a beat is a quarter note, as in
MIDI). Nothing here touches the CAS or the protocol, so each function is tested
with hand-built scores and known answers.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace

from engines.errors import EngineError
from engines.transform.midi import MAX_TEMPO, MidiNote, Part, Score, TempoMap

# --- transpose -----------------------------------------------------------------------------

_PITCH_CLASSES = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
SCALES = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "minor": (0, 2, 3, 5, 7, 8, 10),  # natural minor
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "mixolydian": (0, 2, 4, 5, 7, 9, 10),
}
_KEY_RE = re.compile(r"^\s*([A-Ga-g])([#b]?)\s*(m|maj|min|major|minor|dorian|mixolydian)?\s*$")


@dataclass(frozen=True)
class Key:
    tonic: int  # pitch class 0..11
    scale: tuple[int, ...]


def parse_key(text: str) -> Key:
    """'C', 'Am', 'F# minor', 'Bb major', 'D dorian' -> tonic and scale."""
    match = _KEY_RE.match(text)
    if match is None:
        raise EngineError(
            f"cannot read key {text!r}; write it like 'C major', 'A minor' or 'Bb'",
            code="validation_failed",
            details={"errors": [{"loc": ["key"], "msg": "unknown key", "type": "value_error"}]},
        )
    letter, accidental, mode = match.groups()
    tonic = (_PITCH_CLASSES[letter.upper()] + {"#": 1, "b": -1, "": 0}[accidental]) % 12
    mode = {"m": "minor", "min": "minor", "maj": "major", None: "major"}.get(mode, mode)
    return Key(tonic, SCALES[mode])


def diatonic_shift(pitch: int, steps: int, key: Key) -> int:
    """Move ``pitch`` by ``steps`` scale degrees; a note outside the scale keeps its
    offset from the scale tone below it (in C major, C# up two steps is E# = F)."""
    rel = pitch - key.tonic
    octave, pc = divmod(rel, 12)
    degree = max(i for i, s in enumerate(key.scale) if s <= pc)
    offset = pc - key.scale[degree]
    n = len(key.scale)
    octave_shift, new_degree = divmod(degree + steps, n)
    return key.tonic + (octave + octave_shift) * 12 + key.scale[new_degree] + offset


def _fold(pitch: int) -> int:
    """Bring a pitch back into 0..127 by octaves (keeps the pitch class)."""
    while pitch > 127:
        pitch -= 12
    while pitch < 0:
        pitch += 12
    return pitch


def transpose(score: Score, semitones: int, *, steps: int = 0, key: Key | None = None) -> Score:
    """Chromatic (``semitones``) and/or diatonic (``steps`` in ``key``); drums never move."""
    if steps and key is None:
        raise ValueError("diatonic steps need a key")

    def move(pitch: int) -> int:
        if steps and key is not None:
            pitch = diatonic_shift(pitch, steps, key)
        return _fold(pitch + semitones)

    parts = tuple(
        part
        if part.is_drum
        else replace(part, notes=tuple(replace(n, pitch=move(n.pitch)) for n in part.notes))
        for part in score.parts
    )
    return replace(score, parts=parts)


# --- quantize ------------------------------------------------------------------------------


def _snap(tick: float, grid: float, swing: float) -> float:
    """Nearest grid point, odd points delayed by ``swing`` x grid."""
    k0 = math.floor(tick / grid)
    best = k0 * grid
    for k in range(k0 - 1, k0 + 3):
        point = k * grid + (swing * grid if k % 2 else 0.0)
        if abs(point - tick) < abs(best - tick):
            best = point
    return max(best, 0.0)


def quantize(
    score: Score,
    grid_beats: float,
    *,
    strength: float = 1.0,
    swing: float = 0.0,
    ends: bool = False,
) -> Score:
    """Pull note starts toward the grid by ``strength`` (0..1); durations kept unless ``ends``."""
    grid = grid_beats * score.ticks_per_beat

    def one(note: MidiNote) -> MidiNote:
        start = round(note.start + strength * (_snap(note.start, grid, swing) - note.start))
        if ends:
            target = max(_snap(note.end, grid, swing), _snap(note.start, grid, swing) + grid)
            end = round(note.end + strength * (target - note.end))
        else:
            end = start + (note.end - note.start)
        return replace(note, start=max(start, 0), end=max(end, start + 1))

    parts = tuple(
        replace(p, notes=tuple(sorted((one(n) for n in p.notes), key=lambda n: (n.start, n.pitch))))
        for p in score.parts
    )
    return replace(score, parts=parts)


# --- tempo ---------------------------------------------------------------------------------


def bpm_to_tempo(bpm: float) -> int:
    return min(max(round(60_000_000 / bpm), 1), MAX_TEMPO)


def change_tempo(score: Score, *, bpm: float | None = None, scale: float | None = None) -> Score:
    """Set one tempo for the whole piece, or scale every tempo (2.0 = twice as fast).

    Notes stay on their beats: only the tempo map changes, which is what a DAW expects.
    """
    if bpm is not None:
        tempos: tuple[tuple[int, int], ...] = ((0, bpm_to_tempo(bpm)),)
    elif scale is not None:
        tempos = tuple((t, min(max(round(us / scale), 1), MAX_TEMPO)) for t, us in score.tempos)
    else:
        raise ValueError("give bpm or scale")
    return replace(score, tempos=tempos)


def first_bpm(score: Score) -> float:
    return round(60_000_000 / score.tempos[0][1], 3)


# --- velocity shaping and humanize -------------------------------------------------------------

ACCENT_RANGE = (
    20.0  # velocity added at a downbeat (and taken off the weakest positions) at accent=1
)
CONTOUR_RANGE = 24.0  # peak-to-trough velocity of the phrase arch at contour=1


@dataclass(frozen=True)
class Shape:
    accent: float = 0.5
    contour: float = 0.3
    phrase_bars: int = 4
    spread: float = 1.0
    center: int | None = None
    min_velocity: int = 1
    max_velocity: int = 127


@dataclass(frozen=True)
class Jitter:
    timing_ms: float = 0.0
    velocity: int = 0
    seed: int = 0


class MeterGrid:
    """Bar and beat positions from the time-signature map."""

    def __init__(self, score: Score) -> None:
        self.tpb = score.ticks_per_beat
        self.segments: list[tuple[int, int, int, float]] = []  # start, num, den, first bar index
        bars = 0.0
        for i, (tick, num, den) in enumerate(score.meters):
            if i:
                prev_tick, prev_num, prev_den, _ = self.segments[-1]
                bars += (tick - prev_tick) / self._bar_len(prev_num, prev_den)
            self.segments.append((tick, num, den, math.ceil(bars - 1e-9)))

    def _bar_len(self, num: int, den: int) -> float:
        return num * self.tpb * 4 / den

    def locate(self, tick: int) -> tuple[float, float, int, int]:
        """(bar index as a float, position in bar in ticks, numerator, denominator)."""
        seg = self.segments[0]
        for candidate in self.segments:
            if candidate[0] <= tick:
                seg = candidate
        start, num, den, first_bar = seg
        bar_len = self._bar_len(num, den)
        rel = (tick - start) / bar_len
        return first_bar + rel, (tick - start) % bar_len, num, den

    def weight(self, tick: int) -> float:
        """Metrical strength 0..1: downbeat 1, mid-bar .75, beats .5, half-beats .25, else 0."""
        _, pos, num, den = self.locate(tick)
        beat = self.tpb * 4 / den
        if den >= 8 and num % 3 == 0 and num > 3:
            beat *= 3  # compound meter: the felt beat is the dotted group
        tol = self.tpb / 16

        def on(unit: float) -> bool:
            r = pos % unit
            return r < tol or unit - r < tol

        bar_len = self._bar_len(num, den)
        if on(bar_len):
            return 1.0
        beats_per_bar = round(bar_len / beat)
        if beats_per_bar % 2 == 0 and beats_per_bar >= 4 and on(bar_len / 2):
            return 0.75
        if on(beat):
            return 0.5
        if on(beat / 2):
            return 0.25
        return 0.0


def shape_velocity(score: Score, shape: Shape, jitter: Jitter | None = None) -> Score:
    """Velocity from metrical position and phrase arch, optionally with seeded human jitter."""
    grid = MeterGrid(score)
    tmap = TempoMap(score.tempos, score.ticks_per_beat)
    rng = random.Random(jitter.seed if jitter else 0)
    all_velocities = [n.velocity for p in score.parts for n in p.notes]
    mean = sum(all_velocities) / len(all_velocities) if all_velocities else 64.0
    center = float(shape.center) if shape.center is not None else mean

    def one(note: MidiNote) -> MidiNote:
        bar, _, _, _ = grid.locate(note.start)
        phrase_pos = (bar % shape.phrase_bars) / shape.phrase_bars
        arch = math.sin(math.pi * phrase_pos)  # 0 at the phrase start, 1 in its middle
        v = center + shape.spread * (note.velocity - mean)
        v += shape.accent * ACCENT_RANGE * (2 * grid.weight(note.start) - 1)
        v += shape.contour * CONTOUR_RANGE * (arch - 0.5)
        start, end = note.start, note.end
        if jitter is not None:
            if jitter.velocity:
                v += rng.randint(-jitter.velocity, jitter.velocity)
            if jitter.timing_ms:
                ticks_per_ms = score.ticks_per_beat * 1000 / tmap.tempo_at(start)
                shift = round(rng.uniform(-jitter.timing_ms, jitter.timing_ms) * ticks_per_ms)
                shift = max(shift, -start)
                start, end = start + shift, end + shift
        velocity = min(max(round(v), shape.min_velocity), shape.max_velocity)
        return MidiNote(start, end, note.pitch, velocity)

    parts = tuple(
        replace(p, notes=tuple(sorted((one(n) for n in p.notes), key=lambda n: (n.start, n.pitch))))
        for p in score.parts
    )
    return replace(score, parts=parts)


# --- merge, split, extract ------------------------------------------------------------------


def rescale(score: Score, ticks_per_beat: int) -> Score:
    """The same music on another tick resolution."""
    if ticks_per_beat == score.ticks_per_beat:
        return score
    f = ticks_per_beat / score.ticks_per_beat

    def t(tick: int) -> int:
        return round(tick * f)

    parts = tuple(
        replace(
            p,
            notes=tuple(
                MidiNote(t(n.start), max(t(n.end), t(n.start) + 1), n.pitch, n.velocity)
                for n in p.notes
            ),
            controls=tuple((t(tick), msg) for tick, msg in p.controls),
        )
        for p in score.parts
    )
    return Score(
        ticks_per_beat=ticks_per_beat,
        tempos=tuple((t(a), b) for a, b in score.tempos),
        meters=tuple((t(a), n, d) for a, n, d in score.meters),
        keys=tuple((t(a), k) for a, k in score.keys),
        parts=parts,
    )


def shift(part: Part, ticks: int) -> Part:
    return replace(
        part,
        notes=tuple(replace(n, start=n.start + ticks, end=n.end + ticks) for n in part.notes),
        controls=tuple((tick + ticks, msg) for tick, msg in part.controls),
    )


def merge(sources: Sequence[tuple[str, Score]], offsets_beats: dict[str, float]) -> Score:
    """All parts of all sources in one score; tempo, meter and key come from the first."""
    tpb = max(score.ticks_per_beat for _, score in sources)
    base = rescale(sources[0][1], tpb)
    names: set[str] = set()
    parts: list[Part] = []
    for label, score in sources:
        offset = round(offsets_beats.get(label, 0.0) * tpb)
        for part in rescale(score, tpb).parts:
            name = part.name or label
            if name in names:
                name = f"{name} ({label})"
            names.add(name)
            parts.append(replace(shift(part, offset), name=name))
    return replace(base, parts=tuple(parts))


def split(score: Score, by: str) -> list[tuple[str, Score]]:
    """One score per part (``by="part"``) or per instrument (``by="instrument"``)."""
    groups: dict[object, list[Part]] = {}
    for index, part in enumerate(score.parts):
        key: object = index if by == "part" else part.instrument
        groups.setdefault(key, []).append(part)
    return [(parts[0].name, replace(score, parts=tuple(parts))) for parts in groups.values()]


def extract(
    score: Score,
    *,
    program: int | None = None,
    drums: bool = False,
    track: int | None = None,
    name: str | None = None,
) -> Score:
    """Keep only the matching parts; ``no_match`` (listing what is there) if none match."""

    def keep(index: int, part: Part) -> bool:
        if drums:
            return part.is_drum
        if program is not None:
            return not part.is_drum and part.program == program
        if track is not None:
            return index == track
        return name is not None and name.casefold() in part.name.casefold()

    kept = tuple(p for i, p in enumerate(score.parts) if keep(i, p))
    if not kept:
        available = [
            {"track": i, "name": p.name, "program": p.program, "drums": p.is_drum}
            for i, p in enumerate(score.parts)
        ]
        raise EngineError(
            "no part of the input matches", code="no_match", details={"parts": available}
        )
    return replace(score, parts=kept)
