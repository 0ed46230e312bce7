"""Resume against a real server: exactly-once, in-order delivery over hundreds of abrupt
reconnects while events flow, and the ``recovered: false`` path after compaction."""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections.abc import Callable
from typing import Any

from serverkit import HubProcess, WsClient, new_session, op, ws_client

EVENTS = 20_000
RECONNECTS = 500
WINDOW = 256  # commands in flight from the producer


async def _produce(url: str, sid: str, sec: str, count: int, acked: list[int],
                   reconnects: list[int] | None = None) -> None:
    """Spam cheap commands, pipelined, each producing exactly one event.

    With ``reconnects`` (a one-item counter) the producer waits before each batch of
    400 commands until the consumer has reconnected 11 more times, so at least 500
    reconnects happen while events flow even though both share two CPU cores.
    """
    async with ws_client(url, name="producer") as p:
        sem = asyncio.Semaphore(WINDOW)

        async def one(i: int) -> None:
            try:
                if i % 2:
                    msg: dict[str, Any] = {"type": "session.rename", "session": sid, "title": f"t{i}"}
                else:
                    msg = {"type": "section.resize", "session": sid, "section": sec, "bars": 1 + i % 7}
                ack = await p.request({**msg, "op_id": op()}, timeout=60)
                assert ack["offset"] is not None
                acked.append(ack["offset"])
            finally:
                sem.release()

        tasks = []
        for i in range(count):
            if reconnects is not None and i % 400 == 0:
                while reconnects[0] < (i // 400) * 11:
                    await asyncio.sleep(0.005)
            await sem.acquire()
            tasks.append(asyncio.create_task(one(i)))
        await asyncio.gather(*tasks)


async def test_resume_exactly_once_over_500_abrupt_reconnects(make_hub: Callable[..., HubProcess]) -> None:
    proc = make_hub()
    rng = random.Random(20_000)
    async with ws_client(proc.ws_url, name="setup") as c:
        sid, (sec,) = await new_session(c, "Resume storm")
        epoch = c.welcome["epoch"]
    base = 2  # session.created, section.added
    total = base + EVENTS
    acked: list[int] = []
    gate = [0]
    producer = asyncio.create_task(_produce(proc.ws_url, sid, sec, EVENTS, acked, gate))

    seen: list[int] = []
    reconnects = 0
    during_flow = 0
    recovered_flags: list[bool] = []
    started = time.monotonic()
    last = 0
    while last < total or (during_flow < RECONNECTS and not producer.done()):
        # the producer must be running for most of the reconnects: pace them while it is
        flowing = not producer.done()
        budget = rng.randint(0, 40) if flowing else rng.randint(0, 400)
        during_flow += flowing
        gate[0] = during_flow
        c = await WsClient.open(proc.ws_url, name="consumer", resume={"epoch": epoch, "offset": last},
                                topics=[f"session:{sid}"])
        reconnects += 1
        resumed = await c.expect("resumed")
        recovered_flags.append(resumed["recovered"])
        assert resumed["recovered"] is True, resumed
        assert resumed["offset"] >= last
        taken = 0
        while taken < budget and last < total:
            try:
                frame = await c.expect("event", timeout=30)
            except TimeoutError:
                break
            assert frame["epoch"] == epoch
            seen.append(frame["offset"])
            last = frame["offset"]
            taken += 1
        c.abort()  # no closing handshake: the hub finds out from a dead socket
    await producer
    elapsed = time.monotonic() - started
    assert len(acked) == EVENTS
    assert sorted(acked) == list(range(base + 1, total + 1))
    duplicates = len(seen) - len(set(seen))
    gaps = [(a, b) for a, b in itertools.pairwise(seen) if b != a + 1]
    print(f"\nresume storm: {len(seen)} events, {reconnects} abrupt reconnects, {elapsed:.1f}s, "
          f"{duplicates} duplicates, {len(gaps)} gaps, {during_flow} reconnects while the producer ran")
    assert during_flow >= RECONNECTS
    assert duplicates == 0
    assert gaps == []
    assert seen == list(range(1, total + 1))
    assert all(recovered_flags)
    async with ws_client(proc.ws_url) as c:
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["title"] == f"t{EVENTS - 1}"


RETENTION = """
[tutti.retention]
keep_events = 100
keep_seconds = 60
"""


async def test_resume_after_compaction_gets_a_snapshot(make_hub: Callable[..., HubProcess],
                                                       monkeypatch: Any) -> None:
    # Test hooks read by the hub: compact every 0.2 s, and age events by an hour so the
    # 60 s minimum of keep_seconds is already past.
    monkeypatch.setenv("TUTTI_COMPACT_INTERVAL", "0.2")
    monkeypatch.setenv("TUTTI_RETENTION_SKEW", "3600")
    proc = make_hub(RETENTION)
    async with ws_client(proc.ws_url, name="writer") as c:
        sid, (sec,) = await new_session(c, "Compacted")
        epoch = c.welcome["epoch"]
        early = 2
        for i in range(300):
            await c.request({"type": "section.resize", "session": sid, "section": sec, "bars": 1 + i % 5})
        await c.request({"type": "session.rename", "session": sid, "title": "final"})
        head = 2 + 300 + 1
        # wait for the periodic compaction to cut the log down to ~100 events
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            with proc.http() as http:
                first = http.get("/health").json()
            probe = await WsClient.open(proc.ws_url, name="probe", resume={"epoch": epoch, "offset": early},
                                        topics=[f"session:{sid}"])
            resumed = await probe.expect("resumed")
            await probe.close()
            if resumed["recovered"] is False:
                break
            await asyncio.sleep(0.2)
        else:
            raise AssertionError(f"the log was never compacted: {first}")

    # a client far behind: recovered false, a snapshot valid at the given offset, then live events
    async with ws_client(proc.ws_url, name="late", resume={"epoch": epoch, "offset": early},
                         topics=[f"session:{sid}"]) as late:
        resumed = await late.expect("resumed")
        assert resumed["recovered"] is False
        assert resumed["reason"]
        assert resumed["offset"] == head
        (snap,) = resumed["snapshot"]
        assert snap["id"] == sid and snap["title"] == "final"
        assert snap["sections"][0]["bars"] == 1 + 299 % 5
        # nothing from before the snapshot is replayed; live events continue after it
        async with ws_client(proc.ws_url, name="writer2") as w:
            ack = await w.request({"type": "session.rename", "session": sid, "title": "after"})
        ev = await late.expect("event")
        assert ev["offset"] == ack["offset"] == head + 1 and not ev["replayed"]

    # a client within the retained window still gets an exact replay
    async with ws_client(proc.ws_url, name="recent", resume={"epoch": epoch, "offset": head - 10},
                         topics=[f"session:{sid}"]) as recent:
        resumed = await recent.expect("resumed")
        assert resumed["recovered"] is True
        offsets = [(await recent.expect("event"))["offset"] for _ in range(11)]
        assert offsets == list(range(head - 9, head + 2))

    # a stale epoch: recovered false as well
    async with ws_client(proc.ws_url, name="stale", resume={"epoch": "0" * 32, "offset": 5},
                         topics=[f"session:{sid}"]) as stale:
        resumed = await stale.expect("resumed")
        assert resumed["recovered"] is False and resumed["snapshot"][0]["title"] == "after"

    # after a restart the compacted log still loads (snapshot + tail) and resume still works
    proc.stop()
    proc.start()
    async with ws_client(proc.ws_url, name="after restart", resume={"epoch": epoch, "offset": head},
                         topics=[f"session:{sid}"]) as c:
        resumed = await c.expect("resumed")
        assert resumed["recovered"] is True and resumed["offset"] == head + 1
        ev = await c.expect("event")
        assert ev["offset"] == head + 1 and ev["replayed"] and ev["event"]["title"] == "after"
        s = (await c.request({"type": "session.get", "session": sid}))["result"]["session"]
        assert s["title"] == "after" and s["sections"][0]["bars"] == 1 + 299 % 5
