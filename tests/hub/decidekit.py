"""decide + reduce with deterministic ids and clock, the way the core runs them (no I/O)."""

from __future__ import annotations

from typing import Any

from hub.decide import Decision, decide
from hub.events import Cause, Envelope, Event, topic_of
from hub.model import Session
from hub.protocol import SessionCommand
from hub.state import EMPTY, HubState, reduce

NOW = 42.0


class DecideHarness:
    def __init__(self) -> None:
        self.state: HubState = EMPTY
        self.envs: list[Envelope] = []
        self.n = 0

    def ids(self, prefix: str) -> str:
        self.n += 1
        return f"{prefix}{self.n}"

    def append(self, ev: Event, cause: Cause, group: str | None) -> None:
        """Fold one event in as the log would (next offset, its topic)."""
        env = Envelope(
            epoch="ep", offset=len(self.envs) + 1, ts=NOW, topic=topic_of(ev), cause=cause, group=group, event=ev
        )
        self.envs.append(env)
        self.state = reduce(self.state, env)

    def apply(self, cmd: SessionCommand, **kw: Any) -> Decision:
        """Decide, then fold the events in; a refusal raises HubError and changes nothing."""
        d = decide(self.state, cmd, now=NOW, ids=self.ids, **kw)
        for ev in d.events:
            self.append(ev, d.cause, d.group)
        return d

    def session(self, sid: str) -> Session:
        s = self.state.sessions.get(sid)
        assert s is not None
        return s
