"""Structure analysis: form letters with bar ranges (e.g. A B A)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from engines.analysis.form import has_repeats, sections
from engines.analysis.notes import ParsedMidi
from engines.analysis.similarity import bar_features, self_similarity


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class FormSection(_Model):
    letter: str
    start_bar: int  # 1-based, inclusive
    end_bar: int  # 1-based, inclusive
    start_seconds: float
    end_seconds: float


class StructureAnalysis(_Model):
    form: str  # letters separated by spaces, "A B A"
    sections: list[FormSection]
    repeats: bool


def analyze_structure(p: ParsedMidi) -> StructureAnalysis:
    feats = bar_features(p)
    ssm = self_similarity(feats)
    found = sections(ssm)
    bar_sec = p.tempo.to_seconds(p.bar_starts_ticks)
    end_s = p.end_s

    def seconds(bar: int) -> float:
        return round(float(bar_sec[bar]) if bar < p.n_bars else end_s, 3)

    out = [
        FormSection(letter=s.letter, start_bar=s.start_bar + 1, end_bar=s.end_bar,
                    start_seconds=seconds(s.start_bar), end_seconds=seconds(s.end_bar))
        for s in found
    ]
    return StructureAnalysis(
        form=" ".join(s.letter for s in found), sections=out, repeats=has_repeats(ssm, feats.empty)
    )
