"""One place that knows both names of a causal LM's KV cache in ``transformers``.

The argument and the output field were ``past_key_values`` until transformers 5.25 named
them ``cache`` (the old name still works there, with a warning, until 5.40). The engine
supports both: stock models and any custom causal LM a user points it at, whose
``forward`` may take either.
"""

from __future__ import annotations

import inspect
from typing import Any

OLD, NEW = "past_key_values", "cache"


def cache_argument(forward: Any) -> str:
    """The keyword a model's ``forward`` takes its KV cache by."""
    try:
        parameters = inspect.signature(forward).parameters
    except (TypeError, ValueError):  # a C or otherwise opaque callable: the long-lived name
        return OLD
    return NEW if NEW in parameters else OLD


def returned_cache(output: Any) -> Any:
    """The KV cache a forward returned, under whichever name its output uses."""
    cache = getattr(output, NEW, None)
    return cache if cache is not None else getattr(output, OLD, None)
