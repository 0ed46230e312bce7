"""`tutti serve` start-up and a clean SIGTERM: running jobs end as `interrupted`, nothing is lost."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import httpx
from serverkit import HubProcess, new_session, ws_client


async def test_sigterm_interrupts_running_jobs_and_keeps_acked_state(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data")
    hub.start()
    try:
        assert f"listening on http://127.0.0.1:{hub.port}/" in hub.log_tail()
        async with ws_client(hub.ws_url) as client:
            sid, (sec,) = await new_session(client, "Shutdown", ("verse",))
            await client.request({"type": "subscribe", "topics": ["jobs", f"session:{sid}"]})
            ack = await client.request({
                "type": "job.submit", "engine": "slow", "task": "stream",
                "params": {"chunks": 400, "interval": 0.05}, "session": sid, "section": sec,
            })
            job = ack["result"]["job"]
            await client.event("job.started", job=job)
            await client.event("job.notes", job=job)
            await client.request({"type": "section.rename", "session": sid, "section": sec, "name": "hook"})
            assert hub.proc is not None
            hub.proc.send_signal(signal.SIGTERM)
            # uvicorn closes sockets with 1012 (service restart) before the hub's own goodbye
            # (1001) can go out; both tell the client to reconnect and resume.
            bye = await client.expect(lambda f: f.get("type") in ("goodbye", "_closed"), timeout=20,
                                      skip=("presence", "job.progress", "event", "ping"))
            assert bye.get("close_code", bye.get("code")) in (1001, 1012)
            code = await asyncio.to_thread(hub.proc.wait, 20)
            assert code == 0, hub.log_tail()
        hub.proc = None
        hub.start()
        record = httpx.get(f"{hub.url}/jobs/{job}", timeout=10).json()
        assert record["state"] == "failed" and record["code"] == "interrupted"
        session = httpx.get(f"{hub.url}/sessions/{sid}", timeout=10).json()
        assert [s["name"] for s in session["sections"]] == ["hook"]
        async with ws_client(hub.ws_url) as client:
            await client.request({"type": "subscribe", "topics": ["jobs"], "resume": {"epoch": "unknown", "offset": 0}})
            # A different epoch means a snapshot instead of a replay; the job record tells the story.
            got = await client.request({"type": "job.get", "job": job})
            assert got["result"]["state"] == "failed"
    finally:
        hub.stop()


async def test_sigterm_stores_a_tempo_change_still_inside_its_debounce(tmp_path: Path) -> None:
    """A tempo and meter change waits out ``transport_debounce`` before it becomes an event
    (a ramp is one event); a clean shutdown inside that wait still stores it."""
    config = tmp_path / "tutti.toml"
    config.write_text("[tutti]\ntransport_debounce = 60\n")
    hub = HubProcess(tmp_path / "data", config=config)
    hub.start()
    try:
        async with ws_client(hub.ws_url, kind="daw-plugin", name="DAW") as daw:
            sid, _ = await new_session(daw, "Debounced")
            await daw.request({"type": "transport.take", "session": sid})
            ack = await daw.request({"type": "transport.update", "session": sid, "playing": True,
                                     "bpm": 96.5, "beat": 0.0, "meter": {"numerator": 3, "denominator": 4}})
            assert ack["type"] == "ack", ack
            stored = httpx.get(f"{hub.url}/sessions/{sid}", timeout=10).json()
            assert stored["tempo"] == 120.0  # still waiting: 60 s of debounce
            assert hub.proc is not None
            hub.proc.send_signal(signal.SIGTERM)
            code = await asyncio.to_thread(hub.proc.wait, 20)
            assert code == 0, hub.log_tail()
        hub.proc = None
        hub.start()
        session = httpx.get(f"{hub.url}/sessions/{sid}", timeout=10).json()
        assert session["tempo"] == 96.5 and session["meter"] == {"numerator": 3, "denominator": 4}, session
    finally:
        hub.stop()


def test_non_loopback_bind_without_token_is_refused(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--host", "0.0.0.0", "--port", "0", "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "token is required" in out.stderr


def test_version_and_help() -> None:
    import subprocess
    import sys

    from hub import __version__

    out = subprocess.run([sys.executable, "-m", "hub.cli", "--version"], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == f"tutti {__version__}"
    helptext = subprocess.run([sys.executable, "-m", "hub.cli", "serve", "--help"], capture_output=True, text=True,
                              timeout=60).stdout
    for flag in ("--data", "--host", "--port", "--token", "--log-level", "--config", "--amt-model",
                 "--disable-engine"):
        assert flag in helptext


def test_disabling_an_unknown_engine_is_refused_with_the_known_names(tmp_path: Path) -> None:
    import subprocess
    import sys

    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--port", "0", "--data", str(tmp_path),
         "--disable-engine", "amtt"],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    assert "cannot disable amtt" in out.stderr and "transform, amt" in out.stderr


def test_disabled_engine_is_not_started_or_listed(tmp_path: Path) -> None:
    import httpx

    hub = HubProcess(tmp_path / "data", disabled=("amt",))
    hub.start()
    try:
        names = [e["name"] for e in httpx.get(f"{hub.url}/models", timeout=5).json()["engines"]]
        assert "amt" not in names and "transform" in names and "slow" in names
    finally:
        hub.stop()


def test_port_zero_prints_the_real_url_and_it_answers(tmp_path: Path) -> None:
    import re
    import subprocess
    import sys

    proc = subprocess.Popen(
        [sys.executable, "-m", "hub.cli", "serve", "--port", "0", "--data", str(tmp_path),
         "--disable-engine", "amt"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        found = re.search(r"listening on (http://127\.0\.0\.1:(\d+)/)", first)
        assert found and int(found.group(2)) > 0, first
        deadline = time.monotonic() + 60
        while True:
            try:
                health = httpx.get(found.group(1) + "health", timeout=2)
                break
            except httpx.TransportError:
                assert time.monotonic() < deadline, "the printed URL never answered"
                time.sleep(0.2)
        assert health.json()["status"] == "ok"
        # a second hub on the same port: one clear line and a hint, exit status 2
        busy = subprocess.run(
            [sys.executable, "-m", "hub.cli", "serve", "--port", found.group(2), "--data",
             str(tmp_path / "second")],
            capture_output=True, text=True, timeout=60,
        )
        assert busy.returncode == 2
        assert f"cannot listen on {found.group(1)}" in busy.stderr and "--port 0" in busy.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def test_a_bad_config_file_names_each_problem(tmp_path: Path) -> None:
    import subprocess
    import sys

    config = tmp_path / "tutti.toml"
    config.write_text("[tutti]\nport = 99999\nfoo = 1\n")
    out = subprocess.run(
        [sys.executable, "-m", "hub.cli", "serve", "--config", str(config), "--data", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert lines[0] == "tutti: invalid configuration: 2 problem(s)"
    assert lines[1].startswith("  port: Input should be less than or equal to 65535")
    assert lines[2] == "  foo: Extra inputs are not permitted"


def test_an_engine_without_its_model_is_a_warning_in_the_log_and_the_hub_runs_on(tmp_path: Path) -> None:
    config = tmp_path / "tutti.toml"
    config.write_text(f'[tutti]\namt_model = "{tmp_path / "no-model"}"\n')
    hub = HubProcess(tmp_path / "data", config=config, disabled=())
    hub.start()
    try:
        deadline = time.monotonic() + 60
        while "engine amt is unavailable" not in hub.log_tail():
            assert time.monotonic() < deadline, hub.log_tail()
            time.sleep(0.2)
        line = next(x for x in hub.log_tail().splitlines() if "engine amt is unavailable" in x)
        assert "WARNING" in line and "no-model" in line
        amt = next(e for e in httpx.get(f"{hub.url}/models", timeout=5).json()["engines"] if e["name"] == "amt")
        assert amt["available"] is False and amt["reason"] in line
    finally:
        hub.stop()
