"""``analyze``: metadata plus the analyses a caller selects by name."""

from __future__ import annotations

from collections.abc import Callable, Sequence

from pydantic import BaseModel, ConfigDict

from engines.analysis.errors import AnalysisError
from engines.analysis.harmony import HarmonyAnalysis, Resolution, analyze_harmony
from engines.analysis.metadata import metadata_from_parsed
from engines.analysis.models import MidiMetadata
from engines.analysis.motifs import MotifAnalysis, analyze_motifs
from engines.analysis.notes import ParsedMidi, parse_midi
from engines.analysis.rhythm import RhythmAnalysis, analyze_rhythm
from engines.analysis.structure import StructureAnalysis, analyze_structure

ANALYSES: tuple[str, ...] = ("structure", "motifs", "harmony", "rhythm")


class AnalysisReport(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    metadata: MidiMetadata
    structure: StructureAnalysis | None = None
    motifs: MotifAnalysis | None = None
    harmony: HarmonyAnalysis | None = None
    rhythm: RhythmAnalysis | None = None


def validate_analyses(names: Sequence[str]) -> list[str]:
    """The requested names, de-duplicated in order; unknown ones raise ``unknown_analysis``."""
    if isinstance(names, str):  # a bare "harmony" would otherwise iterate by character
        names = [names]
    unknown = [n for n in names if n not in ANALYSES]
    if unknown:
        raise AnalysisError(
            f"unknown analysis {', '.join(map(repr, unknown))}; valid: {', '.join(ANALYSES)}",
            code="unknown_analysis",
            details={"unknown": unknown, "valid": list(ANALYSES)},
        )
    return list(dict.fromkeys(names))


def analyze(
    midi: bytes, analyses: Sequence[str], *, chord_resolution: Resolution = "bar"
) -> AnalysisReport:
    """Metadata plus each requested analysis (``structure``, ``motifs``, ``harmony``, ``rhythm``).

    Names are checked before the MIDI is parsed; bad bytes raise ``AnalysisError`` (invalid_midi).
    """
    wanted = validate_analyses(analyses)
    p = parse_midi(midi)
    runners: dict[str, Callable[[ParsedMidi], BaseModel]] = {
        "structure": analyze_structure,
        "motifs": analyze_motifs,
        "harmony": lambda parsed: analyze_harmony(parsed, chord_resolution),
        "rhythm": analyze_rhythm,
    }
    results = {name: runners[name](p) for name in wanted}
    return AnalysisReport(metadata=metadata_from_parsed(p), **results)
