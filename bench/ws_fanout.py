#!/usr/bin/env python3
"""WebSocket fan-out benchmark: one publisher -> N subscribers through a relay server.

Adapted from ../shared/bench/ws_fanout.py (the shared harness of 2026-11-21; same clients,
same phases, same RESULT line), typed and linted for this repo, with one change of method:
the shared closed loop counts the c-th message each subscriber receives, which stalls on a
server that conflates latest-value frames. Here every subscriber tracks the NEWEST seq it
holds, and a message counts as delivered to a subscriber once it holds that seq or a newer
one. So a lossless relay measures exactly as before, and a conflating one is measured, not
punished: the share of published frames actually delivered and the staleness at the
receivers show what conflation cost.

The driver starts the server under test as a subprocess (127.0.0.1 only), then runs all
clients (1 publisher + N subscribers) in THIS process on raw asyncio sockets with a minimal
RFC 6455 client (no permessage-deflate, zero mask key) so that client cost stays small.

Per (server, N) it measures:
  rss_per_conn_kib  server RSS growth per idle subscriber connection (after N connects, idle 1 s)
  tput_msgs_s       delivered messages/s (sum over subscribers) at saturation; closed loop:
                    publisher keeps at most --window messages newer than the oldest value
                    any subscriber holds
  tput_share        delivered / (published x N) in that phase (1.0 = lossless)
  lat_p50/p99/max   publish->receive latency (ms) of delivered frames at a fixed --rate
                    (default 60 msg/s)
  lat_share         delivered / (published x N) at that rate
  age_p50/p99       staleness: age (ms) of the value a subscriber holds, now - its t_sent,
                    sampled every 5-15 ms (random) on 100 random subscribers at the fixed rate.
                    A receiver that is never behind still averages half the publish period:
                    at 60 Hz an ideal relay gives age p50 ~ 8.3 ms + latency, p99 ~ 16.5 ms + latency
  behind_p99        how long (ms) a sampled subscriber had been missing a newer value (0 if current)
  srv_cpu           server CPU utilisation during the throughput phase (1.0 = one full core);
                    lat_srv_cpu / lat_cli_cpu / lat_other_cpu: the same during the fixed-rate phase
  errors            close frames, undecodable frames, or a seq not newer than the one held
Servers: built-in ones from ws_servers.py (next to this file), or any other via
--server-cmd 'CMD ... {port}' with --sub-path/--pub-path (same relay protocol: text
published on the pub path goes to every sub). '{python}' in --server-cmd is this interpreter.

Example:
  python bench/ws_fanout.py --servers websockets --ns 100,500,1000 \\
      --server-cmd '{python} hub_relay.py --port {port}' --server-label hub \\
      --sub-path /bench/sub --pub-path /bench/pub
The final line printed is 'RESULT <json>' with every figure (bench/fanout_report.py tabulates).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import importlib
import itertools
import json
import os
import random
import resource
import shlex
import socket
import statistics
import subprocess
import sys
import time
from typing import Any

import orjson
import psutil

HERE = os.path.dirname(os.path.abspath(__file__))
perf = time.perf_counter

BUILTIN = {
    "websockets": ["ws_servers.py", "websockets"],
    "uvicorn-websockets": ["ws_servers.py", "starlette", "--ws", "websockets"],
    "uvicorn-websockets-sansio": ["ws_servers.py", "starlette", "--ws", "websockets-sansio"],
    "uvicorn-wsproto": ["ws_servers.py", "starlette", "--ws", "wsproto"],
}


def cpu_busy_s() -> float:
    """Machine-wide busy CPU seconds (all cores) from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def ws_frame(payload: bytes, opcode: int = 1) -> bytes:
    """Client->server frame, FIN set, masked with a zero key (payload unchanged)."""
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + n.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + n.to_bytes(8, "big")
    return head + b"\0\0\0\0" + payload


def quantile(values: list[float], p: float) -> float:
    return values[min(len(values) - 1, int(p * len(values)))]


class Hub:
    """Shared client state: what was published when, and how far the slowest subscriber is."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seq = 0                       # last seq published (never reset between phases)
        self.sent_at: dict[int, float] = {}  # seq -> perf() at publish
        self.holders: dict[int, int] = {0: n}  # newest seq held -> how many subscribers hold it
        self.floor = 0                     # oldest newest-seq any subscriber holds
        self.total = 0                     # deliveries (sum over subscribers)
        self.window = 1
        self.waiting = False
        self.event = asyncio.Event()
        self.measure_lat = False
        self.lats: list[float] = []
        self.errors = 0

    def advance(self, old: int, new: int) -> None:
        """A subscriber's newest seq moved from ``old`` to ``new`` (amortised O(1))."""
        h = self.holders
        left = h[old] - 1
        if left:
            h[old] = left
        else:
            del h[old]
        h[new] = h.get(new, 0) + 1
        if old == self.floor and not left:
            f = self.floor
            while f not in h and f < self.seq:
                f += 1
            self.floor = f
            if self.waiting and self.seq - f < self.window:
                self.waiting = False
                self.event.set()

    def reset_holders(self, clients: list[Client]) -> None:
        self.holders = {}
        for c in clients:
            self.holders[c.newest] = self.holders.get(c.newest, 0) + 1
        self.floor = min(self.holders)


class Client(asyncio.Protocol):
    def __init__(self, hub: Hub, path: str, is_sub: bool = True) -> None:
        self.hub = hub
        self.path = path
        self.is_sub = is_sub
        self.buf = bytearray()
        self.handshaken = False
        self.count = 0
        self.newest = 0
        self.transport: asyncio.Transport | None = None
        self.ready: asyncio.Future[bool] = asyncio.get_running_loop().create_future()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        req = (f"GET {self.path} HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
               f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n")
        transport.write(req.encode())

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.ready.done():
            self.ready.set_exception(ConnectionError(f"lost before handshake: {exc}"))

    def write(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        now = perf()
        buf = self.buf
        buf += data
        if not self.handshaken:
            i = buf.find(b"\r\n\r\n")
            if i < 0:
                return
            head = bytes(buf[:i])
            del buf[:i + 4]
            if not head.startswith(b"HTTP/1.1 101"):
                if not self.ready.done():
                    self.ready.set_exception(ConnectionError(head[:200].decode(errors="replace")))
                return
            self.handshaken = True
            self.ready.set_result(True)
        pos = 0
        n = len(buf)
        hub = self.hub
        while n - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            ln = b1 & 0x7F
            hl = 2
            if ln == 126:
                if n - pos < 4:
                    break
                ln = (buf[pos + 2] << 8) | buf[pos + 3]
                hl = 4
            elif ln == 127:
                if n - pos < 10:
                    break
                ln = int.from_bytes(buf[pos + 2:pos + 10], "big")
                hl = 10
            if b1 & 0x80:
                hl += 4
            if n - pos < hl + ln:
                break
            op = b0 & 0x0F
            if op == 1 or op == 2:
                if self.is_sub:
                    self.count += 1
                    hub.total += 1
                    try:
                        msg = orjson.loads(bytes(buf[pos + hl:pos + hl + ln]))
                        seq = int(msg["seq"])
                        t_sent = float(msg["t_sent"])
                    except Exception:
                        hub.errors += 1
                    else:
                        if hub.measure_lat:
                            hub.lats.append(now - t_sent)
                        old = self.newest
                        if seq > old:
                            self.newest = seq
                            hub.advance(old, seq)
                        elif seq:  # a duplicate or an older value than the one held
                            hub.errors += 1
            elif op == 9:  # ping -> pong
                self.write(ws_frame(bytes(buf[pos + hl:pos + hl + ln]), 0xA))
            elif op == 8:
                hub.errors += 1
            pos += hl + ln
        if pos:
            del buf[:pos]


def make_msg(seq: int, t_sent: float, session: str = "8f14e45fceea167a5a36dedd4bea2543") -> bytes:
    return orjson.dumps({
        "type": "transport.sync", "seq": seq, "session": session, "bpm": 120.0,
        "beat": round(seq * 0.125, 3), "bar": seq // 32 + 1, "time_sig": [4, 4],
        "playing": True, "loop": False, "source": "clock", "t_sent": t_sent,
    })


def publish(hub: Hub, pub: Client, seq: int | None = None) -> None:
    """Send one message; seq 0 is the priming message (not tracked)."""
    t = perf()
    if seq is None:
        hub.seq += 1
        seq = hub.seq
        hub.sent_at[seq] = t
    pub.write(ws_frame(make_msg(seq, t)))


async def connect_all(port: int, path: str, hub: Hub, n: int, batch: int = 100) -> list[Client]:
    loop = asyncio.get_running_loop()
    clients: list[Client] = []
    for i in range(0, n, batch):
        k = min(batch, n - i)
        conns = await asyncio.gather(*[loop.create_connection(lambda: Client(hub, path), "127.0.0.1", port)
                                       for _ in range(k)])
        for _, proto in conns:
            clients.append(proto)
        await asyncio.wait_for(asyncio.gather(*[p.ready for _, p in conns]), 30)
    return clients


async def wait_port(port: int, timeout: float = 60.0) -> bool:
    t_end = perf() + timeout
    while perf() < t_end:
        try:
            s = socket.create_connection(("127.0.0.1", port), timeout=0.5)
            s.close()
            return True
        except OSError:
            await asyncio.sleep(0.05)
    return False


class Staleness:
    """Samples, at random 5-15 ms intervals, the held-value age of up to 100 random subscribers."""

    per_tick = 100

    def __init__(self, hub: Hub, clients: list[Client]) -> None:
        self.hub = hub
        self.clients = clients
        self.ages: list[float] = []
        self.behind: list[float] = []
        self.stop = False

    async def run(self) -> None:
        hub = self.hub
        rnd = random.Random(1)
        k = min(len(self.clients), self.per_tick)
        while not self.stop:
            # Random spacing, so the samples do not phase-lock with the publish period.
            await asyncio.sleep(rnd.uniform(0.005, 0.015))
            now = perf()
            sent_at = hub.sent_at
            head = hub.seq
            # A random subset per tick keeps the sampler's own cost small at N = 1000.
            for c in rnd.sample(self.clients, k):
                s = c.newest
                t = sent_at.get(s)
                if t is None:
                    continue  # still holds a priming value
                self.ages.append(now - t)
                self.behind.append(now - sent_at[s + 1] if s < head else 0.0)


async def run_one(label: str, cmd: list[str], paths: tuple[str, str], port: int, n: int,
                  a: argparse.Namespace) -> dict[str, Any]:
    sub_path, pub_path = paths
    env = dict(os.environ)
    pre = ["taskset", "-c", a.server_cpu] if a.pin else []
    proc = subprocess.Popen(pre + cmd, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    res: dict[str, Any] = {"server": label, "n": n}
    clients: list[Client] = []
    pub: Client | None = None
    try:
        if not await wait_port(port):
            if proc.poll() is not None and proc.stderr is not None:
                raise RuntimeError("server did not start: " + proc.stderr.read(2000).decode(errors="replace"))
            raise RuntimeError("server did not open port")
        await asyncio.sleep(0.3)
        sp = psutil.Process(proc.pid)
        hub = Hub(n)
        loop = asyncio.get_running_loop()
        # publisher first (so lazily imported handshake code is already in RSS)
        _, pub = await loop.create_connection(lambda: Client(hub, pub_path, is_sub=False), "127.0.0.1", port)
        await asyncio.wait_for(pub.ready, 10)
        await asyncio.sleep(0.5)
        rss0 = sp.memory_info().rss
        t0 = perf()
        clients = await connect_all(port, sub_path, hub, n)
        res["connect_s"] = round(perf() - t0, 3)
        await asyncio.sleep(1.0)
        rss1 = sp.memory_info().rss
        res["rss_base_mib"] = round(rss0 / 2**20, 1)
        res["rss_per_conn_kib"] = round((rss1 - rss0) / n / 1024, 1)

        # priming: make sure every subscriber is registered server-side
        ok = False
        for _ in range(60):  # up to 15 s: on a loaded machine a starved server registers late
            publish(hub, pub, seq=0)
            await asyncio.sleep(0.25)
            if all(c.count >= 1 for c in clients):
                ok = True
                break
        if not ok:
            raise RuntimeError("not all subscribers receive messages")
        await asyncio.sleep(0.3)
        hub.total = 0

        # --- saturation throughput (closed loop with a window over the slowest holder) ---
        hub.window = a.window
        hub.measure_lat = False
        samples: list[tuple[float, int]] = []
        stop = False

        async def sampler() -> None:
            while not stop:
                samples.append((perf(), hub.total))
                await asyncio.sleep(0.25)

        st = asyncio.ensure_future(sampler())
        seq0 = hub.seq
        t_start = perf()
        t_meas = t_start + a.warmup
        t_end = t_meas + a.tput_seconds
        cpu_a = None
        ccpu_a = tot_a = tm_a = mb_a = 0.0
        seq_a = seq0
        while True:
            now = perf()
            if cpu_a is None and now >= t_meas:
                cpu_a = sp.cpu_times()
                ccpu_a = time.process_time()
                tot_a = hub.total
                tm_a = now
                mb_a = cpu_busy_s()
                seq_a = hub.seq
            if now >= t_end or hub.seq - seq0 >= a.max_msgs:
                break
            if hub.seq - hub.floor >= hub.window:
                hub.waiting = True
                hub.event.clear()
                try:
                    await asyncio.wait_for(hub.event.wait(), 5.0)
                except TimeoutError:
                    raise RuntimeError(f"stalled at seq={hub.seq} floor={hub.floor}") from None
                continue
            publish(hub, pub)
        tm_b = perf()
        tot_b = hub.total
        seq_b = hub.seq
        cpu_b = sp.cpu_times()
        ccpu_b = time.process_time()
        mb_b = cpu_busy_s()
        assert cpu_a is not None
        stop = True
        await st
        # drain: every subscriber ends holding the last value
        t_d = perf() + 5
        while hub.floor < hub.seq and perf() < t_d:
            await asyncio.sleep(0.01)
        wall = tm_b - tm_a
        res["tput_msgs_s"] = round((tot_b - tot_a) / wall)
        # per-0.25s-window rates inside the measured span -> median
        rates = [(b[1] - a_[1]) / (b[0] - a_[0]) for a_, b in itertools.pairwise(samples)
                 if a_[0] >= tm_a and b[0] <= tm_b and b[0] > a_[0]]
        res["tput_median_window"] = round(statistics.median(rates)) if rates else None
        res["published_msgs_s"] = round((seq_b - seq_a) / wall, 1)
        published = hub.seq - seq0
        res["tput_share"] = round(hub.total / (published * n), 4) if published else None
        res["srv_cpu"] = round(((cpu_b.user + cpu_b.system) - (cpu_a.user + cpu_a.system)) / wall, 2)
        res["cli_cpu"] = round((ccpu_b - ccpu_a) / wall, 2)
        # CPU used by anything else on the machine during the throughput phase (other load = noise)
        res["other_cpu"] = round((mb_b - mb_a) / wall - res["srv_cpu"] - res["cli_cpu"], 2)
        res["tput_behind_at_end"] = hub.seq - hub.floor  # > 0: not all subscribers got the last value

        # --- latency, share and staleness at a fixed rate ---
        await asyncio.sleep(0.3)
        hub.reset_holders(clients)
        hub.total = 0
        hub.measure_lat = True
        hub.lats = []
        stale = Staleness(hub, clients)
        nmsg = int(a.rate * a.lat_seconds)
        seq0 = hub.seq
        cpu_a = sp.cpu_times()
        ccpu_a = time.process_time()
        mb_a = cpu_busy_s()
        t0 = perf() + 0.05
        sampler_task: asyncio.Future[None] | None = None
        for i in range(nmsg):
            target = t0 + i / a.rate
            d = target - perf()
            if d > 0:
                await asyncio.sleep(d)
            publish(hub, pub)
            if i == int(a.rate * 0.25):  # sample once every subscriber held a value of this phase
                sampler_task = asyncio.ensure_future(stale.run())
        wall = perf() - t0
        cpu_b = sp.cpu_times()
        res["lat_srv_cpu"] = round(((cpu_b.user + cpu_b.system) - (cpu_a.user + cpu_a.system)) / wall, 2)
        res["lat_cli_cpu"] = round((time.process_time() - ccpu_a) / wall, 2)
        res["lat_other_cpu"] = round((cpu_busy_s() - mb_a) / wall - res["lat_srv_cpu"] - res["lat_cli_cpu"], 2)
        stale.stop = True
        if sampler_task is not None:
            await sampler_task
        t_d = perf() + 5
        while hub.floor < hub.seq and perf() < t_d:
            await asyncio.sleep(0.01)
        hub.measure_lat = False
        lats = sorted(hub.lats)
        if lats:
            res["lat_p50_ms"] = round(quantile(lats, 0.50) * 1000, 3)
            res["lat_p99_ms"] = round(quantile(lats, 0.99) * 1000, 3)
            res["lat_max_ms"] = round(lats[-1] * 1000, 3)
        res["lat_samples"] = len(lats)
        res["lat_share"] = round(len(lats) / (nmsg * n), 4)
        res["lat_behind_at_end"] = hub.seq - hub.floor
        ages = sorted(stale.ages)
        behind = sorted(stale.behind)
        if ages:
            res["age_p50_ms"] = round(quantile(ages, 0.50) * 1000, 3)
            res["age_p99_ms"] = round(quantile(ages, 0.99) * 1000, 3)
            res["behind_p99_ms"] = round(quantile(behind, 0.99) * 1000, 3)
            res["age_samples"] = len(ages)
        res["errors"] = hub.errors
    except Exception as e:  # keep going with the other configs
        res["error"] = repr(e)[:300]
    finally:
        for c in clients:
            if c.transport:
                c.transport.abort()
        if pub and pub.transport:
            pub.transport.abort()
        await asyncio.sleep(0.2)
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
    return res


async def main(a: argparse.Namespace) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    port = a.port
    servers: list[tuple[str, list[str] | str]] = []
    for s in a.servers.split(","):
        s = s.strip()
        if s in BUILTIN:
            argv = [sys.executable, *BUILTIN[s], "--loop", a.server_loop]
            servers.append((s + ("" if a.server_loop == "asyncio" else "+uvloop"), argv))
    for label, server_cmd in zip(a.server_label, a.server_cmd, strict=True):
        servers.append((label, server_cmd))
    ns = [int(x) for x in a.ns.split(",")]
    for rep in range(a.repeat):
        for n in ns:
            for label, spec in servers:   # interleave servers for each N
                port += 1
                # The built-in relays serve /sub and /pub; --sub-path/--pub-path are the
                # --server-cmd servers' (the shared harness applied them to all servers).
                if isinstance(spec, list):
                    c = [*spec, "--port", str(port)]
                    paths = ("/sub", "/pub")
                else:
                    c = shlex.split(spec.replace("{port}", str(port)).replace("{python}", sys.executable))
                    paths = (a.sub_path, a.pub_path)
                r = await run_one(label, c, paths, port, n, a)
                r["rep"] = rep
                print(json.dumps(r), flush=True)
                out.append(r)
    return out


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--servers", default="websockets",
                    help="built-in servers (comma-separated; '' for none): " + ", ".join(BUILTIN))
    ap.add_argument("--server-loop", default="asyncio", choices=["asyncio", "uvloop"],
                    help="event loop of the built-in servers")
    ap.add_argument("--server-cmd", action="append", default=[],
                    help="extra server command ('{port}', '{python}' are replaced); repeatable")
    ap.add_argument("--server-label", action="append", default=[], help="one label per --server-cmd")
    ap.add_argument("--sub-path", default="/sub", help="subscriber path of the --server-cmd servers")
    ap.add_argument("--pub-path", default="/pub", help="publisher path of the --server-cmd servers")
    ap.add_argument("--ns", default="10,100,500,1000")
    ap.add_argument("--window", type=int, default=16,
                    help="max messages newer than the oldest value a subscriber holds")
    ap.add_argument("--warmup", type=float, default=0.5)
    ap.add_argument("--tput-seconds", type=float, default=3.0)
    ap.add_argument("--rate", type=float, default=60.0)
    ap.add_argument("--lat-seconds", type=float, default=5.0)
    ap.add_argument("--max-msgs", type=int, default=500_000, help="hard cap on messages per phase")
    ap.add_argument("--repeat", type=int, default=1)
    ap.add_argument("--port", type=int, default=18700)
    ap.add_argument("--no-pin", dest="pin", action="store_false", help="do not pin server/client to CPUs")
    ap.add_argument("--server-cpu", default="0")
    ap.add_argument("--client-cpu", default="1")
    ap.add_argument("--client-loop", default="auto", choices=["auto", "asyncio", "uvloop"],
                    help="auto: uvloop when installed (the shared harness's default), else asyncio")
    a = ap.parse_args(argv)
    if len(a.server_label) < len(a.server_cmd):
        a.server_label += [f"custom{i}" for i in range(len(a.server_label), len(a.server_cmd))]
    return a


def run(a: argparse.Namespace) -> list[dict[str, Any]]:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.pin:
        os.sched_setaffinity(0, {int(x) for x in a.client_cpu.split(",")})
    uvloop: Any = None
    if a.client_loop != "asyncio":
        try:
            uvloop = importlib.import_module("uvloop")  # optional; not a project dependency
        except ImportError:
            if a.client_loop == "uvloop":
                raise
    print(f"client loop: {'uvloop' if uvloop else 'asyncio'}", file=sys.stderr, flush=True)
    if uvloop is not None:
        out: list[dict[str, Any]] = uvloop.run(main(a))
        return out
    return asyncio.run(main(a))


if __name__ == "__main__":
    result = run(parse_args())
    print("RESULT " + json.dumps(result, separators=(",", ":")))
