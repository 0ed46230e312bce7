"""Which music21 corpus collections and files make up the training corpus (issue 7 §1)."""

from __future__ import annotations

from pathlib import Path
from typing import Final

ALLOWED_COLLECTIONS: Final = (
    "bach", "beethoven", "haydn", "mozart", "monteverdi", "handel", "cpebach", "chopin",
    "schubert", "joplin", "schumann_clara", "schumann_robert", "verdi", "weber", "beach",
    "liliuokalani", "lusitano", "luca", "ciconia", "corelli", "oneills1850", "ryansMammoth",
    "airdsAirs", "miscFolk",
)  # fmt: skip

# Collection -> why it is left out (repeated in the data card and the manifest).
EXCLUDED_COLLECTIONS: Final = {
    "essenFolksong": "encoding licence restricts use",
    "palestrina": "encoding licence restricts use",
    "trecento": "copyright notices in the files",
    "josquin": "copyright notices in the files",
    "schoenberg": "compositions still in copyright in many countries",
    "webern": "compositions still in copyright in many countries",
    "demos": "test and demo material, not repertoire",
    "theoryExercises": "exercises, not repertoire",
    "leadSheet": "lead sheets of copyrighted songs / not repertoire scores",
    "nottingham-dataset": "excluded by issue 7",
    "johnson_j_r": "not in the issue's list of collections",
}

# Score formats music21 reads, best first: when one movement exists in several formats
# (e.g. beethoven/opus18no1/movement1.krn and .mxl) only the first is used.
FORMAT_PREFERENCE: Final = (".mxl", ".xml", ".musicxml", ".krn", ".abc")
# .rntxt are Roman-numeral analyses (not notes); .mus/.musx are Finale binaries duplicating
# an .xml/.mxl next to them that music21 cannot read.
IGNORED_SUFFIXES: Final = (".rntxt", ".mus", ".musx")


def corpus_root() -> Path:
    """The ``corpus`` folder of the installed music21 package."""
    import music21  # local import: training machines have no music21

    return Path(music21.__file__).parent / "corpus"


def collection_of(rel_path: str) -> str:
    """``bach/bwv1.6.mxl`` -> ``bach``."""
    return rel_path.split("/", 1)[0]


def list_files(root: Path, collections: tuple[str, ...] = ALLOWED_COLLECTIONS) -> list[str]:
    """Score files (paths relative to ``root``, sorted) of the allowed collections, deduplicated."""
    chosen: dict[tuple[str, str], tuple[int, str]] = {}
    for name in collections:
        if name in EXCLUDED_COLLECTIONS or name not in ALLOWED_COLLECTIONS:
            raise ValueError(f"collection {name!r} is not allowed")
        for path in (root / name).rglob("*"):
            suffix = path.suffix.lower()
            if not path.is_file() or suffix not in FORMAT_PREFERENCE:
                continue
            rel = path.relative_to(root).as_posix()
            key = (str(path.parent), path.stem)
            rank = FORMAT_PREFERENCE.index(suffix)
            if key not in chosen or rank < chosen[key][0]:
                chosen[key] = (rank, rel)
    return sorted(rel for _rank, rel in chosen.values())
