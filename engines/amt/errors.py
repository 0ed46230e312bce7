"""Errors raised by the AMT codec and sampler."""

from __future__ import annotations

from engines.errors import EngineError


class CodecError(EngineError):
    """A MIDI file or token sequence that the AMT codec cannot read or write."""

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message, code="amt_codec_error", details=details)


class SamplerError(EngineError):
    """Invalid sampler input (bad window, bad parameters, model output of the wrong shape)."""

    def __init__(self, message: str, *, details: dict[str, object] | None = None) -> None:
        super().__init__(message, code="amt_sampler_error", details=details)


class SamplingCancelled(EngineError):
    """The caller's cancel callable returned True; generation stopped at a step boundary."""

    def __init__(self, message: str = "sampling cancelled") -> None:
        super().__init__(message, code="cancelled")
