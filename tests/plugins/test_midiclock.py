"""The MIDI clock parser, fed timestamped mido messages (no MIDI device needed)."""

from __future__ import annotations

import random

import mido
import pytest

from plugins.midiclock import ClockState, MidiClockParser


def clocks(parser: MidiClockParser, start: float, bpm: float, n: int, jitter: float = 0.0,
           rng: random.Random | None = None) -> tuple[float, ClockState | None]:
    """Feed ``n`` clock ticks at ``bpm`` from ``start``; return the next tick time and last state."""
    interval = 60.0 / (bpm * 24)
    state = None
    t = start
    for _ in range(n):
        noise = (rng.uniform(-jitter, jitter) if rng else 0.0)
        state = parser.feed(mido.Message("clock"), t + noise)
        t += interval
    return t, state


def test_start_then_clock_plays_from_zero_at_the_first_tick() -> None:
    p = MidiClockParser()
    assert p.feed(mido.Message("start"), 0.0) is None  # armed, not yet moving
    first = p.feed(mido.Message("clock"), 0.01)
    assert first == ClockState(playing=True, bpm=None, beat=0.0, at=0.01)
    _, state = clocks(p, 0.01 + 60 / (120 * 24), 120.0, 48)
    assert state is not None and state.playing
    assert state.beat == pytest.approx(2.0)
    assert state.bpm == pytest.approx(120.0, rel=1e-6)
    assert state.beat_at(state.at + 0.25) == pytest.approx(2.5)


def test_stop_song_position_and_continue() -> None:
    p = MidiClockParser()
    p.feed(mido.Message("start"), 0.0)
    t, _ = clocks(p, 0.0, 100.0, 1 + 24 * 3)  # first tick + three beats
    stopped = p.feed(mido.Message("stop"), t)
    assert stopped is not None and not stopped.playing and stopped.beat == pytest.approx(3.0)
    assert stopped.beat_at(t + 10) == pytest.approx(3.0)
    # clocks keep running while stopped: the position does not move
    t, state = clocks(p, t, 100.0, 24)
    assert state is None and p.beat == pytest.approx(3.0)
    moved = p.feed(mido.Message("songpos", pos=32), t)  # 32 sixteenths = 8 beats
    assert moved is not None and moved.beat == 8.0 and not moved.playing
    assert p.feed(mido.Message("continue"), t) is None
    resumed = p.feed(mido.Message("clock"), t + 0.001)
    assert resumed is not None and resumed.playing and resumed.beat == 8.0
    t, state = clocks(p, t + 0.001 + 60 / 2400, 100.0, 12)
    assert state is not None and state.beat == pytest.approx(8.5)


def test_start_after_continue_rewinds_to_zero() -> None:
    p = MidiClockParser()
    p.feed(mido.Message("songpos", pos=16), 0.0)
    p.feed(mido.Message("start"), 0.1)
    state = p.feed(mido.Message("clock"), 0.2)
    assert state is not None and state.beat == 0.0


def test_tempo_estimate_tolerates_jitter_and_follows_a_change() -> None:
    p = MidiClockParser()
    rng = random.Random(3)
    p.feed(mido.Message("start"), 0.0)
    t, state = clocks(p, 0.0, 128.0, 96, jitter=0.001, rng=rng)  # +-1 ms on a 19.5 ms tick
    assert state is not None and state.bpm == pytest.approx(128.0, abs=0.5)
    t, state = clocks(p, t, 90.0, 60, jitter=0.001, rng=rng)
    assert state is not None and state.bpm == pytest.approx(90.0, abs=0.5)


def test_a_pause_in_the_clock_starts_a_fresh_estimate() -> None:
    p = MidiClockParser()
    p.feed(mido.Message("start"), 0.0)
    t, _ = clocks(p, 0.0, 140.0, 48)
    t, state = clocks(p, t + 2.0, 70.0, 4)  # after a 2 s gap: only the new ticks count
    assert state is not None and state.bpm == pytest.approx(70.0, rel=1e-6)


def test_other_messages_and_clock_without_start_are_ignored() -> None:
    p = MidiClockParser()
    assert p.feed(mido.Message("note_on", note=60), 0.0) is None
    _, state = clocks(p, 0.0, 120.0, 30)
    assert state is None and not p.playing and p.beat == 0.0
    assert p.bpm == pytest.approx(120.0)  # tempo is known even while stopped
    assert p.feed(mido.Message("stop"), 1.0) is None  # already stopped: no change
