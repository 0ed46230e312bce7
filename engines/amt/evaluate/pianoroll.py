"""Piano-roll pictures of pieces (PNG, no plotting library): what ``tutti eval --out``
draws so a musician can look at the generated pieces instead of reading statistics.

One strip per piece, time left to right (``PIXELS_PER_SECOND``), pitch bottom to top over
the pitches the pieces use, one colour per General MIDI instrument family, a faint line every
second and at every C.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import numpy.typing as npt

from engines.amt import vocab as V
from engines.amt.evaluate.events import Notes

PIXELS_PER_SECOND = 20
LOWEST, HIGHEST = 21, 108  # A0..C8
PITCH_PIXELS = 2
GAP = 6  # pixels between strips
BACKGROUND = (250, 250, 247)
GRID = (228, 228, 222)
# one colour per GM family of 8 programs (piano, chromatic perc., organ, guitar, bass,
# strings, ensemble/choir, brass, reed, pipe, synth lead, pad, fx, ethnic, perc., sfx)
FAMILY_COLOURS = (
    (40, 70, 160), (0, 140, 150), (120, 60, 160), (200, 120, 0), (90, 60, 30),
    (190, 40, 50), (60, 140, 60), (220, 160, 0), (30, 120, 200), (100, 170, 220),
    (230, 80, 150), (150, 150, 200), (120, 120, 120), (160, 100, 60), (60, 60, 60),
    (90, 90, 90),
)


def render(pieces: Sequence[Notes], seconds: float) -> npt.NDArray[np.uint8]:
    """RGB image ``[height, width, 3]`` with one strip per piece."""
    width = max(1, round(seconds * PIXELS_PER_SECOND))
    used = [int(p) for n in pieces if len(n) for p in (n.pitch.min(), n.pitch.max())]
    # the pitches in use (an octave at least), not the whole keyboard
    low = max(LOWEST, min(used, default=60) - 2)
    high = min(HIGHEST, max(max(used, default=72) + 2, low + 12))
    strip = (high - low + 1) * PITCH_PIXELS
    height = max(1, len(pieces) * (strip + GAP) - GAP)
    image = np.empty((height, width, 3), dtype=np.uint8)
    image[:] = BACKGROUND
    for k, notes in enumerate(pieces):
        top = k * (strip + GAP)
        area = image[top : top + strip]
        area[:, ::PIXELS_PER_SECOND] = GRID
        for c in range(low + (12 - low % 12) % 12, high + 1, 12):
            row = strip - (c - low + 1) * PITCH_PIXELS
            area[row + PITCH_PIXELS - 1, :] = GRID
        for onset, duration, pitch, instrument in zip(
            notes.onset, notes.duration, notes.pitch, notes.instrument, strict=True
        ):
            if not low <= pitch <= high:
                continue
            x0 = int(onset * PIXELS_PER_SECOND / V.TIME_RESOLUTION)
            x1 = max(x0 + 1, int((onset + duration) * PIXELS_PER_SECOND / V.TIME_RESOLUTION))
            if x0 >= width:
                continue
            row = strip - (int(pitch) - low + 1) * PITCH_PIXELS
            area[row : row + PITCH_PIXELS, x0 : min(x1, width)] = FAMILY_COLOURS[
                int(instrument) // 8 % len(FAMILY_COLOURS)
            ]
    return image


def encode_png(image: npt.NDArray[np.uint8]) -> bytes:
    """A truecolour 8-bit PNG of an ``[height, width, 3]`` uint8 image."""
    height, width, _ = image.shape
    raw = np.concatenate(
        [np.zeros((height, 1), dtype=np.uint8), image.reshape(height, width * 3)], axis=1
    )  # filter type 0 per scanline

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw.tobytes(), 9))
        + chunk(b"IEND", b"")
    )


def write_piano_rolls(pieces: Sequence[Notes], seconds: float, path: Path) -> Path:
    path.write_bytes(encode_png(render(pieces, seconds)))
    return path
