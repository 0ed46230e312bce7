"""Out of the box: `tutti serve` with no model settings runs the AMT engine on the bundled
weights (CPU, offline), lists it in /models, and a generate job streams notes into a take."""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import cast

import httpx
import mido
from serverkit import HubProcess, is_event, job_frames, new_session, op, wait_frame, ws_client


def wait_for_amt(hub: HubProcess, timeout: float = 120.0) -> dict[str, object]:
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        engines = httpx.get(f"{hub.url}/models", timeout=5).json()["engines"]
        last = next(e for e in engines if e["name"] == "amt")
        if last["available"]:
            return last
        time.sleep(0.2)
    raise AssertionError(f"the AMT engine never became available: {last}")


async def test_default_hub_generates_with_the_bundled_model(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "data", disabled=())
    hub.start()
    try:
        amt = wait_for_amt(hub)
        assert amt["model"] == "bundled" and str(amt["device"]).startswith("cpu")
        tasks = cast(list[dict[str, object]], amt["tasks"])
        assert {t["name"] for t in tasks} >= {"generate", "continue", "bridge"}
        async with ws_client(hub.ws_url, name="musician") as c:
            sid, (sec,) = await new_session(c, "Out of the box", ("verse",))
            await c.request({"type": "subscribe", "topics": [f"session:{sid}"]})
            ack = await c.request({
                "type": "job.submit", "op_id": op(), "engine": "amt", "task": "generate",
                "session": sid, "section": sec,
                "params": {"length_seconds": 8.0, "seed": 3},
            })
            job = ack["result"]["job"]
            frames = await job_frames(c, job, timeout=120)
            kinds = [f["event"]["type"] for f in frames if f["type"] == "event"]
            assert kinds[-1] == "job.completed", kinds[-3:]
            assert "job.notes" in kinds, "notes stream before the job completes"
            (art,) = frames[-1]["event"]["artifacts"]
            await wait_frame(c, is_event("take.added", session=sid, section=sec), 15)
        with hub.http() as http:
            data = http.get(art["url"]).content
        notes = [m for m in mido.MidiFile(file=io.BytesIO(data)) if m.type == "note_on" and m.velocity > 0]
        assert notes and art["metadata"]["note_count"] == len(notes)
    finally:
        hub.stop()
