"""Fan-out: lossless order, latest-value conflation, overflow, replay hand-over."""

from __future__ import annotations

import asyncio

from hub.events import Envelope, SessionRenamed
from hub.fanout import Fanout, Outbox


def _env(offset: int, session: str = "s") -> Envelope:
    return Envelope(
        epoch="e", offset=offset, ts=0.0, topic=f"session:{session}",
        event=SessionRenamed(session=session, title=f"t{offset}", old_title="x"),
    )


async def test_lossless_in_order_and_latest_conflated() -> None:
    box = Outbox(limit=100)
    for i in range(5):
        box.push(f"L{i}")
        box.put_latest("progress:j", f"P{i}")
    frames = await box.take()
    assert frames == ["L0", "L1", "L2", "L3", "L4", "P4"]


async def test_overflow_marks_client_and_drops_backlog() -> None:
    box = Outbox(limit=3)
    for i in range(4):
        box.push(f"L{i}")
    assert box.overflowed
    assert await box.take() == []


async def test_publish_routes_by_topic_and_encodes_once() -> None:
    fan = Fanout()
    a, b = Outbox(100), Outbox(100)
    fan.add("a", a)
    fan.add("b", b)
    fan.subscribe("a", ["session:s"])
    fan.subscribe("b", ["session:other"])
    fan.publish([_env(1), _env(2)])
    got_a = await a.take()
    assert [f.count('"offset":') for f in got_a] == [1, 1]
    assert '"offset":1' in got_a[0] and '"offset":2' in got_a[1]
    assert b.pending() == 0
    assert fan.published_offset == 2


async def test_hold_and_release_join_replay_without_gap_or_duplicate() -> None:
    fan = Fanout()
    box = Outbox(100)
    fan.add("c", box)
    fan.subscribe("c", ["session:s"])
    fan.publish([_env(1)])
    await box.take()
    upto = fan.hold("c")
    assert upto == 1
    fan.publish([_env(2), _env(3)])  # arrives while the replay is being read
    assert box.pending() == 0
    box.push("replayed-2")  # the replay covered offset 2 already
    fan.release("c", replayed_to=2)
    frames = await asyncio.wait_for(box.take(), 1)
    assert frames[0] == "replayed-2"
    assert len(frames) == 2 and '"offset":3' in frames[1]
