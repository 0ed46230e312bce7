"""A crashing or failing engine fails its job with a clear code; the hub and the worker carry on."""

from __future__ import annotations

from collections.abc import Callable

from serverkit import HubProcess, slow_job, ws_client


async def test_worker_crash_fails_the_job_and_the_worker_restarts(make_hub: Callable[..., HubProcess]) -> None:
    hub = make_hub()
    async with ws_client(hub.ws_url) as client:
        await client.request({"type": "subscribe", "topics": ["jobs"]})
        crashed = (await client.request(slow_job(chunks=20, interval=0.05, crash=True)))["result"]["job"]
        failed = await client.event("job.failed", timeout=60, job=crashed)
        assert failed["event"]["code"] == "worker_crashed"
        # The socket is fine and the restarted worker takes the next job.
        await client.ping()
        ok = (await client.request(slow_job(chunks=3, interval=0.01)))["result"]["job"]
        done = await client.event("job.completed", timeout=120, job=ok)
        assert done["event"]["artifacts"]
        record = (await client.request({"type": "job.get", "job": crashed}))["result"]
        assert record["state"] == "failed" and record["code"] == "worker_crashed"


async def test_engine_failure_is_reported_as_data(make_hub: Callable[..., HubProcess]) -> None:
    hub = make_hub()
    async with ws_client(hub.ws_url) as client:
        await client.request({"type": "subscribe", "topics": ["jobs"]})
        failing = (await client.request(slow_job(chunks=10, interval=0.01, fail=True)))["result"]["job"]
        failed = await client.event("job.failed", timeout=60, job=failing)
        assert failed["event"]["code"] == "test_failure" and failed["event"]["message"]
        buggy = (await client.request(slow_job(chunks=10, interval=0.01, error=True)))["result"]["job"]
        failed = await client.event("job.failed", timeout=60, job=buggy)
        assert failed["event"]["code"] == "engine_error"
