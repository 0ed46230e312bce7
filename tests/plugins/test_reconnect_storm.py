"""Reconnect storm: the hub is SIGKILLed and restarted mid-stream and the client's socket
is cut repeatedly, while commands and job note chunks flow. What the client hands its
user must equal the hub's log for the topic: 0 gaps, 0 duplicates, in order."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from websockets.asyncio.client import connect

from hub.protocol import EventMessage, RenameSession
from plugins.client import Backoff, Connected, NotesGap, ProtocolError, TuttiClient
from tests.plugins.hubproc import Hub

RESTARTS = 2
CUTS = 8


async def produce(client: TuttiClient, sid: str, stop: asyncio.Event) -> None:
    """Pipelined session renames (idempotent by op_id, so resent across reconnects)."""
    n = 0
    pending: set[asyncio.Task[Any]] = set()
    while not stop.is_set():
        n += 1
        cmd = RenameSession(op_id=client.op(), session=sid, title=f"t{n}")
        task = asyncio.create_task(client.request(cmd, timeout=60))
        pending.add(task)
        task.add_done_callback(pending.discard)
        await asyncio.sleep(0.01)
    await asyncio.gather(*pending, return_exceptions=True)


async def log_offsets(hub: Hub, epoch: str, topic: str) -> list[int]:
    """Ground truth: replay the topic from offset 0; a pong after hello marks the replay's end."""
    offsets: list[int] = []
    async with connect(hub.ws_url, max_size=None) as ws:
        await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "client": "cli", "name": "verify",
                                    "resume": {"epoch": epoch, "offset": 0}, "topics": [topic]}).decode())
        await ws.send(orjson.dumps({"type": "ping", "t": 1.0}).decode())
        async for raw in ws:
            frame = orjson.loads(raw)
            if frame["type"] == "resumed":
                assert frame["recovered"] is True
            elif frame["type"] == "event":
                offsets.append(frame["offset"])
            elif frame["type"] == "pong":
                return offsets
    raise AssertionError("the verifier's socket closed early")


async def test_reconnect_storm_has_no_gaps_and_no_duplicates(own_hub: Hub) -> None:
    fast = {"backoff": Backoff(base=0.05, cap=0.4), "clock_interval": 3600.0}
    async with TuttiClient(own_hub.ws_url, name="setup", **fast) as setup:  # type: ignore[arg-type]
        sid = await setup.create_session("Storm")
        sec = await setup.add_section(sid, "verse")
        epoch = setup.core.welcome.epoch  # type: ignore[union-attr]
    topic = f"session:{sid}"
    consumer = TuttiClient(own_hub.ws_url, name="consumer", topics=[topic], **fast)  # type: ignore[arg-type]
    producer = TuttiClient(own_hub.ws_url, name="producer", **fast)  # type: ignore[arg-type]
    delivered: list[int] = []
    problems: list[object] = []
    chunks: list[bool] = []
    joined_at: list[int] = []  # the first welcome's offset: where the subscription began

    async def consume() -> None:
        async for item in consumer.deliveries():
            if isinstance(item, Connected) and not joined_at:
                joined_at.append(item.welcome.offset)
            if isinstance(item, EventMessage):
                delivered.append(item.offset)
                chunks.append(item.event.type == "job.notes")
            elif isinstance(item, ProtocolError | NotesGap):
                problems.append(item)

    await consumer.start()
    await producer.start()
    reader = asyncio.create_task(consume())
    stop = asyncio.Event()
    spam = asyncio.create_task(produce(producer, sid, stop))
    try:
        await producer.submit_job("slow", "stream", {"chunks": 400, "interval": 0.01}, session=sid, section=sec)
        for _ in range(RESTARTS):
            await asyncio.sleep(1.0)
            await asyncio.to_thread(own_hub.kill)  # mid-stream: commands and note chunks in flight
            await asyncio.to_thread(own_hub.start)
            await producer.submit_job("slow", "stream", {"chunks": 400, "interval": 0.01}, session=sid, section=sec)
            for _ in range(CUTS // RESTARTS):
                await asyncio.sleep(0.25)
                consumer.abort_connection()  # no closing handshake
        await asyncio.sleep(0.5)
        stop.set()
        await asyncio.wait_for(spam, 60)
        truth = await log_offsets(own_hub, epoch, topic)
        for _ in range(300):  # the consumer catches up to the log head
            if delivered and delivered[-1] >= truth[-1]:
                break
            await asyncio.sleep(0.05)
    finally:
        stop.set()
        await consumer.close()
        await producer.close()
        reader.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await reader
    assert consumer.connections >= 1 + RESTARTS + CUTS
    assert len(delivered) == len(set(delivered)), "duplicates delivered"
    # The job keeps streaming after the verifier read the log: compare up to its head.
    expected = [o for o in truth if o > joined_at[0]]
    got = [o for o in delivered if o <= truth[-1]]
    assert got == expected, f"delivered {len(got)} events, the log has {len(expected)}"
    assert len(expected) > 100 and sum(chunks) > 20  # the storm carried commands and note chunks
    assert problems == []
    assert consumer.core.notes.gaps == 0
