"""A stalled client (connected, subscribed, never reads) must not delay the others; when
its bounded queue overflows it is closed with 4008 and can resume without a gap."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable
from typing import Any

import httpx
import orjson
from serverkit import HubProcess, new_session, op, ws_client
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

SLOW_CONFIG = """
[tutti.limits]
client_queue_frames = 256
# A fixed kernel send buffer: with the OS's autotuning the hub side of a stalled socket
# can absorb megabytes (how many depends on the machine) before the hub's queue grows.
socket_send_buffer = 16384
heartbeat_interval = 5.0
heartbeat_timeout = 600.0
"""
TITLE = "x" * 190  # fat events fill the stalled client's socket buffers sooner


async def _stalled_client(hub: HubProcess, topics: list[str]) -> tuple[ClientConnection, dict[str, Any]]:
    """A client with a tiny receive buffer that says hello, subscribes, then never reads."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", hub.port))
    sock.setblocking(False)
    ws = await connect(hub.ws_url, sock=sock, max_size=None, ping_interval=None, max_queue=4)
    await ws.send(orjson.dumps({"type": "hello", "protocol": 1, "client": "browser", "name": "stalled"}).decode())
    welcome = orjson.loads(await ws.recv())
    assert welcome["type"] == "welcome"
    await ws.send(orjson.dumps({"type": "subscribe", "topics": topics, "op_id": "op_stall"}).decode())
    while True:
        frame = orjson.loads(await ws.recv())
        if frame.get("type") == "ack" and frame.get("op_id") == "op_stall":
            # Stop reading the socket at all: its 4 KiB receive window fills and stays full.
            ws.transport.pause_reading()
            return ws, welcome


async def test_stalled_client_does_not_delay_others(make_hub: Callable[..., HubProcess]) -> None:
    proc = make_hub(SLOW_CONFIG)
    async with ws_client(proc.ws_url, name="producer") as producer, \
            ws_client(proc.ws_url, name="healthy", kind="daw-plugin") as healthy:
        sid, _ = await new_session(producer, "Stall")
        topic = f"session:{sid}"
        await healthy.request({"type": "subscribe", "topics": [topic]})
        stalled, welcome = await _stalled_client(proc, [topic])
        epoch = welcome["epoch"]
        start_offset = welcome["offset"]

        latencies: list[float] = []
        received: list[int] = []
        acks: list[int] = []
        sem = asyncio.Semaphore(32)

        async def consume() -> None:
            while True:
                frame = await healthy.expect("event", timeout=30)
                latencies.append(time.time() - frame["ts"])
                received.append(frame["offset"])

        async def one(i: int) -> None:
            try:
                ack = await producer.request({"type": "session.rename", "session": sid,
                                              "title": f"{TITLE}{i}", "op_id": op()}, timeout=60)
                acks.append(ack["offset"])
            finally:
                sem.release()

        async def produce(count: int) -> None:
            tasks: list[asyncio.Task[None]] = []
            for _ in range(count):
                await sem.acquire()
                tasks.append(asyncio.create_task(one(len(acks) + len(tasks))))
            await asyncio.gather(*tasks)

        peak = [0.0]
        overflows = [0.0]

        def gauge(text: str, name: str) -> float:
            return float(next(line.split()[1] for line in text.splitlines() if line.startswith(name)))

        async def watch_queues() -> None:
            async with httpx.AsyncClient(base_url=proc.url) as http:
                while True:
                    text = (await http.get("/metrics")).text
                    peak[0] = max(peak[0], gauge(text, "tutti_client_queue_max"))
                    overflows[0] = gauge(text, "tutti_slow_consumers_total")
                    await asyncio.sleep(0.02)

        consumer = asyncio.create_task(consume())
        watcher = asyncio.create_task(watch_queues())
        started = time.monotonic()
        # Produce until backpressure from the stalled socket reaches its hub-side queue
        # (kernel and transport buffers hold a few hundred frames first), then enough to
        # overflow it. A loaded machine may poll /metrics too rarely to see the queue on
        # its way up, so an overflow already counted ends this phase too.
        while peak[0] < 128 and not overflows[0]:
            await produce(200)
            if watcher.done():
                watcher.result()  # raises what stopped the watcher
            assert time.monotonic() - started < 100, \
                f"the stalled client's queue never filled: peak {peak[0]} after {len(acks)} events"
        watcher.cancel()
        await produce(400)
        n = len(acks)
        head = max(acks)
        while len(received) < n:
            await asyncio.sleep(0.05)
            assert time.monotonic() - started < 120
        consumer.cancel()
        elapsed = time.monotonic() - started
        assert received == list(range(start_offset + 1, head + 1))
        lat = sorted(latencies)
        p50, p99 = statistics.median(lat), lat[int(0.99 * (len(lat) - 1))]
        print(f"\nhealthy client while another is stalled: {n} events in {elapsed:.1f}s, "
              f"delivery latency p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms")
        await healthy.ping()

        # the stalled client now reads what reached it: events in order, then goodbye + 4008
        stalled.transport.resume_reading()
        seen: list[int] = []
        goodbye = None
        deadline = time.monotonic() + 60
        try:
            while time.monotonic() < deadline:
                frame = orjson.loads(await asyncio.wait_for(stalled.recv(), 30))
                if frame["type"] == "event":
                    seen.append(frame["offset"])
                elif frame["type"] == "goodbye":
                    goodbye = frame
        except ConnectionClosed:
            pass
        print(f"stalled client: got {len(seen)} of {n} events before it was dropped")
        assert stalled.close_code == 4008, (stalled.close_code, stalled.close_reason)
        assert goodbye is not None and goodbye["close_code"] == 4008
        assert seen == list(range(start_offset + 1, start_offset + 1 + len(seen)))
        assert len(seen) < n

        # and resumes from its last offset: every missed event exactly once, in order
        last = seen[-1] if seen else start_offset
        async with ws_client(proc.ws_url, name="stalled again", resume={"epoch": epoch, "offset": last},
                             topics=[topic]) as again:
            resumed = await again.expect("resumed")
            assert resumed["recovered"] is True and resumed["offset"] == head
            rest = [(await again.expect("event"))["offset"] for _ in range(head - last)]
            assert rest == list(range(last + 1, head + 1))
            await again.ping()


async def test_stalled_client_does_not_block_job_streams(make_hub: Callable[..., HubProcess]) -> None:
    """Job lifecycle and note chunks reach a healthy subscriber while a stalled one sits on 'jobs'."""
    proc = make_hub(SLOW_CONFIG)
    stalled, _ = await _stalled_client(proc, ["jobs"])
    try:
        async with ws_client(proc.ws_url, name="healthy") as c:
            await c.request({"type": "subscribe", "topics": ["jobs"]})
            ack = await c.request({"type": "job.submit", "engine": "slow", "task": "stream",
                                   "params": {"chunks": 30, "interval": 0.01, "notes_per_chunk": 64}})
            job = ack["result"]["job"]
            seqs = []
            while True:
                ev = await c.event("job.notes", job=job)
                seqs.append(ev["event"]["seq"])
                if len(seqs) == 30:
                    break
            await c.event("job.completed", job=job)
            assert seqs == list(range(30))
    finally:
        await stalled.close()
