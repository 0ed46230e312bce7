"""MIDI clock -> transport timeline, without I/O: feed it (mido message, timestamp) pairs.

MIDI clock is 24 ``clock`` messages per quarter note. ``start`` arms playback from beat
0 and ``continue`` from the song position; either way playback begins at the next clock
(that tick is the beat the song position names). ``stop`` halts; ``songpos`` (in MIDI
beats, i.e. sixteenth notes) moves the position. The tempo is the slope of a
least-squares line through the recent tick times, so single late ticks barely move it.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any

PPQN = 24
# Ticks in the tempo window (two beats): long enough to average jitter, short enough to follow a ramp.
WINDOW = 48
# A pause in the tick stream longer than this starts a fresh tempo estimate.
MAX_TICK_GAP = 0.5


@dataclass(frozen=True)
class ClockState:
    """The follower's transport: ``beat`` at time ``at`` (the input's clock), moving at ``bpm``."""

    playing: bool
    bpm: float | None
    beat: float
    at: float

    def beat_at(self, t: float) -> float:
        if not self.playing or self.bpm is None:
            return self.beat
        return self.beat + (t - self.at) * self.bpm / 60.0


class MidiClockParser:
    def __init__(self, window: int = WINDOW) -> None:
        self.ticks = 0  # position in clock ticks (1/24 beat) since the song start
        self.playing = False
        self._armed = False  # start/continue received, waiting for the first tick
        self._times: deque[float] = deque(maxlen=window)
        self._last_tick: float | None = None
        self._last_at = 0.0
        self.bpm: float | None = None

    @property
    def beat(self) -> float:
        return self.ticks / PPQN

    def state(self) -> ClockState:
        return ClockState(self.playing, self.bpm, self.beat, self._last_at)

    def feed(self, msg: Any, t: float) -> ClockState | None:
        """Process one message received at time ``t`` (seconds); return the new state when
        play state, position or tempo changed (tempo: on every tick with an estimate)."""
        kind = getattr(msg, "type", None)
        if kind in ("start", "continue", "stop", "songpos"):
            self._last_at = t  # the time the position below is valid at
        if kind == "start":
            self.ticks = 0
            return self._arm()
        if kind == "continue":
            return self._arm()
        if kind == "stop":
            changed = self.playing or self._armed
            self.playing = self._armed = False
            self._reset_tempo()
            return self.state() if changed else None
        if kind == "songpos":
            # Sixteenth notes -> ticks; receivers honour it while stopped (the spec's rule),
            # and so do we while playing, which is how some hosts loop.
            self.ticks = int(msg.pos) * (PPQN // 4)
            return self.state()
        if kind == "clock":
            return self._tick(t)
        return None  # notes, CCs, active sensing: not ours

    def _arm(self) -> ClockState | None:
        self._armed = True
        self.playing = False
        self._reset_tempo()
        return None  # playback begins with the next tick

    def _reset_tempo(self) -> None:
        self._times.clear()
        self._last_tick = None

    def _tick(self, t: float) -> ClockState | None:
        if self._last_tick is not None and t - self._last_tick > MAX_TICK_GAP:
            self._times.clear()
        self._last_tick = t
        self._times.append(t)
        self._update_bpm()
        if self._armed or self.playing:
            self._last_at = t
        if self._armed:
            # This tick is the position's downbeat: the song starts moving now.
            self._armed = False
            self.playing = True
            return self.state()
        if not self.playing:
            return None  # clocks also run while stopped (tempo only)
        self.ticks += 1
        return self.state()

    def _update_bpm(self) -> None:
        n = len(self._times)
        if n < 3:
            return
        xs = range(n)
        mean_x = (n - 1) / 2.0
        mean_t = sum(self._times) / n
        cov = sum((x - mean_x) * (t - mean_t) for x, t in zip(xs, self._times, strict=True))
        var = sum((x - mean_x) ** 2 for x in xs)
        seconds_per_tick = cov / var
        if seconds_per_tick > 0:
            self.bpm = 60.0 / (seconds_per_tick * PPQN)
