"""Transport sync as a timeline, not a stream of positions. Pure logic, no I/O.

A timeline is ``(bpm, beat_origin, time_origin)`` on the hub's monotonic clock plus
``playing`` and the meter; anyone can extrapolate
``beat(t) = beat_origin + (t - time_origin) * bpm / 60`` while playing. One client
holds control at a time; the others get ``transport_not_held`` unless they take it
over explicitly.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

from hub.errors import ErrorCode, HubError
from hub.model import Meter


@dataclass(frozen=True)
class Timeline:
    session: str
    playing: bool = False
    bpm: float = 120.0
    beat_origin: float = 0.0
    time_origin: float = 0.0
    meter: Meter = field(default_factory=Meter)
    holder: str | None = None
    seq: int = 0

    def beat_at(self, t: float) -> float:
        if not self.playing:
            return self.beat_origin
        return self.beat_origin + (t - self.time_origin) * self.bpm / 60.0

    def next_bar_beat(self, t: float) -> float:
        """The first bar line at or after time ``t`` (beats counted from the song start)."""
        per_bar = self.meter.beats_per_bar
        beat = self.beat_at(t)
        return math.ceil(beat / per_bar - 1e-9) * per_bar

    def time_of_beat(self, beat: float) -> float:
        if not self.playing or self.bpm <= 0:
            return self.time_origin
        return self.time_origin + (beat - self.beat_origin) * 60.0 / self.bpm


def take_control(tl: Timeline, client_id: str, *, force: bool) -> Timeline:
    if tl.holder not in (None, client_id) and not force:
        raise HubError(
            ErrorCode.transport_not_held,
            f"transport of session {tl.session} is held by another client",
            details={"holder": tl.holder},
            suggestions=["send transport.take with force: true to take it over"],
        )
    return replace(tl, holder=client_id, seq=tl.seq + 1)


def release_control(tl: Timeline, client_id: str) -> Timeline:
    if tl.holder != client_id:
        raise HubError(ErrorCode.transport_not_held, "only the holder can release transport")
    return replace(tl, holder=None, seq=tl.seq + 1)


def apply_update(
    tl: Timeline,
    client_id: str,
    *,
    now: float,
    playing: bool,
    bpm: float,
    beat: float,
    meter: Meter | None,
    at_next_bar: bool = False,
) -> Timeline:
    """The holder's report of its play state at ``now`` (hub clock) becomes the timeline.

    With ``at_next_bar`` a change takes effect at the next bar line of the current
    timeline, so followers switch tempo on the downbeat instead of mid-bar.
    """
    if tl.holder is None:
        tl = replace(tl, holder=client_id)  # the first to send transport takes it
    elif tl.holder != client_id:
        raise HubError(
            ErrorCode.transport_not_held,
            f"transport of session {tl.session} is held by another client",
            details={"holder": tl.holder},
            suggestions=["send transport.take with force: true first"],
        )
    if at_next_bar and tl.playing and playing:
        bar_beat = tl.next_bar_beat(now)
        return replace(
            tl,
            bpm=bpm,
            beat_origin=bar_beat,
            time_origin=tl.time_of_beat(bar_beat),
            meter=meter or tl.meter,
            seq=tl.seq + 1,
        )
    return replace(
        tl,
        playing=playing,
        bpm=bpm,
        beat_origin=beat,
        time_origin=now,
        meter=meter or tl.meter,
        seq=tl.seq + 1,
    )


def drop_holder(tl: Timeline, client_id: str) -> Timeline:
    """A disconnecting holder frees control; the timeline itself keeps running."""
    if tl.holder != client_id:
        return tl
    return replace(tl, holder=None, seq=tl.seq + 1)
