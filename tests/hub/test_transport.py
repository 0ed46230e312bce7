"""Transport timeline arithmetic and control rules."""

from __future__ import annotations

import pytest

from hub.errors import ErrorCode, HubError
from hub.model import Meter
from hub.transport import Timeline, apply_update, drop_holder, release_control, take_control


def test_extrapolation_follows_bpm() -> None:
    tl = apply_update(Timeline("s"), "daw", now=10.0, playing=True, bpm=90.0, beat=8.0, meter=None)
    assert tl.holder == "daw"
    assert tl.beat_at(12.0) == pytest.approx(8.0 + 2.0 * 90 / 60)
    assert tl.time_of_beat(11.0) == pytest.approx(12.0)
    stopped = apply_update(tl, "daw", now=12.0, playing=False, bpm=90.0, beat=11.0, meter=None)
    assert stopped.beat_at(100.0) == 11.0


def test_only_the_holder_moves_transport() -> None:
    tl = take_control(Timeline("s"), "daw", force=False)
    with pytest.raises(HubError) as info:
        apply_update(tl, "browser", now=0.0, playing=True, bpm=120, beat=0, meter=None)
    assert info.value.code is ErrorCode.transport_not_held
    with pytest.raises(HubError):
        take_control(tl, "browser", force=False)
    taken = take_control(tl, "browser", force=True)
    assert taken.holder == "browser" and taken.seq > tl.seq
    with pytest.raises(HubError):
        release_control(taken, "daw")
    assert release_control(taken, "browser").holder is None
    assert drop_holder(taken, "browser").holder is None
    assert drop_holder(taken, "daw") is taken


def test_change_at_next_bar_keeps_the_beat_continuous() -> None:
    tl = apply_update(Timeline("s", meter=Meter(numerator=3, denominator=4)), "daw",
                      now=0.0, playing=True, bpm=120.0, beat=0.0, meter=None)
    # At t=1.0 s we are at beat 2; the next 3/4 bar line is beat 3 (t=1.5 s).
    later = apply_update(tl, "daw", now=1.0, playing=True, bpm=60.0, beat=2.0, meter=None, at_next_bar=True)
    assert later.beat_origin == pytest.approx(3.0)
    assert later.time_origin == pytest.approx(1.5)
    assert later.beat_at(2.5) == pytest.approx(4.0)  # one beat per second after the bar line
