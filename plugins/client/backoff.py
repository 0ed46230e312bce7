"""Reconnect delays: exponential backoff with full jitter, so a restarted hub is not
hit by every client at the same instant. Pure: the random source is injectable."""

from __future__ import annotations

import random
from dataclasses import dataclass, field


@dataclass
class Backoff:
    base: float = 0.25
    cap: float = 15.0
    factor: float = 2.0
    rng: random.Random = field(default_factory=random.Random)
    attempt: int = 0

    def next_delay(self) -> float:
        ceiling = min(self.cap, self.base * self.factor**self.attempt)
        self.attempt += 1
        # "Equal jitter": at least half the ceiling, so retries never degenerate to a tight loop.
        return ceiling / 2.0 + self.rng.uniform(0.0, ceiling / 2.0)

    def reset(self) -> None:
        self.attempt = 0
