"""The one engine interface the worker hosts.

An engine is built in its worker process, then ``setup()`` (load weights) and
``warmup()`` run once. Each job is a :class:`JobRun` that the worker advances one
bounded step at a time, so the worker can read hub messages (new jobs, cancels)
between steps: that is how cancel reaches a model between tokens.

Two ways to write an engine:

* subclass :class:`Engine` and return your own :class:`JobRun` from ``start``;
* subclass :class:`GeneratorEngine` and write ``run(request, cancel, cas)`` as a
  generator: every ``yield`` is a step boundary.

An engine that can decode several jobs in one forward pass also implements
``step_many`` (see :class:`BatchStepper`); the worker then steps all its running
jobs with one call.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol, runtime_checkable

from cas.store import CasStore
from engines.protocol import (
    Cancelled,
    EngineEvent,
    EngineInfo,
    EngineRequest,
    Failed,
    Finished,
    Output,
)

TERMINAL_EVENTS = (Finished, Failed, Cancelled)

# How many extra yields a generator may produce after it was told to cancel
# (partial outputs); past this it is closed, so cancel is always bounded.
MAX_CANCEL_YIELDS = 8


def is_terminal(event: EngineEvent) -> bool:
    return isinstance(event, TERMINAL_EVENTS)


class JobRun(ABC):
    """One running job, advanced by the worker in bounded steps.

    Contract: ``step()`` and ``cancel()`` together produce non-terminal events
    (Progress, Notes, Output) followed by exactly one terminal event (Finished,
    Failed or Cancelled); after that ``done`` is True. ``step()`` may raise; the
    worker turns the exception into a ``Failed`` event for this job.
    """

    def __init__(self, job_id: str) -> None:
        self.job_id = job_id

    @property
    @abstractmethod
    def done(self) -> bool:
        """True once the terminal event has been returned."""

    @abstractmethod
    def step(self) -> list[EngineEvent]:
        """Do one bounded unit of work (a few tokens, a chunk) and return its events."""

    @abstractmethod
    def cancel(self) -> list[EngineEvent]:
        """Stop now: optionally partial Outputs (``partial=True``), then ``Cancelled``."""

    def close(self) -> None:  # noqa: B027 - optional hook, empty on purpose
        """Release resources; called by the worker whenever it drops the run, even after errors."""


@runtime_checkable
class BatchStepper(Protocol):
    """Optional engine capability: advance several runs together (one batched forward pass).

    Returns the events per job id; a job missing from the result produced none this
    step. If it raises, every run in the batch fails with the error.
    """

    def step_many(self, runs: Sequence[JobRun]) -> Mapping[str, list[EngineEvent]]: ...


class Engine(ABC):
    """What every engine implements; instances live in a worker process."""

    @abstractmethod
    def info(self) -> EngineInfo:
        """Name, version, tasks with params schemas; cheap, callable before ``setup``."""

    def setup(self) -> None:  # noqa: B027 - engines without weights need nothing here
        """Load weights. Raise ``EngineError`` to report the engine unavailable, with the reason."""

    def warmup(self) -> None:  # noqa: B027 - optional
        """Run a tiny job so the first real one is not slow (compile kernels, fill caches)."""

    @abstractmethod
    def start(self, request: EngineRequest, cas: CasStore) -> JobRun:
        """Begin a job. Raise ``EngineError`` (e.g. ``validation_failed``) to reject it."""


class CancelFlag:
    """Set by the worker when the hub cancels; safe to read from helper threads."""

    def __init__(self) -> None:
        self._event = threading.Event()

    def set(self) -> None:
        self._event.set()

    def is_set(self) -> bool:
        return self._event.is_set()

    def __bool__(self) -> bool:
        return self._event.is_set()


class JobCancelled(Exception):
    """Thrown into a generator at its current ``yield`` when the job is cancelled.

    A generator may catch it to yield partial Outputs before returning; one that
    does not catch it simply stops. The adapter emits ``Cancelled`` either way.
    """


class GeneratorRun(JobRun):
    """Adapts an event generator to :class:`JobRun`: each ``next()`` is one step."""

    def __init__(self, job_id: str, events: Iterator[EngineEvent], flag: CancelFlag) -> None:
        super().__init__(job_id)
        self._events = events
        self._flag = flag
        self._done = False

    @property
    def done(self) -> bool:
        return self._done

    def step(self) -> list[EngineEvent]:
        if self._done:
            return []
        try:
            event = next(self._events)
        except StopIteration as stop:
            # Returning ends the job successfully; a returned dict becomes the result.
            self._done = True
            result = stop.value if isinstance(stop.value, dict) else {}
            return [Finished(self.job_id, result=result)]
        except BaseException:
            self._done = True
            raise
        if is_terminal(event):
            self._done = True
            self.close()
        return [event]

    def cancel(self) -> list[EngineEvent]:
        if self._done:
            return []
        self._flag.set()
        self._done = True
        kept: list[EngineEvent] = []
        try:
            event = _throw(self._events, JobCancelled())
            for _ in range(MAX_CANCEL_YIELDS):
                if isinstance(event, Output):
                    kept.append(event)  # partial results the generator chose to save
                event = next(self._events)
        except (StopIteration, JobCancelled):
            pass
        finally:
            self.close()
        return [*kept, Cancelled(self.job_id)]

    def close(self) -> None:
        close = getattr(self._events, "close", None)
        if close is not None:
            close()


def _throw(events: Iterator[EngineEvent], exc: BaseException) -> EngineEvent:
    throw = getattr(events, "throw", None)
    if throw is None:  # a plain iterator cannot be interrupted: it just stops
        raise StopIteration
    event: EngineEvent = throw(exc)
    return event


class GeneratorEngine(Engine):
    """Convenience base: write the job as a generator of events."""

    @abstractmethod
    def run(
        self, request: EngineRequest, cancel: CancelFlag, cas: CasStore
    ) -> Iterator[EngineEvent]:
        """Yield events; each ``yield`` ends one step. Return to finish (a returned dict
        becomes ``Finished.result``; annotate the override as ``Generator[EngineEvent, None,
        dict[str, Any] | None]`` for that), or yield a terminal event yourself. Raise
        ``EngineError`` to fail. To save partial results on cancel, catch
        :class:`JobCancelled` at a ``yield`` and yield partial Outputs."""

    def prepare(self, request: EngineRequest) -> None:
        """Eager checks before the generator starts (e.g. validate params) so that a bad
        request is rejected by ``start`` rather than at the first step."""

    def start(self, request: EngineRequest, cas: CasStore) -> JobRun:
        self.prepare(request)
        flag = CancelFlag()
        return GeneratorRun(request.job_id, self.run(request, flag, cas), flag)
