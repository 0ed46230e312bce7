"""Clock-offset estimation from clock.ping / clock.pong samples. Pure arithmetic.

A sample: the client sends ``t0`` (its clock), the hub answers with ``server_time`` (its
monotonic clock) and the client reads ``t1`` on arrival. Assuming the hub read its clock
half way through the round trip, ``offset = server_time - (t0 + t1) / 2`` so that
``hub_time = client_time + offset``; whatever the asymmetry, the error is at most
``(t1 - t0) / 2`` because the hub read its clock somewhere inside the round trip. The
estimate is the median offset of the recent samples whose round trip is close to the best
one: slow round trips are the ones most likely to be asymmetric, and the median ignores the
remaining outliers. The median of values each within its own bound lies within the largest
of those bounds, which is what ``uncertainty`` reports.
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


# A sample counts towards the estimate when its round trip is at most this multiple of the
# best one, plus a floor so that a run of near-equal fast samples is not cut to one.
NEAR_BEST_FACTOR = 1.5
NEAR_BEST_FLOOR = 0.0001


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

    def _near_best(self) -> list[ClockSample]:
        best = min(s.rtt for s in self.samples)
        limit = best * NEAR_BEST_FACTOR + NEAR_BEST_FLOOR
        return [s for s in self.samples if s.rtt <= limit]

    @property
    def offset(self) -> float | None:
        """hub_time - client_time, or the rough welcome-based guess before any sample."""
        if not self.samples:
            return self._rough
        return statistics.median(s.offset for s in self._near_best())

    @property
    def uncertainty(self) -> float | None:
        """A bound on the error of ``offset``: half the slowest round trip it is built from
        (drift between the two clocks since the oldest of those samples aside)."""
        if not self.samples:
            return None
        return max(s.rtt for s in self._near_best()) / 2.0
