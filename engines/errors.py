"""The one exception root of the engines package.

Engines report failure as data (a ``failed`` event) at the worker boundary; inside
library code they raise these, and the worker translates them.
"""

from __future__ import annotations


class EngineError(Exception):
    """Root of every error raised by engine code."""

    def __init__(
        self,
        message: str,
        *,
        code: str = "engine_error",
        details: dict[str, object] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.details: dict[str, object] = dict(details or {})

    def __repr__(self) -> str:
        return f"{type(self).__name__}(code={self.code!r}, message={self.message!r})"
