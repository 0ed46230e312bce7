"""Transport sync on loopback: an internal clock (the bridge's) drives a session's
transport; a browser-kind subscriber extrapolates the beat from ``transport.state`` and
its clock offset. Reports beat error p50/p99 in milliseconds (target: p99 <= 5 ms).

    python bench/transport_sync.py            # starts a hub on a free port
    python bench/transport_sync.py --hub ws://127.0.0.1:8765/ws
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from plugins.client import Backoff, HostTimeline, TuttiClient
from plugins.sendpolicy import SendPolicy

SAMPLE_EVERY = 0.005
SETTLE = 0.05  # seconds after a change before a sample counts as "steady"


@contextlib.contextmanager
def local_hub() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = Path(tempfile.mkdtemp(prefix="tutti-bench-"))
    proc = subprocess.Popen([sys.executable, "-m", "hub.cli", "serve", "--port", str(port), "--data", str(data),
                             "--log-level", "warning"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            time.sleep(0.1)
        yield f"ws://127.0.0.1:{port}/ws"
    finally:
        proc.terminate()
        proc.wait(15)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def run(url: str, seconds: float) -> dict[str, list[float]]:
    fast = Backoff(base=0.05, cap=0.5)
    async with TuttiClient(url, name="bench-daw", backoff=fast) as daw, \
            TuttiClient(url, name="bench-web", kind="browser", backoff=Backoff(base=0.05, cap=0.5)) as web:
        sid = await daw.create_session("transport bench", tempo=120.0)
        await web.subscribe(f"transport:{sid}")
        await daw.take_transport(sid)
        await web.measure_clock(samples=20)
        clock = daw.clock
        start = clock()
        # The scenario: play at 120, ramp to 90 after a third, relocate after two thirds.
        script = [(0.0, lambda tl, t: tl.play(t, 0.0)),
                  (seconds / 3, lambda tl, t: tl.tempo(t, 90.0)),
                  (2 * seconds / 3, lambda tl, t: tl.locate(t, 64.0))]
        tl = HostTimeline(bpm=120.0, time_origin=start)
        policy = SendPolicy(refresh=1.0)
        errors: dict[str, list[float]] = {"all": [], "steady": []}
        last_change = start
        sends: list[asyncio.Task[object]] = []
        while (now := clock()) - start < seconds:
            while script and now - start >= script[0][0]:
                tl = script.pop(0)[1](tl, now)
                last_change = now
            if policy.due(tl, now):
                policy.sent(tl, now)
                sends.append(asyncio.create_task(daw.send_transport(sid, tl)))
            at = clock()
            beat = web.beat_at(sid, at)
            if beat is not None and now - start > 0.2:
                err_ms = abs(beat - tl.beat_at(at)) * 60.0 / tl.bpm * 1000.0
                errors["all"].append(err_ms)
                if at - last_change >= SETTLE:
                    errors["steady"].append(err_ms)
            await asyncio.sleep(SAMPLE_EVERY)
        await asyncio.gather(*sends)
        errors["offset_uncertainty_ms"] = [1000.0 * (web.core.clock.uncertainty or 0.0)]
        return errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--hub", default=None, help="use a running hub instead of starting one")
    parser.add_argument("--seconds", type=float, default=9.0)
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        url = args.hub or stack.enter_context(local_hub())
        errors = asyncio.run(run(url, args.seconds))
    print("| samples | n | beat error p50 (ms) | p99 (ms) | max (ms) | target p99 <= 5 ms |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name in ("steady", "all"):
        values = errors[name]
        p50, p99 = statistics.median(values), pct(values, 0.99)
        ok = "met" if p99 <= 5.0 else "missed"
        print(f"| {name} | {len(values)} | {p50:.3f} | {p99:.3f} | {max(values):.3f} | {ok} |")
    print(f"\nclock offset uncertainty (error bound of the estimate): {errors['offset_uncertainty_ms'][0]:.3f} ms")
    print("'all' includes samples within 50 ms after play / tempo / relocate, before the update arrives.")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
