"""Musical metadata and analyses of MIDI files (pure library code, no I/O).

Public entry points: ``compute_metadata(bytes) -> MidiMetadata``, ``analyze(bytes, names) ->
AnalysisReport`` and ``parse_midi(bytes) -> ParsedMidi``; errors are ``AnalysisError``.
"""

from engines.analysis.errors import AnalysisError
from engines.analysis.metadata import compute_metadata
from engines.analysis.models import MidiMetadata
from engines.analysis.notes import ParsedMidi, parse_midi
from engines.analysis.report import ANALYSES, AnalysisReport, analyze

__all__ = [
    "ANALYSES",
    "AnalysisError",
    "AnalysisReport",
    "MidiMetadata",
    "ParsedMidi",
    "analyze",
    "compute_metadata",
    "parse_midi",
]
