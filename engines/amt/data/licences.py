"""Read the licence / copyright text embedded in a score file and decide if it may be used.

Rule (issue 7: "skip any that restricts use"): a file is used when it carries no rights text,
when its rights text names a free licence or the public domain, or when it is an empty
notation-software placeholder ("Copyright ©" with no holder), or a notice scoped to the
typeset PDF it was transcribed from. It is skipped when the text reserves rights, refers to
a licensing agreement, says "by permission", limits commercial use, or is a copyright claim
by a holder without a free licence (e.g. a publisher's edition).
"""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

_RIGHTS_PATTERNS = (
    re.compile(r"<rights[^>]*>(.*?)</rights>", re.S | re.I),
    re.compile(r"<credit-words[^>]*>([^<]*(?:copyright|licen[cs]e|rights|©)[^<]*)<", re.S | re.I),
    re.compile(r"^!!!(?:YEM|COP|YER)[^:]*:(.*)$", re.M),  # humdrum reference records
    re.compile(r"^%.*?((?:copyright|licen[cs]e|all rights).*)$", re.M | re.I),  # abc comments
)
_FREE = re.compile(
    r"public domain|\bcc0\b|creative commons|cc[- ]by|cc-sa-by|freely distributed", re.I
)
_RESTRICTIVE = re.compile(
    r"reserved|licensing agreement|non-?commercial|not for commercial|without permission|"
    r"by permission|\bnc\b",
    re.I,
)
_CLAIM = re.compile(r"copyright|©|\(c\)", re.I)
# A notice scoped to the typeset PDF / engraving a file was transcribed from (e.g. the Bach
# chorales' "PDF © 2004 Margaret Greentree") covers that layout, not the notes or their use.
_LAYOUT = re.compile(r"^(pdf|engraving|typeset(ting)?)\b", re.I)
# Notation-software boilerplate that is not about the music (Finale binary headers).
_SOFTWARE = re.compile(r"makemusic", re.I)


@dataclass(frozen=True)
class Licence:
    allowed: bool
    kind: str  # "none", "free", "placeholder", "layout", "restricted", "claim"
    text: str  # the rights text found (joined, shortened)


def _read_text(path: Path) -> str:
    if path.suffix.lower() == ".mxl":
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if not n.startswith("META-INF")]
            return "\n".join(archive.read(n).decode("utf-8", "replace") for n in names)
    return path.read_bytes().decode("utf-8", "replace")


def rights_texts(text: str) -> list[str]:
    """All rights statements in a score's text, whitespace-normalised, in order, unique."""
    found: list[str] = []
    for pattern in _RIGHTS_PATTERNS:
        for match in pattern.findall(text):
            cleaned = " ".join(str(match).split())
            if cleaned and not _SOFTWARE.search(cleaned) and cleaned not in found:
                found.append(cleaned)
    return found


def classify(texts: list[str]) -> Licence:
    """Decide from the rights statements of one file."""
    joined = " | ".join(texts)[:500]
    if not texts:
        return Licence(True, "none", "")
    if any(_RESTRICTIVE.search(t) for t in texts):
        return Licence(False, "restricted", joined)
    if any(_FREE.search(t) for t in texts):
        return Licence(True, "free", joined)
    # A bare "©" / "Copyright ©" with no holder or year is a notation program's template.
    residue = [_CLAIM.sub("", t).strip(" .,:;-") for t in texts]
    if all(not r for r in residue):
        return Licence(True, "placeholder", joined)
    if all(_LAYOUT.search(t) for t in texts):
        return Licence(True, "layout", joined)
    # Anything else is a rights holder's statement without a free licence (e.g. a
    # publisher's edition notice): unclear terms, so the file is not used.
    return Licence(False, "claim", joined)


def read_licence(path: Path) -> Licence:
    """The licence decision for one score file."""
    return classify(rights_texts(_read_text(path)))
