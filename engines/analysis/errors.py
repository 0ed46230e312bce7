"""The analysis package's error: invalid input reported as structured data."""

from __future__ import annotations

from engines.errors import EngineError


class AnalysisError(EngineError):
    """Raised for MIDI the analysis cannot read, and for unknown analysis names.

    ``code`` is ``invalid_midi`` (bad or truncated bytes), ``unsupported_midi`` (valid but outside
    what we handle, e.g. SMPTE time division) or ``unknown_analysis``; ``details`` names what is wrong.
    """
