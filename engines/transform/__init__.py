"""The MIDI transform engine: transpose, quantize, tempo, velocity/humanize, merge, split, extract."""

from engines.transform.engine import TransformEngine

__all__ = ["TransformEngine"]
