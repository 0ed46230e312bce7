"""Request parameters: one pydantic model per task, validated in the worker.

The same model gives the task's JSON Schema (published in :class:`TaskInfo` so the
hub can show and pre-check it) and validates the request, so docs, defaults and
code cannot drift apart. Validation failures become data the hub can forward
unchanged: ``EngineError(code="validation_failed", details={"errors": [...]})``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, ValidationError

from engines.errors import EngineError
from engines.protocol import TaskInfo

VALIDATION_FAILED = "validation_failed"

P = TypeVar("P", bound=BaseModel)


class TaskParams(BaseModel):
    """Base for task parameter models: unknown keys are an error, values are immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)


def params_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON Schema of a task's params object (draft 2020-12, as pydantic writes it)."""
    return model.model_json_schema(mode="validation")


def error_list(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic's errors reduced to JSON- and pickle-safe dicts: where, what, which rule."""
    return [
        {"loc": [part for part in err["loc"]], "msg": err["msg"], "type": err["type"]}
        for err in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def validate_params(model: type[P], params: Mapping[str, Any], *, task: str = "") -> P:
    """Validate ``params`` against ``model``; raise ``validation_failed`` with every error."""
    if not isinstance(params, Mapping):
        raise EngineError(
            "params must be an object",
            code=VALIDATION_FAILED,
            details={
                "errors": [{"loc": [], "msg": "params must be an object", "type": "dict_type"}]
            },
        )
    try:
        return model.model_validate(dict(params))
    except ValidationError as exc:
        errors = error_list(exc)
        where = f" for task {task!r}" if task else ""
        first = errors[0] if errors else {"loc": [], "msg": "invalid"}
        path = ".".join(str(p) for p in first["loc"]) or "params"
        raise EngineError(
            f"invalid params{where}: {path}: {first['msg']}",
            code=VALIDATION_FAILED,
            details={"errors": errors, "task": task},
        ) from None


@dataclass(frozen=True)
class TaskSpec:
    """One task an engine offers: its name, a one-line description and its params model."""

    name: str
    description: str
    params: type[TaskParams]
    constraints: tuple[str, ...] = ()

    def info(self) -> TaskInfo:
        return TaskInfo(
            name=self.name,
            description=self.description,
            params_schema=params_schema(self.params),
            constraints=self.constraints,
        )


class TaskTable:
    """An engine's tasks by name: validates a request's task + params in one call."""

    def __init__(self, tasks: Iterable[TaskSpec]) -> None:
        self._tasks: dict[str, TaskSpec] = {}
        for task in tasks:
            if task.name in self._tasks:
                raise ValueError(f"duplicate task {task.name!r}")
            self._tasks[task.name] = task

    def names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def infos(self) -> tuple[TaskInfo, ...]:
        return tuple(task.info() for task in self._tasks.values())

    def get(self, name: str) -> TaskSpec:
        try:
            return self._tasks[name]
        except KeyError:
            known = sorted(self._tasks)
            # Same code as bad params: to the client both are "this request is not valid".
            raise EngineError(
                f"unknown task {name!r}; known tasks: {', '.join(known)}",
                code=VALIDATION_FAILED,
                details={
                    "errors": [{"loc": ["task"], "msg": "unknown task", "type": "unknown_task"}],
                    "task": name,
                    "known_tasks": known,
                },
            ) from None

    def validate(self, task: str, params: Mapping[str, Any]) -> TaskParams:
        return validate_params(self.get(task).params, params, task=task)
