"""Helpers for integration tests against a real hub: a uvicorn server in a subprocess on a free port.

``HubProcess`` starts ``python -m hub.cli serve`` (with the slow test engine
registered) in its own process group, so tests can SIGKILL it and restart it on
the same data folder. ``WsClient`` is a thin real ``websockets`` client that
matches acks and errors to their ``op_id`` and queues every other frame.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import orjson
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from hub.protocol import SessionCommand
from hub.runtime import Hub as InProcessHub

REPO = Path(__file__).resolve().parents[2]
SLOW_ENGINE = "slow=tests.engines.slow_engine:SlowEngine"
# The engines the tests use; others (a model engine still loading) need not be ready.
NEEDED_ENGINES = frozenset({"transform", "slow"})


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


class HubProcess:
    """One hub server process; ``start`` may be called again after ``kill``/``stop``."""

    def __init__(self, data: Path, *, config: Path | None = None, engines: tuple[str, ...] = (SLOW_ENGINE,),
                 keep_port: bool = False, disabled: tuple[str, ...] = ("amt",)):
        self.data = data
        self.config = config
        self.engines = engines
        # The bundled AMT model costs every hub a torch-importing worker; tests that need it
        # pass disabled=() (or their own --amt-model through a config file).
        self.disabled = disabled
        # keep_port: a restart listens on the same port, so clients reconnecting to the
        # same URL find the restarted hub (reconnect storms depend on it).
        self.keep_port = keep_port
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = data.parent / f"{data.name}-server.log"
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def start(self, timeout: float = 30.0) -> None:
        if not (self.keep_port and self.port):
            self.port = free_port()
        cmd = [sys.executable, "-m", "hub.cli", "serve", "--host", "127.0.0.1",
               "--port", str(self.port), "--data", str(self.data), "--log-level", "warning"]
        for spec in self.engines:
            cmd += ["--engine", spec]
        for name in self.disabled:
            cmd += ["--disable-engine", name]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
        self.starts += 1
        log = self.log_path.open("ab")
        log.write(f"\n--- start {self.starts}: {' '.join(cmd)}\n".encode())
        log.flush()
        self.proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hub exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                engines = httpx.get(f"{self.url}/models", timeout=1.0).json()["engines"]
                available = {e["name"] for e in engines if e["available"]}
                if available >= NEEDED_ENGINES:
                    return
            except (httpx.HTTPError, ValueError, KeyError):
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"hub did not become ready in {timeout}s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 4000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""

    def kill(self) -> None:
        """SIGKILL the server (its engine workers see their pipe close and exit)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)
        self._reap_group()

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._reap_group()

    def _reap_group(self) -> None:
        """End leftover processes of this server's own process group (its workers)."""
        assert self.proc is not None
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                os.killpg(self.proc.pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.05)
        else:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc = None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=10.0)


# --- the WebSocket client --------------------------------------------------------------------


def op() -> str:
    return "op_" + uuid.uuid4().hex


class ServerError(Exception):
    def __init__(self, frame: dict[str, Any]) -> None:
        super().__init__(f"{frame.get('code')}: {frame.get('message')}")
        self.frame = frame
        self.code: str = frame.get("code", "")


class WsClient:
    """A real websockets client: acks/errors resolve ``request``; all else goes to ``inbox``."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.pending: dict[str, asyncio.Future[dict[str, Any]]] = {}
        self.replies: list[dict[str, Any]] = []
        self.welcome: dict[str, Any] = {}
        self.answer_pings = True
        self.closed: asyncio.Future[tuple[int | None, str]] = asyncio.get_running_loop().create_future()
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def open(
        cls,
        url: str,
        *,
        kind: str = "cli",
        name: str = "test",
        hello: bool = True,
        resume: dict[str, Any] | None = None,
        topics: list[str] | None = None,
        **kw: Any,
    ) -> WsClient:
        ws = await connect(url, max_size=None, ping_interval=None, open_timeout=10, **kw)
        client = cls(ws)
        if hello:
            msg: dict[str, Any] = {"type": "hello", "protocol": 1, "client": kind, "name": name}
            if resume is not None:
                msg["resume"] = resume
            if topics:
                msg["topics"] = topics
            await client.send(msg)
            client.welcome = await client.expect("welcome")
        return client

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                frame = orjson.loads(raw)
                kind = frame.get("type")
                if kind == "ping" and self.answer_pings:
                    await self.send({"type": "pong", "t": frame.get("t")})
                    continue
                if kind in ("ack", "error") and frame.get("op_id") in self.pending:
                    self.replies.append(frame)
                    fut = self.pending.pop(frame["op_id"])
                    if not fut.done():
                        fut.set_result(frame)
                    continue
                self.inbox.put_nowait(frame)
        except ConnectionClosed:
            pass
        finally:
            result = (self.ws.close_code, self.ws.close_reason or "")
            if not self.closed.done():
                self.closed.set_result(result)
            # so a waiting `expect` fails at once with the close code instead of timing out
            self.inbox.put_nowait({"type": "_closed", "code": result[0], "reason": result[1]})
            for fut in self.pending.values():
                if not fut.done():
                    fut.set_exception(ConnectionError(f"socket closed {result}"))

    async def send(self, msg: dict[str, Any] | str | bytes) -> None:
        await self.ws.send(msg if isinstance(msg, str | bytes) else orjson.dumps(msg).decode())

    async def call(self, msg: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Send a command; return its ack or error frame (exactly one is expected)."""
        msg = dict(msg)
        msg.setdefault("op_id", op())
        fut: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self.pending[msg["op_id"]] = fut
        await self.send(msg)
        return await asyncio.wait_for(fut, timeout)

    async def request(self, msg: dict[str, Any], timeout: float = 15.0) -> dict[str, Any]:
        """Like ``call`` but raise ServerError on an error reply; returns the ack."""
        reply = await self.call(msg, timeout)
        if reply["type"] == "error":
            raise ServerError(reply)
        return reply

    async def expect(self, kind: str | Callable[[dict[str, Any]], bool], timeout: float = 15.0,
                     skip: tuple[str, ...] = ("presence", "job.progress", "transport.state")) -> dict[str, Any]:
        """The next inbox frame matching ``kind`` (a type or predicate); others of ``skip`` are dropped."""
        pred = kind if callable(kind) else (lambda f: f.get("type") == kind)
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await asyncio.wait_for(self.inbox.get(), max(left, 0.001))
            if pred(frame):
                return frame
            if frame.get("type") not in skip:
                raise AssertionError(f"unexpected frame while waiting for {kind}: {frame}")

    async def event(self, event_type: str, timeout: float = 15.0, **match: Any) -> dict[str, Any]:
        """The next durable event of ``event_type`` (other events are skipped)."""

        def pred(f: dict[str, Any]) -> bool:
            if f.get("type") != "event" or f["event"]["type"] != event_type:
                return False
            return all(f["event"].get(k) == v for k, v in match.items())

        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            left = deadline - asyncio.get_running_loop().time()
            frame = await asyncio.wait_for(self.inbox.get(), max(left, 0.001))
            if pred(frame):
                return frame

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while not self.inbox.empty():
            out.append(self.inbox.get_nowait())
        return out

    async def ping(self, timeout: float = 10.0) -> None:
        """An application ping must get its pong: the connection still works."""
        t = time.monotonic()
        await self.send({"type": "ping", "t": t})
        await self.expect(lambda f: f.get("type") == "pong" and f.get("t") == t, timeout,
                          skip=("presence", "job.progress", "transport.state", "event"))

    async def close(self) -> None:
        with contextlib.suppress(Exception):
            await self.ws.close()
        self._reader.cancel()
        with contextlib.suppress(BaseException):
            await self._reader

    def abort(self) -> None:
        """Drop the TCP connection without a closing handshake."""
        self.ws.transport.abort()
        self._reader.cancel()


@contextlib.asynccontextmanager
async def ws_client(url: str, **kw: Any) -> AsyncIterator[WsClient]:
    client = await WsClient.open(url, **kw)
    try:
        yield client
    finally:
        await client.close()


async def new_session(client: WsClient, title: str = "Song", sections: tuple[str, ...] = ("verse",)) -> tuple[str, list[str]]:
    ack = await client.request({"type": "session.create", "title": title})
    sid = ack["result"]["session"]
    secs = []
    for name in sections:
        a = await client.request({"type": "section.add", "session": sid, "name": name, "bars": 8})
        secs.append(a["result"]["section"])
    return sid, secs


# --- helpers for job and transport tests ----------------------------------------------------


def _pong_for(t0: float) -> Callable[[dict[str, Any]], bool]:
    """Matches the clock.pong that answers the ping sent at ``t0``."""
    return lambda f: f.get("type") == "clock.pong" and f.get("t0") == t0


async def wait_frame(client: WsClient, pred: Callable[[dict[str, Any]], bool], timeout: float = 30.0,
                     seen: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The next inbox frame matching ``pred``; others are dropped (or appended to ``seen``)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        left = deadline - loop.time()
        if left <= 0:
            raise TimeoutError(f"no matching frame in {timeout}s")
        frame = await asyncio.wait_for(client.inbox.get(), left)
        if frame.get("type") == "_closed":
            raise ConnectionError(f"socket closed while waiting: {frame}")
        if pred(frame):
            return frame
        if seen is not None:
            seen.append(frame)


def is_event(event_type: str, **match: Any) -> Callable[[dict[str, Any]], bool]:
    """A predicate: a durable event frame of ``event_type`` whose event fields equal ``match``."""

    def pred(f: dict[str, Any]) -> bool:
        if f.get("type") != "event" or f["event"].get("type") != event_type:
            return False
        return all(f["event"].get(k) == v for k, v in match.items())

    return pred


async def jobs_frames(client: WsClient, job_ids: list[str], timeout: float = 60.0,
                      until: tuple[str, ...] = ("job.completed", "job.failed", "job.cancelled")
                      ) -> dict[str, list[dict[str, Any]]]:
    """Every frame about each of ``job_ids`` (events, progress, file.ready) up to its end."""
    out: dict[str, list[dict[str, Any]]] = {j: [] for j in job_ids}
    open_jobs = set(job_ids)

    def about(f: dict[str, Any]) -> bool:
        if f.get("type") == "job.progress":
            return f.get("job") in out
        return f.get("type") == "event" and f["event"].get("job") in out

    while open_jobs:
        frame = await wait_frame(client, about, timeout)
        job = frame["job"] if frame["type"] == "job.progress" else frame["event"]["job"]
        out[job].append(frame)
        if frame["type"] == "event" and frame["event"]["type"] in until:
            open_jobs.discard(job)
    return out


async def job_frames(client: WsClient, job_id: str, timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every frame about ``job_id`` up to its terminal event (other jobs' frames are dropped)."""
    return (await jobs_frames(client, [job_id], timeout))[job_id]


def slow_job(session: str | None = None, section: str | None = None, *, chunks: int = 24,
             interval: float = 0.1, priority: int = 0, **extra: Any) -> dict[str, Any]:
    """A job.submit message for the slow test engine."""
    msg: dict[str, Any] = {"type": "job.submit", "engine": "slow", "task": "stream",
                           "params": {"chunks": chunks, "interval": interval, **extra},
                           "priority": priority}
    if session is not None:
        msg["session"] = session
    if section is not None:
        msg["section"] = section
    return msg


async def clock_offset(client: WsClient, samples: int = 15) -> tuple[float, float]:
    """(hub clock - time.monotonic(), median round trip) from clock.ping/clock.pong samples.

    Each pong must echo its t0, and the hub's clock must never go back between samples.
    """
    offsets: list[tuple[float, float]] = []
    last_server = float("-inf")
    for _ in range(samples):
        t0 = time.monotonic()
        await client.send({"type": "clock.ping", "t0": t0})
        pong = await wait_frame(client, _pong_for(t0), 10)
        t1 = time.monotonic()
        assert pong["server_time"] >= last_server, "the hub clock is monotonic"
        last_server = pong["server_time"]
        offsets.append((t1 - t0, pong["server_time"] - (t0 + t1) / 2))
    offsets.sort()  # the fastest round trips give the best estimates
    best = offsets[: max(3, samples // 3)]
    best_offsets = sorted(o for _, o in best)
    return best_offsets[len(best_offsets) // 2], offsets[len(offsets) // 2][0]


async def run_command(hub: InProcessHub, command: SessionCommand) -> dict[str, Any]:
    """Execute a session command on an in-process hub; the ack's result."""
    ack = await hub.core.execute(command, op_id=None, client=None)
    return ack.result
