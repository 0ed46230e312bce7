"""General MIDI program for a score part, from its instrument / part name.

music21 mostly yields a generic ``Instrument`` whose MIDI program is unknown, so a plain
MIDI export makes every part a piano. The names ("Violoncello", "Soprano", "Horn 2",
"Canto") are what carry the information; they are matched here against a small table.
"""

from __future__ import annotations

import re
from typing import Final

PIANO: Final = 0
CHOIR: Final = 52  # "Choir Aahs": every sung part
VIOLIN: Final = 40
PICCOLO: Final = 72

# (pattern on the lower-cased name, GM program); the first match wins, so specific
# names ("bass clarinet", "basso continuo") come before generic ones ("bass").
_TABLE: Final[tuple[tuple[str, int], ...]] = (
    (r"bass clarinet|clarinetto basso", 71),
    (r"contrabassoon|contrafagotto|bassoon|fagott|basson", 70),
    (r"basso continuo|continuo|violone|contrabass|double bass|kontrabass|\bcb\b", 43),
    (r"violoncell|\bcello|\bvc\b|\bvlc\b", 42),
    (r"viola\b|\bvla\b|\bva\b|bratsche", 41),
    (r"violin|violino|\bvn\b|\bvl\b|fiddle|geige", VIOLIN),
    (r"piccolo|fife", PICCOLO),
    (r"flute|flauto|flöte|traverso|\bfl\b", 73),
    (r"recorder|flauto dolce", 74),
    (r"english horn|cor anglais|corno inglese", 69),
    (r"oboe|hautbois|\bob\b", 68),
    (r"clarinet|clarinetto|\bcl\b", 71),
    (r"horn|corno|\bhn\b|\bcor\b", 60),
    (r"trumpet|tromba|clarino|\btpt?\b", 56),
    (r"trombone|\btbn\b", 57),
    (r"tuba", 58),
    (r"timpani|pauken", 47),
    (r"\bharp\b|\barpa\b", 46),  # not "harpsichord"
    (r"guitar|chitarra|lute|liuto|theorbo", 24),
    (
        r"piano|klavier|keyboard|cembalo|harpsichord|organ|organo|orgel|clavichord|"
        r"fortepiano|\bpf\b|\bpno\b",
        PIANO,
    ),
    (
        r"soprano|mezzo|alto|contralto|tenor|baritone|bass|basso|voice|vox|voce|choir|"
        r"chorus|coro|canto|cantus|quinto|sesto|altus|bassus|superius|contratenor|"
        r"triplum|motetus|singst|gesang|\b[satb]\.?$|\b[satb]\d?$",
        CHOIR,
    ),
)
_COMPILED: Final = tuple((re.compile(p), prog) for p, prog in _TABLE)

# Collection (or file) defaults when a part names no instrument at all.
COLLECTION_DEFAULTS: Final = {
    "ryansMammoth": VIOLIN,  # "Ryan's Mammoth Collection" of fiddle tunes
    "oneills1850": VIOLIN,  # O'Neill's dance music, mostly fiddle/pipes
    "airdsAirs": VIOLIN,  # Aird's airs "for the violin, German flute or fife"
    "miscFolk/americanfifeopus.abc": PICCOLO,  # fife music (GM has no fife)
    "miscFolk": VIOLIN,
    "joplin": PIANO,
    "chopin": PIANO,
}


def program_from_names(*names: str | None) -> int | None:
    """GM program for the first name that matches the table, else None."""
    for name in names:
        if not name:
            continue
        lowered = name.strip().lower()
        for pattern, program in _COMPILED:
            if pattern.search(lowered):
                return program
    return None


def default_program(rel_path: str) -> int:
    """Fallback program for a file whose parts name no instrument."""
    for key in (rel_path, rel_path.split("/", 1)[0]):
        if key in COLLECTION_DEFAULTS:
            return COLLECTION_DEFAULTS[key]
    return PIANO


def part_program(
    rel_path: str, names: list[str | None], music21_program: int | None
) -> tuple[int, str]:
    """(GM program, how it was found) for one part."""
    program = program_from_names(*names)
    if program is not None:
        return program, "name"
    if music21_program is not None and 0 <= music21_program < 128:
        return music21_program, "music21"
    return default_program(rel_path), "default"
