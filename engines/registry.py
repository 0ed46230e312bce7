"""Which engines exist and how a worker process builds one.

A spec is plain, picklable data (a name, an import path, keyword arguments), so
the hub can hand it to a freshly spawned worker that imports the engine itself:
the hub process never imports torch or model code.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engines.base import Engine
from engines.errors import EngineError


@dataclass(frozen=True)
class EngineSpec:
    """How to build one engine: ``factory`` is ``"package.module:Class"``.

    ``concurrency`` is how many jobs the hub may run on one worker at once (the
    worker steps them round-robin, or together when the engine batches). The hub
    enforces it; the worker runs whatever it is given.
    """

    name: str
    factory: str
    kwargs: dict[str, Any] = field(default_factory=dict, hash=False)
    concurrency: int = 1

    def __post_init__(self) -> None:
        if not self.name or "=" in self.name:
            raise ValueError(f"invalid engine name {self.name!r}")
        module, sep, attr = self.factory.partition(":")
        if not sep or not module or not attr:
            raise ValueError(f"factory must look like 'module:Class', got {self.factory!r}")
        if self.concurrency < 1:
            raise ValueError("concurrency must be >= 1")

    @classmethod
    def parse(cls, text: str, *, concurrency: int = 1) -> EngineSpec:
        """``"name=module:Class"`` -> spec (how tests and ``--engine`` flags register engines)."""
        name, sep, factory = text.strip().partition("=")
        if not sep:
            raise ValueError(f"engine spec must look like 'name=module:Class', got {text!r}")
        return cls(name=name.strip(), factory=factory.strip(), concurrency=concurrency)

    def build(self) -> Engine:
        """Import the factory and call it with ``kwargs`` (runs inside the worker process)."""
        module_name, _, attr = self.factory.partition(":")
        try:
            module = importlib.import_module(module_name)
            factory = getattr(module, attr)
        except (ImportError, AttributeError) as exc:
            raise EngineError(
                f"cannot import engine {self.name!r} from {self.factory!r}: {exc}",
                code="engine_unavailable",
                details={"factory": self.factory},
            ) from exc
        engine = factory(**self.kwargs)
        if not isinstance(engine, Engine):
            raise EngineError(
                f"{self.factory} did not build an Engine (got {type(engine).__name__})",
                code="engine_unavailable",
                details={"factory": self.factory},
            )
        return engine


AMT_FACTORY = "engines.amt.engine:AmtEngine"


def amt_spec(model: str | None = None, *, concurrency: int = 4, **kwargs: Any) -> EngineSpec:
    """The AMT engine with its weights: ``model`` is a hub id, a local folder, or None for
    the bundled weights (``tutti serve --amt-model`` / the config's ``amt_model``). Other
    kwargs (device, dtype, threads, notes_every, partial_every) go to ``AmtEngine`` as
    they are. Its concurrent jobs decode together as rows of one batch."""
    return EngineSpec(
        name="amt", factory=AMT_FACTORY, kwargs={"model": model, **kwargs}, concurrency=concurrency
    )


# The engines Tutti ships. Model engines add themselves here as they land.
DEFAULT_SPECS: tuple[EngineSpec, ...] = (
    EngineSpec(name="transform", factory="engines.transform.engine:TransformEngine", concurrency=4),
    amt_spec(),
)


class EngineRegistry:
    """Engine specs by name; later registrations replace earlier ones of the same name."""

    def __init__(self, specs: Iterable[EngineSpec] = ()) -> None:
        self._specs: dict[str, EngineSpec] = {}
        for spec in specs:
            self.register(spec)

    @classmethod
    def default(cls, extra: Iterable[str | EngineSpec] = ()) -> EngineRegistry:
        """The shipped engines plus ``extra`` ("name=module:Class" strings or specs)."""
        registry = cls(DEFAULT_SPECS)
        for item in extra:
            registry.register(item)
        return registry

    def register(self, spec: EngineSpec | str) -> EngineSpec:
        if isinstance(spec, str):
            spec = EngineSpec.parse(spec)
        self._specs[spec.name] = spec
        return spec

    def get(self, name: str) -> EngineSpec:
        try:
            return self._specs[name]
        except KeyError:
            raise EngineError(
                f"unknown engine {name!r}",
                code="engine_unavailable",
                details={"engine": name, "known_engines": sorted(self._specs)},
            ) from None

    def names(self) -> tuple[str, ...]:
        return tuple(self._specs)

    def __contains__(self, name: object) -> bool:
        return name in self._specs

    def __iter__(self) -> Iterator[EngineSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)
