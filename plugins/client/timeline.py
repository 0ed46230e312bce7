"""Transport timeline extrapolation on the client's clock.

The hub describes transport as a timeline on its own monotonic clock; with the clock
offset (hub = client + offset) a client computes the beat at any local instant:
``beat = beat_origin + (local + offset - time_origin) * bpm / 60`` while playing.
"""

from __future__ import annotations

from hub.protocol import TransportState


def beat_at(state: TransportState, hub_time: float) -> float:
    if not state.playing:
        return state.beat_origin
    return state.beat_origin + (hub_time - state.time_origin) * state.bpm / 60.0


def local_beat(state: TransportState, local_time: float, offset: float) -> float:
    return beat_at(state, local_time + offset)


def local_time_of_beat(state: TransportState, beat: float, offset: float) -> float | None:
    """When (client clock) the timeline reaches ``beat``; None while stopped."""
    if not state.playing or state.bpm <= 0:
        return None
    return state.time_origin + (beat - state.beat_origin) * 60.0 / state.bpm - offset
