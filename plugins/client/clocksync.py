"""Clock-offset estimation from clock.ping / clock.pong samples. Pure arithmetic.

A sample: the client sends ``t0`` (its clock), the hub answers with ``server_time`` (its
monotonic clock) and the client reads ``t1`` on arrival. Assuming the hub read its clock
half way through the round trip, ``offset = server_time - (t0 + t1) / 2`` so that
``hub_time = client_time + offset``; the error is at most ``(t1 - t0) / 2``. The estimate
is the median offset of the lower-RTT half of the recent samples: slow round trips are the
ones most likely to be asymmetric, and the median ignores the rest of the outliers.
"""

from __future__ import annotations

import statistics
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class ClockSample:
    t0: float
    server_time: float
    t1: float

    @property
    def rtt(self) -> float:
        return self.t1 - self.t0

    @property
    def offset(self) -> float:
        return self.server_time - (self.t0 + self.t1) / 2.0


class ClockEstimator:
    def __init__(self, window: int = 64) -> None:
        self.samples: deque[ClockSample] = deque(maxlen=window)
        self._rough: float | None = None

    def reset(self, rough_offset: float | None = None) -> None:
        """A new connection may reach a restarted hub whose clock has a new origin."""
        self.samples.clear()
        self._rough = rough_offset

    def add(self, sample: ClockSample) -> None:
        if sample.rtt >= 0:  # a negative RTT is a clock that jumped: not a sample
            self.samples.append(sample)

    @property
    def ready(self) -> bool:
        return bool(self.samples)

    @property
    def offset(self) -> float | None:
        """hub_time - client_time, or the rough welcome-based guess before any sample."""
        if not self.samples:
            return self._rough
        by_rtt = sorted(self.samples, key=lambda s: s.rtt)
        best = by_rtt[: max(1, (len(by_rtt) + 1) // 2)]
        return statistics.median(s.offset for s in best)

    @property
    def uncertainty(self) -> float | None:
        """Half the best round trip: a bound on the error of a symmetric-path sample."""
        if not self.samples:
            return None
        return min(s.rtt for s in self.samples) / 2.0
