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


async def test_each_overflow_counts_one_slow_consumer() -> None:
    fan = Fanout()
    slow, fine = fan.new_outbox(3), fan.new_outbox(100)
    for i in range(10):  # the slow one overflows at the 4th frame; later pushes are dropped
        slow.push(f"L{i}")
        fine.push(f"L{i}")
    assert slow.overflowed and not fine.overflowed
    assert fan.slow_consumers == 1


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


# --- latest-value sharing and direct (pre-framed) delivery ---------------------------------


class _FakeSink:
    """Records what the flusher writes; ``writable`` toggles like a paused transport."""

    def __init__(self) -> None:
        self.writable = True
        self.writes: list[list[str]] = []


    def write_frames(self, frames: list[str]) -> None:
        self.writes.append(list(frames))


def _direct(fan: Fanout, cid: str, topics: list[str]) -> tuple[Outbox, _FakeSink]:
    box, sink = Outbox(100), _FakeSink()
    box.attach(sink, fan.flusher)
    fan.add(cid, box)
    fan.subscribe(cid, topics)
    return box, sink


async def _flushed() -> None:
    for _ in range(3):  # the flusher runs from loop callbacks
        await asyncio.sleep(0)


async def test_publish_latest_sends_only_the_newest_to_a_client_still_behind() -> None:
    fan = Fanout()
    box = Outbox(100)
    fan.add("a", box)
    fan.subscribe("a", ["transport:s"])
    for i in range(5):
        assert fan.publish_latest("transport:s", "transport:s", f"T{i}") == 1
    assert box.pending() == 1
    assert await box.take() == ["T4"]
    fan.publish_latest("transport:s", "transport:s", "T5")  # re-armed after the take
    assert await box.take() == ["T5"]


async def test_latest_values_follow_membership() -> None:
    fan = Fanout()
    a, b = Outbox(100), Outbox(100)
    fan.add("a", a)
    fan.add("b", b)
    fan.subscribe("a", ["t"])
    fan.publish_latest("t", "k", "v1")
    fan.subscribe("b", ["t"])  # joins late: gets values published from now on
    assert b.pending() == 0
    fan.publish_latest("t", "k", "v2")
    assert await a.take() == ["v2"] and await b.take() == ["v2"]
    fan.unsubscribe("b", ["t"])
    assert fan.publish_latest("t", "k", "v3") == 1
    assert b.pending() == 0 and await a.take() == ["v3"]
    fan.remove("a")
    assert fan.publish_latest("t", "k", "v4") == 0


async def test_same_key_on_two_topics_stays_armed_for_both() -> None:
    fan = Fanout()
    box = Outbox(100)
    fan.add("a", box)
    fan.subscribe("a", ["jobs", "session:s"])
    fan.publish_latest("jobs", "progress:j", "P1")
    fan.publish_latest("session:s", "progress:j", "P1")
    assert await box.take() == ["P1"]  # conflated per key, as before
    fan.publish_latest("jobs", "progress:j", "P2")  # a publish on one topic alone
    assert await box.take() == ["P2"]
    fan.publish_latest("session:s", "progress:j", "P3")
    assert await box.take() == ["P3"]


async def test_old_latest_keys_are_forgotten_but_pending_values_still_delivered() -> None:
    from hub.fanout import MAX_LATEST_KEYS

    fan = Fanout()
    box = Outbox(1000)
    fan.add("a", box)
    fan.subscribe("a", ["jobs"])
    for i in range(MAX_LATEST_KEYS + 10):
        fan.publish_latest("jobs", f"progress:{i}", f"P{i}")
    assert len(fan._values["jobs"]) == MAX_LATEST_KEYS
    frames = await box.take()
    assert frames == [f"P{i}" for i in range(MAX_LATEST_KEYS + 10)]
    fan.publish_latest("jobs", "progress:0", "again")  # an evicted key starts afresh
    assert await box.take() == ["again"]


async def test_direct_delivery_batches_lossless_then_latest_in_one_write() -> None:
    fan = Fanout()
    box, sink = _direct(fan, "a", ["session:s", "transport:s"])
    fan.publish([_env(1), _env(2)])
    fan.publish_latest("transport:s", "transport:s", "T1")
    fan.publish_latest("transport:s", "transport:s", "T2")
    await _flushed()
    assert len(sink.writes) == 1
    frames = sink.writes[0]
    assert len(frames) == 3 and '"offset":1' in frames[0] and '"offset":2' in frames[1]
    assert frames[2] == "T2"
    assert box.pending() == 0


async def test_paused_client_is_skipped_and_gets_only_the_newest_on_resume() -> None:
    fan = Fanout()
    _slow_box, slow = _direct(fan, "slow", ["transport:s"])
    _fast_box, fast = _direct(fan, "fast", ["transport:s"])
    slow.writable = False
    for i in range(10):
        fan.publish_latest("transport:s", "transport:s", f"T{i}")
        await _flushed()
    assert fast.writes == [[f"T{i}"] for i in range(10)]
    assert slow.writes == []
    slow.writable = True
    _slow_box.resumed()
    await _flushed()
    assert slow.writes == [["T9"]]


async def test_flusher_serves_a_large_fanout_in_slices() -> None:
    fan = Fanout()
    fan.flusher.batch = 4
    sinks = [_direct(fan, f"c{i}", ["t"])[1] for i in range(10)]
    fan.publish_latest("t", "k", "v")
    await asyncio.sleep(0)
    assert sum(len(s.writes) for s in sinks) == 4  # one slice per loop callback
    await _flushed()
    assert all(s.writes == [["v"]] for s in sinks)


async def test_closed_or_overflowed_outbox_is_left_to_the_writer_task() -> None:
    fan = Fanout()
    box, sink = _direct(fan, "a", ["session:s"])
    ended: list[str] = []
    box.on_end(lambda: ended.append("end"))
    sink.writable = False
    fan.publish([_env(1)])
    box.close()
    box.close()
    assert ended == ["end"]  # once
    sink.writable = True
    box.resumed()
    await _flushed()
    assert sink.writes == []  # the writer task sends what is left, then goodbye and close
    assert len(await box.take()) == 1

    small = Outbox(limit=2)
    hit: list[bool] = []
    small.on_end(lambda: hit.append(True))
    for i in range(3):
        small.push(f"L{i}")
    assert small.overflowed and hit == [True]


def test_wire_frames_are_unmasked_text_frames_built_once() -> None:
    from hub.wsframes import frame_text, wire

    short = "x" * 125
    assert frame_text(short.encode()) == b"\x81\x7d" + short.encode()
    mid = "y" * 126
    assert frame_text(mid.encode())[:4] == b"\x81\x7e\x00\x7e"
    big = "z" * 70000
    head = frame_text(big.encode())[:10]
    assert head[:2] == b"\x81\x7f" and int.from_bytes(head[2:], "big") == 70000
    text = '{"type":"transport.state","bpm":120}'
    assert wire(text) is wire(text)  # shared by every recipient
    assert wire(text) == b"\x81" + bytes([len(text)]) + text.encode()
    assert wire("é") == b"\x81\x02" + "é".encode()
